"""Concurrency held across real worker processes: 2 dramatiq processes × 4 threads on Redis
and PostgreSQL; the steps record when they executed, and the overlap never exceeds the
function-wide limit nor the per-key limit."""

from __future__ import annotations

import contextlib

import capacity_funcs
from engine_funcs.harness import _delete_queue_keys, drive_until_final
from procs import start_worker
from tengo_jobs import Jobs, Settings
from tengo_jobs.core.registry import Registry
from tengo_jobs.runtime import Runtime, set_runtime
from tengo_jobs.store.schema import RunStatus


def _max_overlap(intervals) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                   key=lambda x: (x[0], x[1]))
    inside = most = 0
    for _, d in edges:
        inside += d
        most = max(most, inside)
    return most


def test_limits_hold_across_two_worker_processes(postgres_url, redis_url, queue_name, tmp_path):
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "TENGO_QUEUE": queue_name,
           "TENGO_FUNCTIONS": "capacity_funcs", "TENGO_ENV": "test"}
    settings = Settings.from_env(env, functions=())
    registry = Registry()
    runtime = Runtime(settings=settings, registry=registry, set_global_broker=False)
    previous = set_runtime(runtime)
    worker = None
    try:
        runtime.migrate()
        capacity_funcs.create_table(postgres_url)
        capacity_funcs.register(Jobs(app_id=capacity_funcs.APP_ID, runtime=runtime,
                                     registry=registry))
        worker = start_worker("capacity_funcs", tmp_path / "worker.log", processes=2,
                              threads=4, **env)
        runtime.send([{"name": "capacity.go", "data": {"k": f"k{i % 5}"}} for i in range(30)])
        runs = drive_until_final(runtime, timeout=120, procs=[worker])
        assert [r.status for r in runs] == [RunStatus.COMPLETED] * 30, worker.log()[-3000:]
        recorded = capacity_funcs.intervals(postgres_url)
        assert len(recorded) == 60
        assert _max_overlap([(s, e) for _, s, e in recorded]) <= 3
        for key in {k for k, _, _ in recorded}:
            assert _max_overlap([(s, e) for k, s, e in recorded if k == key]) <= 1, key
    finally:
        if worker is not None:
            worker.stop()
        runtime.close()
        with contextlib.suppress(Exception):
            _delete_queue_keys(runtime)
        set_runtime(previous)
