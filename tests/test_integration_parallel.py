"""``step.parallel`` and pausing through real ``dramatiq`` worker processes on Redis: branches
that sleep and retry, a worker SIGKILLed in the middle of a parallel block, and a pause that
holds across the worker process. This process sends events and plays the scheduler."""

from __future__ import annotations

import json
import signal
import time

from engine_funcs import harness
from engine_funcs.effects import CrashEffect, ItEffect
from engine_funcs.parallel import CRASH_BRANCHES
from procs import wait_until
from tengo_jobs.store.schema import RunRow as Run, RunStatus, StepKind, StepRow as Step


def _executions(run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in ItEffect.select().where(ItEffect.run_id == run_id):
        counts[e.step_key] = counts.get(e.step_key, 0) + 1
    return counts


def test_parallel_branches_that_sleep_and_retry_complete_through_a_worker_process(
        redis_url, backend_url, queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        proc = harness.worker(tmp_path, env)
        try:
            event_ids = jobs.send([{"name": "it.parallel", "data": {"n": n}} for n in range(3)])
            runs = harness.drive_until_final(runtime, timeout=90, procs=[proc])
        finally:
            proc.stop()
        assert len(runs) == 3 and {r.event_id for r in runs} == set(event_ids)
        for run in runs:
            assert run.status == RunStatus.COMPLETED, (run.error, proc.log()[-3000:])
            assert json.loads(run.output) == "quick+rested+recovered"
            # each branch's step body ran once, except the flaky one: once more, for its retry
            assert _executions(run.id) == {"quick": 1, "after-nap": 1, "flaky": 2, "join": 1}
            steps = {s.key: s for s in Step.select().where(Step.run_id == run.id)}
            assert set(steps) == {"quick", "nap", "after-nap", "flaky", "join"}
            assert {s.status.value for s in steps.values()} == {"completed"}
            assert steps["flaky"].attempts == 2 and steps["quick"].attempts == 1
            assert steps["nap"].kind == StepKind.SLEEP
            assert steps["after-nap"].started_at - steps["nap"].started_at >= 300


def test_a_worker_killed_inside_a_parallel_block_reruns_only_unfinished_branches(
        redis_url, postgres_url, queue_name, tmp_path):
    env = harness.worker_env(postgres_url, redis_url, queue_name, TENGO_LEASE_TTL="1s",
                             TENGO_REDELIVER_AFTER="1s")
    procs = []
    with harness.scheduler_runtime(env) as (runtime, jobs):
        jobs.send([{"name": "it.parallel-crash", "data": {"n": n}} for n in range(3)])
        run_ids = [r.id for r in Run.select(Run.id)]
        proc = harness.worker(tmp_path, env, name="worker-0")
        procs.append(proc)
        try:
            def checkpointed() -> int:
                runtime.timekeeper.sweep()
                return Step.select().where(Step.kind == StepKind.RUN).count()

            # some branches are checkpointed, the slower ones are still executing
            wait_until(lambda: checkpointed() >= 4, timeout=60, interval=0.02,
                       message="4 branch checkpoints")
            executing = CrashEffect.select().count() - checkpointed()
            kill_at = int(time.time() * 1000)
            proc.kill(signal.SIGKILL)
            proc.popen.wait(10)
            assert executing > 0, "the kill should land while branches are executing"
            done_before_kill = {(s.run_id, s.key) for s in Step.select().where(
                (Step.kind == StepKind.RUN) & (Step.ended_at < kill_at))}
            proc.stop()
            proc = harness.worker(tmp_path, env, name="worker-1")
            procs.append(proc)
            runs = harness.drive_until_final(runtime, run_ids, timeout=120, procs=procs)
        finally:
            for p in procs:
                p.stop()
        assert {r.status for r in runs} == {RunStatus.COMPLETED}, [
            (r.id, r.status, r.error) for r in runs]
        assert {json.loads(r.output)["sum"] for r in runs} == {sum(range(CRASH_BRANCHES))}
        executions = {(e.run_id, e.step_key): e.executions for e in CrashEffect.select()}
        assert set(executions) == {(r, f"b{i}") for r in run_ids for i in range(CRASH_BRANCHES)}
        assert len(done_before_kill) >= 4
        for key in done_before_kill:  # a branch checkpointed before the kill never ran again
            assert executions[key] == 1, key
        reran = [k for k, n in executions.items() if n > 1]
        assert reran and all(k not in done_before_kill for k in reran)
        for run_id in run_ids:
            assert Step.select().where((Step.run_id == run_id)
                                       & (Step.kind == StepKind.RUN)).count() == CRASH_BRANCHES


def test_a_pause_holds_across_a_worker_process_and_resume_completes_every_run(
        redis_url, backend_url, queue_name, tmp_path):
    env = harness.worker_env(backend_url, redis_url, queue_name)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        proc = harness.worker(tmp_path, env)
        try:
            # the worker is up and executing runs before the pause
            [first] = jobs.send({"name": "it.pausable", "data": {"n": -1}})
            harness.drive_until_final(runtime, timeout=60, procs=[proc])
            assert runtime.control.pause("it-pausable")["paused"] is True
            event_ids = jobs.send([{"name": "it.pausable", "data": {"n": n}} for n in range(5)])
            held = Run.select().where(Run.event_id.in_(event_ids))
            assert held.count() == 5  # events still create the runs
            deadline = time.monotonic() + 3  # the worker gets their wake-ups; none executes
            while time.monotonic() < deadline:
                runtime.timekeeper.fire_timers()
                runtime.timekeeper.sweep()
                time.sleep(0.1)
            assert {r.status for r in held} == {RunStatus.QUEUED}
            assert ItEffect.select().where(ItEffect.run_id.in_([r.id for r in held])).count() == 0
            assert runtime.control.resume("it-pausable")["resumed_runs"] == 5
            runs = harness.drive_until_final(runtime, timeout=60, procs=[proc])
        finally:
            proc.stop()
        assert len(runs) == 6 and {r.status for r in runs} == {RunStatus.COMPLETED}
        assert sorted(json.loads(r.output) for r in runs) == [-1, 0, 1, 2, 3, 4]
        for run in runs:
            assert _executions(run.id) == {"work": 1}
        assert first in {r.event_id for r in runs}
