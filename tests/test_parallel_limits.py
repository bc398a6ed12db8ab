"""Limits that apply to a run as a whole or to each of its executing steps: a concurrency
limit counts each parallel branch executing a step, and a run's stored state is capped
(``TENGO_MAX_RUN_STATE_BYTES``). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tengo_jobs import RunStatus
from tengo_jobs.config import Settings
from tengo_jobs.store.schema import RunRow, SlotRow, StepRow as Step, StepStatus


def _max_overlap(intervals) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    inside = most = 0
    for _, d in edges:
        inside += d
        most = max(most, inside)
    return most


def _recorder():
    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()

    def work(i):
        start = time.monotonic()
        time.sleep(0.25)
        with lock:
            intervals.append((start, time.monotonic()))
        return i

    return intervals, work


@pytest.mark.parametrize("limit", [1, 2])
def test_each_executing_branch_counts_against_the_concurrency_limit(jobs, tester, limit):
    intervals, work = _recorder()

    @jobs.function("fan", event="go", concurrency=limit, retries=0)
    def fan(ctx, step):
        return step.parallel([lambda i=i: step.run(f"b{i}", work, i) for i in range(4)])

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == [0, 1, 2, 3]
    assert len(intervals) == 4
    # never more branch steps at once than the limit, and as many as it allows
    assert _max_overlap(intervals) == limit
    assert SlotRow.select().count() == 0  # every slot given back, the branches' too
    assert all(s.status == StepStatus.COMPLETED and s.attempts == 1
               for s in tester.steps(run.id))


def test_branches_of_two_runs_share_the_limit(backend, jobs, tester):
    intervals, work = _recorder()

    @jobs.function("fan", event="go", concurrency=3, retries=0)
    def fan(ctx, step):
        return step.parallel([lambda i=i: step.run(f"b{i}", work, i) for i in range(4)])

    tester.send([{"name": "go", "data": {"n": n}} for n in range(2)])
    run_ids = [r.id for r in RunRow.select(RunRow.id)]
    threads = [threading.Thread(target=backend.executor.execute, args=(rid,)) for rid in run_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    runs = tester.run_until_idle()  # a run refused its slot waits; it runs now
    assert {r.status for r in runs} == {RunStatus.COMPLETED}
    assert len(intervals) == 8
    assert _max_overlap(intervals) <= 3
    assert SlotRow.select().count() == 0


@pytest.mark.runtime_settings(run_state_limit=1_000)
def test_a_step_that_passes_the_run_state_limit_fails_for_good_naming_run_step_and_setting(
        jobs, tester):
    calls = {"third": 0}

    def third():
        calls["third"] += 1
        return "z" * 400  # 402 + 252 + 402 bytes of JSON > 1000

    @jobs.function("stateful", event="go", retries=3)
    def stateful(ctx, step):
        step.run("first", lambda: "x" * 400)
        step.sleep("nap", "1m")  # the next execution starts its count from the stored steps
        step.run("second", lambda: "y" * 250)
        return step.run("third", third)

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    error = json.loads(run.error)
    assert error["step"] == "third" and error["name"] == "RunStateTooLargeError"
    assert f"run {run.id}: step 'third'" in error["message"]
    assert "the limit is 1000 bytes (TENGO_MAX_RUN_STATE_BYTES)" in error["message"]
    assert calls["third"] == 1  # failed for good, not retried
    steps = {s.key: s for s in Step.select().where(Step.run_id == run.id)}
    assert steps["second"].status == StepStatus.COMPLETED
    assert steps["third"].status == StepStatus.FAILED and steps["third"].output is None


@pytest.mark.runtime_settings(run_state_limit=1_000)
def test_parallel_branches_add_up_to_the_run_state(jobs, tester):
    @jobs.function("wide", event="go", retries=0)
    def wide(ctx, step):
        return step.parallel([lambda i=i: step.run(f"b{i}", lambda: "w" * 300) for i in range(4)])

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    assert "TENGO_MAX_RUN_STATE_BYTES" in run.error
    statuses = sorted(s.status.value for s in Step.select().where(Step.run_id == run.id))
    assert statuses == ["completed", "completed", "completed", "failed"]


def test_the_run_state_limit_is_read_from_the_environment():
    assert Settings.from_env({}).run_state_limit == 32 * 1024 * 1024
    assert Settings.from_env({"TENGO_MAX_RUN_STATE_BYTES": "5000"}).run_state_limit == 5000
