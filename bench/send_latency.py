"""``jobs.send`` of one event from one thread: wall time per call and database round trips.

The event triggers one function, so each send stores the event, its dedupe claim and its run,
and hands the run's wake-up to the background sender (``tengo_jobs.broker.Waker``), which sends
it to Redis after the commit. Reported: p50/p99 of the wall time of each call, and the
statements the store executed per send (each ``Dialect.execute``/``executemany`` call is one
round trip to the database; BEGIN/COMMIT are counted by PostgreSQL's ``xact_commit``).

    python bench/send_latency.py [--sends 5000] [--backends postgresql,sqlite]

Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 (``BENCH_POSTGRES_URL``,
``BENCH_REDIS_URL``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402


def _count_statements(dialect) -> list[int]:
    """Wrap the store's two round-trip entry points with a counter (benchmark only)."""
    counter = [0]
    for name in ("execute", "executemany"):
        original = getattr(dialect, name)

        def counted(*args, _original=original, **kwargs):
            counter[0] += 1
            return _original(*args, **kwargs)

        setattr(dialect, name, counted)
    return counter


def _commits(runtime) -> int | None:
    if not runtime.settings.database_url.startswith("postgres"):
        return None
    import psycopg  # noqa: PLC0415 - only the PostgreSQL row needs it

    with psycopg.connect(runtime.settings.database_url, autocommit=True) as conn:
        return conn.execute("SELECT xact_commit FROM pg_stat_database "
                            "WHERE datname = current_database()").fetchone()[0]


def measure(backend: str, sends: int) -> dict:
    from tengo_jobs import Jobs, Settings
    from tengo_jobs.runtime import Runtime, set_runtime

    ctx = H.postgres_url() if backend == "postgresql" else H.sqlite_url()
    with ctx as url:
        queue = f"bench-send-{uuid.uuid4().hex[:8]}"
        runtime = Runtime(settings=Settings(database_url=url, redis_url=H.REDIS_URL,
                                            queue_name=queue, functions=(), env="test"))
        set_runtime(runtime)
        runtime.migrate()
        jobs = Jobs("bench-send", runtime=runtime)

        @jobs.function("bench-send-target", event="bench/send")
        def target(ctx, step):
            return None

        for i in range(200):  # warm-up: connections, statement caches, the waker thread
            jobs.send({"name": "bench/send", "data": {"i": i}})
        runtime.flush()
        counter = _count_statements(runtime.store.dialect)
        commits_before = _commits(runtime)
        times = []
        for i in range(sends):
            t0 = time.perf_counter()
            jobs.send({"name": "bench/send", "data": {"i": i}})
            times.append((time.perf_counter() - t0) * 1000)
        statements = counter[0]
        runtime.flush()
        time.sleep(1.5)  # PostgreSQL publishes its counters with a delay of up to a second
        commits_after = _commits(runtime)
        stored = len(runtime.store.queries.runs("bench-send-target"))
        runtime.close()
        import redis

        redis.Redis.from_url(H.REDIS_URL).delete(f"dramatiq:{queue}", f"dramatiq:{queue}.msgs")
    times.sort()
    row = {"backend": backend, "sends": sends, "runs_stored": stored,
           "p50_ms": round(times[len(times) // 2], 3), "p99_ms": round(times[int(len(times) * 0.99)], 3),
           "mean_ms": round(sum(times) / len(times), 3),
           "statements_per_send": round(statements / sends, 3)}
    if commits_before is not None:  # includes the few commits of the counting connections
        row["commits_per_send"] = round((commits_after - commits_before - 1) / sends, 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    print(f"# {platform.node()} Python {platform.python_version()}")
    for backend in args.backends.split(","):
        print(json.dumps(measure(backend, args.sends)), flush=True)


if __name__ == "__main__":
    main()
