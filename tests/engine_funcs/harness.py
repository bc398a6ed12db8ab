"""The test process's side of a real-worker test: a runtime on the same database and Redis
queue as the worker, the scheduler's duties (timers, sweeper) in a poll loop, and clean-up."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from tengo_jobs import Jobs, Settings
from tengo_jobs.store.schema import RunRow as Run, RunStatus
from tengo_jobs.core.registry import Registry
from tengo_jobs.runtime import Runtime, set_runtime

from . import cancellable, crash, effects, flows, parallel
from procs import start_worker

FINAL = (RunStatus.COMPLETED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value)


def worker_env(database_url: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TENGO_QUEUE": queue,
           "TENGO_FUNCTIONS": "engine_funcs.worker", "TENGO_RETRY_BASE": "50ms",
           "TENGO_RETRY_MAX": "200ms", "TENGO_ENV": "test"}
    env.update(extra)
    return env


@contextlib.contextmanager
def scheduler_runtime(env: dict[str, str]):
    """A runtime like the worker's (same settings), with the test functions registered."""
    settings = Settings.from_env(env, functions=())
    registry = Registry()
    runtime = Runtime(settings=settings, registry=registry, set_global_broker=False)
    previous = set_runtime(runtime)
    try:
        runtime.migrate()
        effects.create_tables(runtime.db)
        jobs = Jobs(app_id=flows.APP_ID, runtime=runtime, registry=registry)
        flows.register(jobs)
        crash.register(jobs)
        cancellable.register(jobs)
        parallel.register(jobs)
        yield runtime, jobs
    finally:
        runtime.close()
        _delete_queue_keys(runtime)
        set_runtime(previous)


def _delete_queue_keys(runtime: Runtime) -> None:
    """Remove this test's queue keys from the shared Redis (never FLUSHDB)."""
    client = getattr(runtime.broker, "client", None)
    if client is None:
        return
    with contextlib.suppress(Exception):
        keys = list(client.scan_iter(match=f"*{runtime.settings.queue_name}*", count=1000))
        if keys:
            client.delete(*keys)
    with contextlib.suppress(Exception):
        runtime.broker.close()


def worker(tmp_path: Path, env: dict[str, str], *, name: str = "worker", threads: int = 4):
    return start_worker("engine_funcs.worker", tmp_path / f"{name}.log", threads=threads, **env)


def drive_until_final(runtime: Runtime, run_ids: list[str] | None = None, *, timeout: float = 60,
                      procs=(), on_tick=None) -> list[Run]:
    """Play the scheduler (fire timers, sweep) until every run (or ``run_ids``) is final."""
    deadline = time.monotonic() + timeout
    while True:
        runtime.timekeeper.fire_timers()
        runtime.timekeeper.sweep()
        if on_tick is not None:
            on_tick()
        query = Run.select()
        if run_ids is not None:
            query = query.where(Run.id.in_(run_ids))
        runs = list(query)
        if runs and all(r.status.value in FINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            states = {}
            for r in runs:
                states[r.status.value] = states.get(r.status.value, 0) + 1
            logs = "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in procs)
            raise AssertionError(f"runs not final after {timeout}s: {states}\n{logs}")
        time.sleep(0.1)
