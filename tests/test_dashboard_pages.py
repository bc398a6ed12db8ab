"""The dashboard's events, functions, performance and health pages (issue 19), and the
performance summaries they read (``store/stats.py``, migration 0013)."""

from __future__ import annotations

import re

import pytest

from tengo_jobs import Jobs, NonRetriableError
from tengo_jobs.process.web import create_app
from tengo_jobs.store.stats import BUCKET_MS, SETTLE_MS, percentile
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import PASSWORD, bearer, form_token

MINUTE = 60_000


def _declare(jobs):
    """A function that takes 2 s per run (one 2 s step), and one that fails."""
    @jobs.function("perf-slow", event="perf.slow", retries=0)
    def slow(ctx, step):
        clock = jobs.runtime.clock

        def work():
            clock.advance(2_000)
            return "done"

        return step.run("work", work)

    @jobs.function("perf-broken", event="perf.broken", retries=0)
    def broken(ctx, step):
        def explode():
            raise NonRetriableError(f"gateway refused order {ctx.event.data['order']}")

        step.run("explode", explode)

    return slow, broken


# -- the roll-up -------------------------------------------------------------------------------
def test_the_roll_up_counts_each_finished_run_once_with_its_durations_and_errors(jobs, tester):
    _declare(jobs)
    runtime = jobs.runtime
    stats = runtime.store.stats
    t0 = runtime.clock.now()
    stats.roll_up(t0)  # the first pass: nothing yet
    for _ in range(3):
        tester.send({"name": "perf.slow", "data": {}})
    tester.send({"name": "perf.broken", "data": {"order": "A-1"}})
    tester.send({"name": "perf.broken", "data": {"order": "A-1"}})
    tester.run_until_idle()
    now = runtime.clock.now() + SETTLE_MS + 1
    first = stats.roll_up(now)
    assert first["runs"] == 5
    assert stats.roll_up(now)["runs"] == 0  # a second pass counts nothing again
    assert stats.roll_up(now + 5 * MINUTE)["runs"] == 0

    day = stats.series(window="24h", now=now)
    assert day["totals"] == {"started": 5, "completed": 3, "failed": 2, "cancelled": 0}
    slow = stats.series(window="1h", now=now, function_ids=["perf-slow"])
    assert slow["totals"]["completed"] == 3 and slow["totals"]["failed"] == 0
    assert 1_000 <= slow["duration"]["p50"] <= 2_500 and slow["duration"]["n"] == 3
    assert slow["step"]["n"] == 3 and 1_000 <= slow["step"]["p95"] <= 2_500
    assert len(slow["points"]) == 12 and sum(p["completed"] for p in slow["points"]) == 3

    per_fn = stats.per_function(window="24h", now=now)
    assert per_fn["perf-slow"]["success_rate"] == 1.0
    assert per_fn["perf-broken"]["success_rate"] == 0.0

    [top] = stats.top_errors(window="7d", now=now)
    assert top["function_id"] == "perf-broken" and top["n"] == 2
    assert top["message"] == "gateway refused order A-1"
    assert top["last_run_id"] in {r.id for r in tester.runs("perf-broken")}
    steps = stats.slowest_steps(window="24h", now=now)
    assert steps[0]["function_id"] == "perf-slow" and steps[0]["step"] == "work"
    assert {s["step"]: s["failed"] for s in steps}["explode"] == 2


def test_runs_that_end_after_a_pass_are_counted_by_the_next(jobs, tester):
    _declare(jobs)
    runtime = jobs.runtime
    stats = runtime.store.stats
    tester.send({"name": "perf.slow", "data": {}})
    tester.run_until_idle()
    stats.roll_up(runtime.clock.now() + SETTLE_MS + 1)
    runtime.clock.advance(BUCKET_MS)
    tester.send({"name": "perf.slow", "data": {}})
    tester.run_until_idle()
    assert stats.roll_up(runtime.clock.now() + 1)["runs"] == 0  # not settled yet
    assert stats.roll_up(runtime.clock.now() + SETTLE_MS + 1)["runs"] == 1
    series = stats.series(window="1h", now=runtime.clock.now() + SETTLE_MS + 1)
    assert series["totals"]["completed"] == 2
    assert [p["completed"] for p in series["points"] if p["completed"]] == [1, 1]


def test_percentiles_come_from_the_histogram():
    assert percentile([0] * 22, 0.5) is None
    hist = [0] * 22
    hist[7] = 10  # ten runs between 500 ms and 1 s
    assert 500 <= percentile(hist, 0.5) <= 1_000
    hist[21] = 1  # one over a day: the open bucket gives its lower bound
    assert percentile(hist, 1.0) == 86_400_000
