"""End-to-end flows through a real ``dramatiq`` worker process, real Redis and a real database.

The worker is started as production starts it (``dramatiq MODULE``, its own OS
process, runtime from the environment). This test process sends events and plays
the scheduler: it calls ``fire_due_timers`` and ``sweep`` in a poll loop.
"""

from __future__ import annotations

import json
import time

from engine_funcs import effects, harness
from tengo_jobs.store.schema import RunRow as Run, RunStatus, StepRow as Step


def _effects(run_id: str, key: str) -> int:
    return (effects.ItEffect.select()
            .where((effects.ItEffect.run_id == run_id) & (effects.ItEffect.step_key == key)).count())


def _check_all_flows(runtime, jobs, tmp_path, env):
    proc = harness.worker(tmp_path, env)
    try:
        multi_ids = jobs.send([{"name": "it.multi", "data": {"n": n}} for n in range(10)])
        jobs.send({"name": "it.sleep-retry", "data": {"sleep": "1s"}})
        jobs.send({"name": "it.fails", "data": {"orderId": "o-1"}})
        runs = harness.drive_until_final(runtime, timeout=90, procs=[proc])
    finally:
        proc.stop()
    by_fn: dict[str, list[Run]] = {}
    for run in runs:
        by_fn.setdefault(run.function_id, []).append(run)

    # multi-step: every run completed, each step body ran once, outputs chained
    multi = by_fn["it-multi"]
    assert len(multi) == 10 and {r.status for r in multi} == {RunStatus.COMPLETED}
    assert {r.event_id for r in multi} == set(multi_ids)
    assert sorted(json.loads(r.output)["value"] for r in multi) == [2 * n + 1 for n in range(10)]
    for run in multi:
        assert [s.key for s in Step.select().where(Step.run_id == run.id).order_by(Step.position)] \
            == ["double", "add", "wrap"]
        assert [_effects(run.id, k) for k in ("double", "add", "wrap")] == [1, 1, 1]

    # sleep then retry: woken by the timer poller twice (sleep, backoff), flaky ran 3 times
    (sleepy,) = by_fn["it-sleep-retry"]
    assert sleepy.status == RunStatus.COMPLETED and json.loads(sleepy.output) == {"attempts": 3}
    assert _effects(sleepy.id, "before") == 1 and _effects(sleepy.id, "flaky") == 3
    steps = {s.key: s for s in Step.select().where(Step.run_id == sleepy.id)}
    assert steps["nap"].status.value == "completed" and steps["flaky"].attempts == 3
    assert sleepy.ended_at - sleepy.created_at >= 1_000

    # failure: the run failed after 2 attempts, its handler ran once as its own run
    (failed,) = by_fn["it-fails"]
    (handler,) = by_fn["it-fails-failure"]
    assert failed.status == RunStatus.FAILED and _effects(failed.id, "doomed") == 2
    assert json.loads(failed.error)["step"] == "doomed"
    assert handler.status == RunStatus.COMPLETED and handler.parent_run_id == failed.id
    out = json.loads(handler.output)
    assert out["failed_run"] == failed.id and out["original"] == {"orderId": "o-1"}
    assert out["error"] == "division by zero"  # the step's own error, as Inngest reports it
    assert _effects(failed.id, "on-failure") == 1


def test_flows_complete_through_a_worker_process_on_redis(redis_url, backend_url, queue_name,
                                                         tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        _check_all_flows(runtime, jobs, tmp_path, env)


def test_runs_whose_messages_were_lost_complete_once_a_worker_and_the_sweeper_run(
        redis_url, backend_url, queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name, TENGO_REDELIVER_AFTER="1s")
    with harness.scheduler_runtime(env) as (runtime, jobs):
        jobs.send([{"name": "it.multi", "data": {"n": n}} for n in range(5)])
        runtime.flush()
        # Redis restarts without persistence before any worker saw the messages
        assert runtime.broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 5
        runtime.broker.client.delete(f"dramatiq:{queue_name}", f"dramatiq:{queue_name}.msgs")
        assert runtime.broker.client.hlen(f"dramatiq:{queue_name}.msgs") == 0
        proc = harness.worker(tmp_path, env)
        try:
            runs = harness.drive_until_final(runtime, timeout=60, procs=[proc])
        finally:
            proc.stop()
        assert len(runs) == 5 and {r.status for r in runs} == {RunStatus.COMPLETED}


def test_cancel_on_stops_a_run_in_a_worker_process_after_its_executing_step(
        redis_url, backend_url, queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        proc = harness.worker(tmp_path, env)
        try:
            [keep_id, cancel_id] = jobs.send([
                {"name": "it.cancellable", "data": {"orderId": "keep"}},
                {"name": "it.cancellable", "data": {"orderId": "stop"}}])
            [cancelled] = Run.select().where(Run.event_id == cancel_id)
            deadline = time.monotonic() + 30
            while _effects(cancelled.id, "slow") == 0:  # the worker is inside step "slow"
                assert time.monotonic() < deadline, "the worker never reached step 'slow'"
                time.sleep(0.05)
            [event_id] = jobs.send({"name": "it.cancel", "data": {"orderId": "stop"}})
            assert Run.get_by_id(cancelled.id).status == RunStatus.RUNNING
            [kept] = Run.select().where(Run.event_id == keep_id)
            harness.drive_until_final(runtime, [cancelled.id], timeout=30, procs=[proc])
            # the other run sleeps for an hour: it is cancelled at once, by its own event
            deadline = time.monotonic() + 30
            while Run.get_by_id(kept.id).status != RunStatus.SLEEPING:
                assert time.monotonic() < deadline, "the other run never slept"
                time.sleep(0.05)
            jobs.send({"name": "it.cancel", "data": {"orderId": "keep"}})
        finally:
            proc.stop()
    run = Run.get_by_id(cancelled.id)
    assert run.status == RunStatus.CANCELLED
    assert json.loads(run.error) == {"name": "RunCancelled",
                                     "message": f"cancelled by event it.cancel {event_id}"}
    steps = {s.key: s.output for s in Step.select().where(Step.run_id == run.id)}
    assert steps == {"first": '"one"', "slow": '"two"'}  # the executing step's result is kept
    assert [_effects(run.id, k) for k in ("first", "slow", "after")] == [1, 1, 0]
    kept = Run.get_by_id(kept.id)
    assert kept.status == RunStatus.CANCELLED and _effects(kept.id, "after") == 1
