"""Prometheus metrics under Inngest's names, read from the database: the right numbers on
both databases, and the same numbers from every worker of a gunicorn with two."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tengo_jobs import RunStatus
from tengo_jobs.process.web.metrics import DatabaseCollector
from tengo_jobs.store.schema import RunRow

from procs import ROOT, process_env, start_worker
from webhelpers import EVENT_KEY, bearer, live_env, start_gunicorn, wait_for_runs


def _samples_of(families) -> dict:
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_inngest_named_metrics_count_runs_steps_and_output_bytes(jobs, tester, backend):
    @jobs.function("ok-fn", event="go")
    def ok_fn(ctx, step):
        return step.run("one", lambda: "x" * 10)  # '"xxxxxxxxxx"': 12 bytes of JSON

    @jobs.function("bad-fn", event="go", retries=0)
    def bad_fn(ctx, step):
        raise ValueError("boom")

    @jobs.function("sleepy", event="go")
    def sleepy(ctx, step):
        step.sleep("long", "1d")

    tester.send([{"name": "go", "data": {}}, {"name": "go", "data": {}}])
    before = _samples_of(DatabaseCollector(backend)._measure())
    assert before[("inngest_function_run_scheduled_total", (("fn", "ok-fn"),))] == 2
    assert before[("inngest_function_run_started_total", (("fn", "ok-fn"),))] == 0
    assert before[("inngest_steps_scheduled", ())] == 6
    assert before[("inngest_steps_running", ())] == 0
    backend.clock.advance(2_000)
    assert _samples_of(DatabaseCollector(backend)._measure())[
        ("tengo_scheduler_lag_seconds", ())] == pytest.approx(2.0)

    runs = tester.run_until_idle(advance_time=False)
    assert {r.status for r in runs} == {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.SLEEPING}
    s = _samples_of(DatabaseCollector(backend)._measure())
    for fn in ("ok-fn", "bad-fn", "sleepy"):
        assert s[("inngest_function_run_scheduled_total", (("fn", fn),))] == 2
        assert s[("inngest_function_run_started_total", (("fn", fn),))] == 2
    assert s[("inngest_function_run_ended_total", (("fn", "ok-fn"), ("status", "completed")))] == 2
    assert s[("inngest_function_run_ended_total", (("fn", "bad-fn"), ("status", "failed")))] == 2
    assert ("inngest_function_run_ended_total", (("fn", "sleepy"), ("status", "completed"))) not in s
    assert s[("inngest_step_output_bytes_total", (("fn", "ok-fn"),))] == 24
    assert s[("inngest_steps_scheduled", ())] == 0  # the sleepers are not due
    assert s[("tengo_scheduler_lag_seconds", ())] == 0
    assert s[("tengo_run_start_lag_seconds_count", (("function", "ok-fn"),))] == 2
    assert s[("tengo_run_start_lag_seconds_bucket",
              (("function", "ok-fn"), ("le", "1")))] == 0  # they waited 2 s to start
    assert s[("tengo_run_start_lag_seconds_bucket", (("function", "ok-fn"), ("le", "2.5")))] == 2


def _totals(backend, fn: str) -> tuple:
    s = _samples_of(DatabaseCollector(backend)._counters())
    return tuple(s.get((name, (("fn", fn),) + extra), 0) for name, extra in (
        ("inngest_function_run_scheduled_total", ()), ("inngest_function_run_started_total", ()),
        ("inngest_function_run_ended_total", (("status", "completed"),)),
        ("inngest_function_run_ended_total", (("status", "cancelled"),)),
        ("inngest_step_output_bytes_total", ())))


def test_inngest_totals_are_counters_that_survive_pruning_and_the_24_hour_window(
        jobs, tester, backend):
    @jobs.function("counted", event="count")
    def counted(ctx, step):
        return step.run("one", lambda: "abc")  # '"abc"': 5 bytes

    tester.send([{"name": "count", "data": {}}] * 3)
    tester.run_until_idle(advance_time=False)
    assert _totals(backend, "counted") == (3, 3, 3, 0, 15)
    families = {f.name: f.type for f in DatabaseCollector(backend)._counters()}
    assert families == {"inngest_function_run_scheduled": "counter",
                        "inngest_function_run_started": "counter",
                        "inngest_function_run_ended": "counter",
                        "inngest_step_output_bytes": "counter"}

    # a queued run cancelled before it started: ended (cancelled), never started
    [event_id] = tester.send({"name": "count", "data": {}})
    assert _totals(backend, "counted") == (4, 3, 3, 0, 15)
    run = RunRow.get(RunRow.event_id == event_id)
    backend.control.cancel(run.id)
    assert _totals(backend, "counted") == (4, 3, 3, 1, 15)

    # two days later: past the old 24 h window, and every finished run pruned
    backend.clock.advance(2 * 86_400_000)
    assert backend.timekeeper.prune(older_than_ms=86_400_000).runs == 4
    assert RunRow.select().count() == 0
    assert _totals(backend, "counted") == (4, 3, 3, 1, 15)
    tester.send({"name": "count", "data": {}})
    tester.run_until_idle(advance_time=False)
    assert _totals(backend, "counted") == (5, 4, 4, 1, 20)


def test_inngest_running_counts_runs_holding_a_lease(jobs, tester, backend):
    seen = {}

    @jobs.function("looker", event="look")
    def looker(ctx, step):
        seen["during"] = _samples_of(DatabaseCollector(backend)._measure())[
            ("inngest_steps_running", ())]

    tester.send({"name": "look", "data": {}})
    tester.run_until_idle()
    assert seen["during"] == 1
    assert _samples_of(DatabaseCollector(backend)._measure())[("inngest_steps_running", ())] == 0


def _scrape_both(base: str) -> set:
    """The counters of ``echo-event`` as twelve scrapes answer them (a new connection each
    time: both gunicorn workers answer some)."""
    fn = (("fn", "echo-event"),)
    answers = set()
    for _ in range(12):
        text = requests.get(f"{base}/metrics", headers={**bearer(), "Connection": "close"},
                            timeout=10).text
        s = _samples_of(text_string_to_metric_families(text))
        answers.add((s[("inngest_function_run_scheduled_total", fn)],
                     s[("inngest_function_run_started_total", fn)],
                     s.get(("inngest_function_run_ended_total", fn + (("status", "completed"),)),
                           0),
                     s[("inngest_step_output_bytes_total", fn)]))
    return answers


@pytest.mark.integration
def test_two_gunicorn_workers_report_the_same_numbers(tmp_path, postgres_url, redis_url,
                                                      queue_name):
    env = live_env(postgres_url, redis_url, queue_name)
    web, base = start_gunicorn(tmp_path / "web.log", env, workers=2)
    worker = None
    try:
        ids = []
        for i in range(7):
            r = requests.post(f"{base}/e/{EVENT_KEY}", json={"name": "sdk.single", "data": {"i": i}},
                              timeout=10)
            assert r.status_code == 200
            ids += r.json()["ids"]
        assert _scrape_both(base) == {(7, 0, 0, 0)}
        # two dramatiq processes run them; every scrape from either web worker agrees at once
        worker = start_worker("web_functions", tmp_path / "worker.log", processes=2, threads=2,
                              **env)
        wait_for_runs(base, ids)
        [(scheduled, started, completed, output_bytes)] = _scrape_both(base)
        assert (scheduled, started, completed) == (7, 7, 7) and output_bytes > 0
        # pruning every finished run changes none of the counters
        pruned = subprocess.run([sys.executable, "-m", "tengo_jobs.cli", "prune",
                                 "--older-than", "1ms"], env=process_env(**env), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert pruned.returncode == 0 and "deleted 7 run(s)" in pruned.stdout, pruned.stderr
        assert _scrape_both(base) == {(7, 7, 7, output_bytes)}
    finally:
        web.stop()
        if worker is not None:
            worker.stop()
