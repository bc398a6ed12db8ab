"""SIGKILL a real ``dramatiq`` worker while an async step awaits; a new worker finishes the
run exactly once (DESIGN.md: at-least-once per step, exactly-once per checkpoint).

The step appends the run's id to a file *before* it awaits ``asyncio.sleep(3)``; the test
waits for that line, kills the worker's whole process group, starts a new worker and plays
the scheduler until the run is final."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from engine_funcs import harness
from procs import start_worker, wait_until
from tengo_jobs.store.schema import RunRow, RunStatus, StepRow, StepKind

from test_async_handlers import _sending_runtime


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_run_killed_while_its_async_step_awaits_completes_once_on_a_new_worker(
        redis_url, postgres_url, queue_name, tmp_path):
    effects = tmp_path / "effects.txt"
    env = harness.worker_env(postgres_url, redis_url, queue_name,
                             TENGO_FUNCTIONS="async_funcs.worker", TENGO_LEASE_TTL="1s",
                             TENGO_REDELIVER_AFTER="1s")
    procs = []
    with _sending_runtime(env) as (runtime, jobs):
        try:
            first = start_worker("async_funcs.worker", tmp_path / "worker-0.log", threads=2, **env)
            procs.append(first)
            [event_id] = jobs.send({"name": "async.killable",
                                    "data": {"path": str(effects), "seconds": 3}})
            run_id = wait_until(lambda: RunRow.get_or_none(RunRow.event_id == event_id),
                                timeout=30, message="the run row").id
            # the step has done its side effect and is inside its 3 s await
            wait_until(lambda: run_id in _lines(effects), timeout=60,
                       message=f"the step's side effect\n{first.log()[-3000:]}")
            assert RunRow.get_by_id(run_id).status == RunStatus.RUNNING
            first.kill(signal.SIGKILL)
            first.popen.wait(10)
            assert not StepRow.select().where((StepRow.run_id == run_id)
                                              & (StepRow.key == "mark-then-nap")).exists(), (
                "the kill must land before the awaiting step's checkpoint")
            first.stop()

            second = start_worker("async_funcs.worker", tmp_path / "worker-1.log", threads=2,
                                  **env)
            procs.append(second)
            [run] = harness.drive_until_final(runtime, [run_id], timeout=90, procs=procs)
        finally:
            for p in procs:
                p.stop()

        assert run.status == RunStatus.COMPLETED, (run.status, run.error)
        assert json.loads(run.output) == {"napped": 3, "done": True}
        steps = [s.key for s in StepRow.select().where((StepRow.run_id == run_id)
                                                        & (StepRow.kind == StepKind.RUN))]
        assert sorted(steps) == ["after", "mark-then-nap"]  # each checkpoint recorded once
        assert 1 <= _lines(effects).count(run_id) <= 2, _lines(effects)
