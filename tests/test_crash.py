"""Crash test: SIGKILL a real worker in the middle of multi-step runs, restart it, lose nothing.

What is asserted, and why it is the precise contract (DESIGN.md: at-least-once per step,
exactly-once per checkpoint):

* Every run completes, with the right output and its six step rows committed.
* Each step body records its execution in ``crash_effects`` (unique key (run_id, step_key);
  a repeat increments ``executions`` in the same INSERT) *before* doing its work, so an
  execution that was killed before its checkpoint committed is visible as an extra one.
* A step runs again only if an execution of it was interrupted before its checkpoint, and
  only a kill interrupts here. So for every (run, step): ``executions - 1`` is at most the
  number of kills that happened between its first and its last execution (wall-clock times
  recorded by the worker; kill windows recorded by this process on the same machine clock).
  In particular a step executed once before the first kill and checkpointed then ran
  exactly once, and a step never duplicated with no kill in its window.
* Each kill interrupts at most one step per worker thread, so the total number of extra
  executions is at most ``kills * threads``.
"""

from __future__ import annotations

import json
import random
import signal
import time

from engine_funcs import harness
from engine_funcs.crash import STEPS
from engine_funcs.effects import CrashEffect
from procs import wait_until
from tengo_jobs.store.schema import RunRow as Run, RunStatus, StepRow as Step, StepKind

RUNS = 60
KILLS = 3
THREADS = 4


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_sigkilled_workers_lose_no_run_and_rerun_only_interrupted_steps(redis_url, postgres_url,
                                                                       queue_name, tmp_path):
    rng = random.Random()
    env = harness.worker_env(postgres_url, redis_url, queue_name, TENGO_LEASE_TTL="1s",
                             TENGO_REDELIVER_AFTER="1s")
    total_steps = RUNS * len(STEPS)
    kill_windows: list[tuple[int, int]] = []
    procs = []
    with harness.scheduler_runtime(env) as (runtime, jobs):
        jobs.send([{"name": "crash.six", "data": {"n": n}} for n in range(RUNS)])
        run_ids = [r.id for r in Run.select(Run.id)]
        proc = harness.worker(tmp_path, env, name="worker-0", threads=THREADS)
        procs.append(proc)
        try:
            for k in range(KILLS):
                # let the worker get well into the runs, then kill it at a random moment
                threshold = int(total_steps * (k + 1) / (KILLS + 2))
                wait_until(lambda: _tick_and_count(runtime) >= threshold, timeout=60, interval=0.05, message=f"{threshold} step executions")
                time.sleep(rng.uniform(0.0, 0.4))
                running = Run.select().where(Run.status == RunStatus.RUNNING).count()
                before = _now_ms()
                proc.kill(signal.SIGKILL)
                proc.popen.wait(10)
                kill_windows.append((before, _now_ms()))
                assert running > 0, "the kill should land while runs are executing"
                proc.stop()
                proc = harness.worker(tmp_path, env, name=f"worker-{k + 1}", threads=THREADS)
                procs.append(proc)
            runs = harness.drive_until_final(runtime, run_ids, timeout=120, procs=procs)
        finally:
            for p in procs:
                p.stop()

        assert len(runs) == RUNS
        assert {r.status for r in runs} == {RunStatus.COMPLETED}, [
            (r.id, r.status, r.error) for r in runs if r.status != RunStatus.COMPLETED]
        assert sorted(json.loads(r.output)["n"] for r in runs) == list(range(RUNS))
        assert {json.loads(r.output)["total"] for r in runs} == {sum(range(len(STEPS)))}
        for run in runs:
            keys = [s.key for s in Step.select().where((Step.run_id == run.id)
                                                       & (Step.kind == StepKind.RUN))]
            assert sorted(keys) == list(STEPS)

        checkpointed_at = {(s.run_id, s.key): s.ended_at
                           for s in Step.select().where(Step.kind == StepKind.RUN)}
        effects = list(CrashEffect.select())
        assert len(effects) == total_steps  # the unique key: one row per (run, step)
        extra_total = 0
        for e in effects:
            kills_in_window = sum(1 for before, after in kill_windows
                                  if e.first_at_ms <= after and before <= e.last_at_ms)
            extra = e.executions - 1
            extra_total += extra
            assert extra <= kills_in_window, (
                f"run {e.run_id} step {e.step_key} ran {e.executions} times between "
                f"{e.first_at_ms} and {e.last_at_ms} but only {kills_in_window} kill(s) "
                f"happened then: a committed checkpoint was not honoured")
            if checkpointed_at[(e.run_id, e.step_key)] < kill_windows[0][0]:
                assert e.executions == 1  # checkpoint committed before any kill: ran once
        assert extra_total <= KILLS * THREADS
        print(f"crash test: {KILLS} kills, {extra_total} re-executed step(s) "
              f"out of {total_steps}, kill windows {kill_windows}")


def _tick_and_count(runtime) -> int:
    """Play the scheduler once and return how many step executions happened so far."""

    runtime.timekeeper.fire_timers()
    runtime.timekeeper.sweep()
    return CrashEffect.select().count()
