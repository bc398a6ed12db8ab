"""Benchmark plumbing: throwaway databases, a production-shaped worker process, percentiles."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def sqlite_url():
    with tempfile.TemporaryDirectory(prefix="tj-bench-") as tmp:
        yield f"sqlite:///{tmp}/bench.db"


@contextlib.contextmanager
def postgres_url():
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"tj_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


class Worker:
    """``dramatiq MODULE -p PROCESSES -t THREADS`` (default ``_w4_funcs``) in its own
    process group."""

    def __init__(self, env: dict[str, str], *, processes: int = 1, threads: int = 8,
                 log_path: Path | None = None, module: str = "_w4_funcs"):
        full = dict(os.environ)
        full.update(env)
        full["PYTHONPATH"] = os.pathsep.join([str(BENCH), str(ROOT), full.get("PYTHONPATH", "")])
        full["PYTHONUNBUFFERED"] = "1"
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="tj-bench-worker-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", module, "-p", str(processes), "-t", str(threads)],
            env=full, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        self._log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.02, worker=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}"
                               + (f"\n{worker.tail()}" if worker is not None else ""))
        time.sleep(interval)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values):
    return statistics.median(values)


def delete_keys(client, pattern: str) -> None:
    keys = list(client.scan_iter(match=pattern, count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def producer_runtime(database_url: str, queue: str, *, broker=None, registry=None):
    """The benchmark's own runtime (it sends the events and reads the results), made current
    and migrated; functions modules imported after this register on it."""
    from tengo_jobs import Settings
    from tengo_jobs.runtime import Runtime, set_runtime

    settings = Settings(database_url=database_url, redis_url=None if broker else REDIS_URL,
                        queue_name=queue, functions=(), env="test")
    runtime = Runtime(settings=settings, broker=broker, registry=registry)
    set_runtime(runtime)
    runtime.migrate()
    return runtime
