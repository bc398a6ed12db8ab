"""Benchmark: retention under load. Prune a large history of finished runs on PostgreSQL while
W4 (four ``step.run`` steps per run) runs at full speed, and compare W4's throughput during
the prune with its throughput without it.

1. A private database (created, dropped afterwards) is filled server-side with ``--runs``
   finished runs that ended 60 days ago, ``--steps`` steps per run and one event per run
   (``INSERT … SELECT … generate_series`` in chunks; then ``VACUUM ANALYZE``, as an old table
   would be).
2. A worker as production starts it (``dramatiq _w4_funcs -p 2 -t 8``) runs W4; a producer
   thread keeps ``--backlog`` runs queued (events in batches of 100), so the worker never
   idles.
3. W4 throughput (runs completed per second, read from ``tj_counters``) over ``--window``
   seconds, then during ``tengo-jobs prune --older-than 30d`` in its own process (the CLI a
   user runs; the scheduler prunes with the same code), then ``--window`` seconds again.
   Throughput during the prune is compared with the mean of the two windows around it.

Run: ``python bench/prune.py`` (``--runs 1000000 --steps 5`` by default; ``--help``).
Needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (``BENCH_REDIS_URL``,
``BENCH_POSTGRES_URL``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

DAY_MS = 86_400_000
CHUNK = 100_000  # runs per fill statement


def fill(url: str, runs: int, steps: int) -> dict:
    """``runs`` finished runs (ended 60 days ago) with ``steps`` steps each and their events."""
    import psycopg

    now = int(time.time() * 1000)
    start = now - 60 * DAY_MS - runs  # one event a millisecond, as traffic spreads them
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for lo in range(0, runs, CHUNK):
            hi = min(runs, lo + CHUNK) - 1
            args = {"lo": lo, "hi": hi, "t": start, "steps": steps}
            conn.execute(
                'INSERT INTO "tj_events" ("id", "name", "data", "user", "external_id", "ts", "v", '
                '"received_at") SELECT \'ev\' || lpad(i::text, 12, \'0\'), \'bench.old\', '
                '\'{"i":\' || i || \'}\', NULL, NULL, %(t)s::bigint + i, NULL, %(t)s::bigint + i '
                'FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i', args)
            conn.execute(
                'INSERT INTO "tj_runs" ("id", "app_id", "function_id", "event_id", "status", '
                '"output", "attempt", "created_at", "started_at", "ended_at", "wake_at", '
                '"inflight", "signal") SELECT \'run\' || lpad(i::text, 12, \'0\'), \'bench\', '
                '\'old\', \'ev\' || lpad(i::text, 12, \'0\'), \'completed\', \'{"ok":true}\', 0, '
                '%(t)s::bigint + i, %(t)s::bigint + i + 10, %(t)s::bigint + i + 100, '
                '%(t)s::bigint + i, 0, 0 '
                'FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i', args)
            conn.execute(
                'INSERT INTO "tj_steps" ("run_id", "key", "name", "kind", "position", "status", '
                '"attempts", "output", "started_at", "ended_at") '
                'SELECT \'run\' || lpad(i::text, 12, \'0\'), \'s\' || p, \'s\' || p, \'run\', p, '
                '\'completed\', 1, \'{"step":\' || p || \',"ok":true}\', %(t)s::bigint + i + 10, '
                '%(t)s::bigint + i + 20 '
                'FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) i, '
                'generate_series(1, %(steps)s::int) p', args)
            print(f"  filled {hi + 1:,} runs ({time.perf_counter() - t0:.0f} s)", flush=True)
        conn.execute('VACUUM ANALYZE "tj_runs"')
        conn.execute('VACUUM ANALYZE "tj_steps"')
        conn.execute('VACUUM ANALYZE "tj_events"')
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {"runs": runs, "steps": runs * steps, "events": runs,
            "fill_s": round(time.perf_counter() - t0, 1), "database_mb": round(size / 2**20)}


class Load:
    """Keeps ``backlog`` W4 runs queued: a thread sending events in batches of 100."""

    def __init__(self, runtime, url: str, backlog: int):
        import psycopg

        self.runtime = runtime
        self.backlog = backlog
        self.sent = 0
        self.stop = threading.Event()
        self.conn = psycopg.connect(url, autocommit=True)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def completed(self) -> int:
        with self.lock:
            row = self.conn.execute('SELECT COALESCE(SUM("completed"), 0) FROM "tj_counters" '
                                    "WHERE \"function_id\" = 'w4'").fetchone()
        return int(row[0])

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.sent - self.completed() < self.backlog:
                self.runtime.send([{"name": "bench.w4", "data": {"i": self.sent + j}}
                                   for j in range(100)])
                self.sent += 100
            else:
                time.sleep(0.02)

    def rate(self, seconds: float) -> float:
        """W4 runs completed per second over the next ``seconds``."""
        c0, t0 = self.completed(), time.perf_counter()
        time.sleep(seconds)
        return (self.completed() - c0) / (time.perf_counter() - t0)


def prune_under_load(url: str, args) -> dict:
    import w4 as W4

    from tengo_jobs.runtime import set_runtime

    queue = f"bench_prune_{uuid.uuid4().hex[:8]}"
    runtime = W4._runtime(url, queue)
    W4._load_functions()
    env = {"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
           "TENGO_FUNCTIONS": "_w4_funcs", "TENGO_ENV": "test"}
    worker = H.Worker(env, processes=args.processes, threads=args.threads)
    load = Load(runtime, url, args.backlog)
    try:
        load.thread.start()
        H.wait_for(lambda: load.completed() >= 200, timeout=120, what="the W4 warm-up",
                   worker=worker)
        time.sleep(5)
        before = load.rate(args.window)
        print(f"  W4 before: {before:.0f} runs/s", flush=True)

        full = {**os.environ, **env, "TENGO_FUNCTIONS": ""}
        full["PYTHONPATH"] = os.pathsep.join([str(H.ROOT), full.get("PYTHONPATH", "")])
        c0, t0 = load.completed(), time.perf_counter()
        samples = []
        prune = subprocess.Popen([sys.executable, "-m", "tengo_jobs.cli", "prune",
                                  "--older-than", "30d"], env=full, cwd=H.ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while prune.poll() is None:
            samples.append(load.rate(10))
            print(f"    W4 during the prune: {samples[-1]:.0f} runs/s", flush=True)
        prune_s = time.perf_counter() - t0
        during = (load.completed() - c0) / prune_s
        out = prune.stdout.read().strip() if prune.stdout else ""
        if prune.returncode != 0:
            raise RuntimeError(f"prune failed: {out}")
        print(f"  prune: {out} in {prune_s:.1f} s; W4 during: {during:.0f} runs/s", flush=True)

        after = load.rate(args.window)
        print(f"  W4 after: {after:.0f} runs/s", flush=True)
    finally:
        load.stop.set()
        load.thread.join(10)
        worker.stop()
        H.delete_keys(runtime.broker.client, f"dramatiq:{queue}*")
        load.conn.close()
        runtime.close()
        set_runtime(None)
    words = out.split()  # "deleted N run(s), N step(s), N event(s), N expired dedupe claim(s)"
    deleted = {"runs": int(words[1]), "steps": int(words[3]), "events": int(words[5])}
    rows = sum(deleted.values())
    baseline = (before + after) / 2
    return {"deleted": deleted, "prune_s": round(prune_s, 1),
            "prune_runs_per_s": round(deleted["runs"] / prune_s),
            "prune_rows_per_s": round(rows / prune_s),
            "w4_before": round(before, 1), "w4_during": round(during, 1),
            "w4_after": round(after, 1),
            "w4_during_samples_10s": [round(s, 1) for s in samples],
            "w4_during_vs_without": round(during / baseline, 3) if baseline else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=5, help="steps per run")
    parser.add_argument("--window", type=float, default=40.0,
                        help="seconds of W4 measured before and after the prune")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--backlog", type=int, default=2_000)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    with H.postgres_url() as url:
        import w4 as W4

        from tengo_jobs.runtime import set_runtime

        W4._runtime(url, "bench_prune_migrate").close()  # the schema, migrated
        set_runtime(None)
        print(f"filling {args.runs:,} runs × {args.steps} steps …", flush=True)
        filled = fill(url, args.runs, args.steps)
        print(f"  {filled}", flush=True)
        result = {"filled": filled, **prune_under_load(url, args)}
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
