"""200 runs whose one step awaits ``asyncio.sleep(1)``, on one worker process with 2 threads.

An awaiting async run holds no worker thread (the actor detaches it onto the worker's event
loop), so they overlap: the target is all 200 completed within 5 s (held threads would
need 100 s). Usage: ``python bench/async_runs.py [--runs 200] [--threads 2] [--db postgres|sqlite]``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import tempfile
import uuid
from pathlib import Path

from _harness import REDIS_URL, ROOT, postgres_url, sqlite_url

sys.path.insert(0, str(ROOT / "tests"))

from async_funcs import flows  # noqa: E402
from engine_funcs import harness  # noqa: E402
from procs import start_worker  # noqa: E402
from tengo_jobs import Jobs, Settings  # noqa: E402
from tengo_jobs.core.registry import Registry  # noqa: E402
from tengo_jobs.runtime import Runtime, set_runtime  # noqa: E402
from tengo_jobs.store.schema import RunRow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    make_db = postgres_url if args.db == "postgres" else sqlite_url
    with make_db() as url, contextlib.ExitStack() as stack:
        env = harness.worker_env(url, REDIS_URL, f"bench-async-{uuid.uuid4().hex[:8]}",
                                 TENGO_FUNCTIONS="async_funcs.worker")
        registry = Registry()
        runtime = Runtime(settings=Settings.from_env(env, functions=()), registry=registry,
                          set_global_broker=False)
        set_runtime(runtime)
        stack.callback(harness._delete_queue_keys, runtime)
        stack.callback(runtime.close)
        runtime.migrate()
        jobs = Jobs(app_id=flows.APP_ID, runtime=runtime, registry=registry)
        flows.register(jobs)
        proc = start_worker("async_funcs.worker", Path(stack.enter_context(tempfile.TemporaryDirectory())) / "worker.log",
                            threads=args.threads, **env)
        stack.callback(proc.stop)
        jobs.send({"name": "async.sleep", "data": {"n": -1, "seconds": 0}})
        harness.drive_until_final(runtime, timeout=60, procs=[proc])  # the worker is up
        started = time.monotonic()
        ids = jobs.send([{"name": "async.sleep", "data": {"n": n}} for n in range(args.runs)])
        run_ids = [r.id for r in RunRow.select().where(RunRow.event_id.in_(ids))]
        runs = harness.drive_until_final(runtime, run_ids, timeout=300, procs=[proc])
        elapsed = time.monotonic() - started
        done = sum(r.status.value == "completed" for r in runs)
        print(f"{args.db}: {done}/{args.runs} runs completed in {elapsed:.2f} s "
              f"(1 worker process, {args.threads} threads, each run awaits 1 s)")


if __name__ == "__main__":
    main()
