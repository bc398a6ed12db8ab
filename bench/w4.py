"""Benchmark W4: four sequential ``step.run`` steps per run, against a plain 4-actor Dramatiq pipeline.

Measures, with a worker started as production starts it (``dramatiq MODULE -p 1 -t 8``):

* completion throughput (runs/s) for ``--runs`` runs submitted as fast as one thread can, one
  event per ``send`` (the headline: what an application's request handlers do) and in
  batches of 100: runs divided by the time from the first submission to the last completion;
* submit→complete latency p50/p99 at a steady ``--rate`` (runs/s) for ``--seconds``;
* the same two for the plain pipeline (``plain_1`` → … → ``plain_4``, each actor sending the
  next, nothing stored) on the same Redis;
* per-step checkpoint overhead, in-process on each database: one run of N ``step.run`` no-op
  steps minus one run calling the same no-op N times without steps, divided by N.

Run: ``python bench/w4.py`` (``--repeat 3`` by default; ``--help`` for options). Needs Redis at
127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432 (``BENCH_REDIS_URL``, ``BENCH_POSTGRES_URL``).
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


def _runtime(database_url: str, queue: str, *, broker=None, registry=None):
    return H.producer_runtime(database_url, queue, broker=broker, registry=registry)


def _load_functions():
    import _w4_funcs  # noqa: F401  (registers w4/w1 and the plain actors on the current broker)

    return _w4_funcs


def _completed_count(function_id: str) -> int:
    from tengo_jobs.store.schema import RunRow as Run, RunStatus

    return (Run.select().where((Run.function_id == function_id)
                               & (Run.status == RunStatus.COMPLETED)).count())


def _tengo_throughput(runtime, n: int, event: str, function_id: str, worker, *,
                      batch: int = 1) -> dict:
    from tengo_jobs.store.schema import RunRow as Run

    before = _completed_count(function_id)
    start_ms = runtime.now()
    t0 = time.perf_counter()
    if batch == 1:  # as an application does from a request handler: one send per event
        for i in range(n):
            runtime.send({"name": event, "data": {"i": i}})
    else:
        for i in range(0, n, batch):
            runtime.send([{"name": event, "data": {"i": j}} for j in range(i, min(n, i + batch))])
    submit_s = time.perf_counter() - t0
    H.wait_for(lambda: _completed_count(function_id) >= before + n, timeout=600, interval=0.1,
               what=f"{n} {function_id} runs", worker=worker)
    last = (Run.select(Run.ended_at).where((Run.function_id == function_id)
                                           & (Run.created_at >= start_ms))
            .order_by(Run.ended_at.desc()).limit(1).scalar())
    elapsed_s = (last - start_ms) / 1000
    return {"runs": n, "batch": batch, "elapsed_s": elapsed_s, "runs_per_s": n / elapsed_s,
            "submit_s": submit_s, "submit_per_s": n / submit_s}


def _paced(rate: float, seconds: float, send) -> int:
    interval = 1.0 / rate
    count = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(count):
        target = t0 + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)
    return count


def _tengo_latency(runtime, rate: float, seconds: float, event: str, function_id: str,
                   worker) -> dict:
    from tengo_jobs.store.schema import RunRow as Run

    before = _completed_count(function_id)
    start_ms = runtime.now()
    count = _paced(rate, seconds, lambda i: runtime.send({"name": event, "data": {"i": i}}))
    H.wait_for(lambda: _completed_count(function_id) >= before + count, timeout=300,
               interval=0.1, what="latency runs", worker=worker)
    lat = [e - c for c, e in Run.select(Run.created_at, Run.ended_at).where(
        (Run.function_id == function_id) & (Run.created_at >= start_ms)).tuples()]
    return {"runs": len(lat), "p50_ms": H.percentile(lat, 50), "p99_ms": H.percentile(lat, 99)}


def bench_tengo(backend: str, args) -> dict:
    from tengo_jobs.runtime import set_runtime

    queue = f"bench_w4_{uuid.uuid4().hex[:8]}"
    url_cm = H.sqlite_url() if backend == "sqlite" else H.postgres_url()
    with url_cm as url:
        runtime = _runtime(url, queue)
        _load_functions()
        worker = H.Worker({"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
                           "TENGO_FUNCTIONS": "_w4_funcs", "TENGO_ENV": "test"},
                          threads=args.threads)
        try:
            _tengo_throughput(runtime, 100, "bench.w4", "w4", worker)  # warm-up
            result = {
                "throughput": _tengo_throughput(runtime, args.runs, "bench.w4", "w4", worker),
                "throughput_batch100": _tengo_throughput(runtime, args.runs, "bench.w4", "w4",
                                                         worker, batch=100),
                "latency": _tengo_latency(runtime, args.rate, args.seconds, "bench.w4", "w4",
                                          worker),
            }
            if args.w1:
                result["w1_throughput"] = _tengo_throughput(runtime, args.runs, "bench.w1", "w1",
                                                            worker)
        finally:
            worker.stop()
            H.delete_keys(runtime.broker.client, f"dramatiq:{queue}*")
            runtime.close()
            set_runtime(None)
    return result


def bench_plain(args) -> dict:
    """The 4-actor pipeline. Its worker still builds a tengo runtime (on an idle SQLite file)."""
    from tengo_jobs.runtime import set_runtime

    queue = f"bench_w4_{uuid.uuid4().hex[:8]}"
    with H.sqlite_url() as url:
        runtime = _runtime(url, queue)
        funcs = _load_functions()
        plain_queue = funcs.PLAIN_QUEUE  # fixed per bench process (see main)
        client = runtime.broker.client
        worker = H.Worker({"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
                           "TENGO_FUNCTIONS": "_w4_funcs", "TENGO_ENV": "test",
                           "BENCH_PLAIN_QUEUE": plain_queue}, threads=args.threads)

        def done(tag):
            return client.llen(f"bench:{tag}:done")

        def throughput(n):
            tag = uuid.uuid4().hex[:8]
            start_ms = int(time.time() * 1000)
            for _ in range(n):
                funcs.plain_1.send(tag, int(time.time() * 1000))
            H.wait_for(lambda: done(tag) >= n, timeout=600, interval=0.1, what="plain runs",
                       worker=worker)
            last = max(int(x) for x in client.lrange(f"bench:{tag}:done", 0, -1))
            elapsed = (last - start_ms) / 1000
            return {"runs": n, "elapsed_s": elapsed, "runs_per_s": n / elapsed}

        try:
            throughput(100)  # warm-up
            result = {"throughput": throughput(args.runs)}
            tag = uuid.uuid4().hex[:8]
            count = _paced(args.rate, args.seconds,
                           lambda i: funcs.plain_1.send(tag, int(time.time() * 1000)))
            H.wait_for(lambda: done(tag) >= count, timeout=300, interval=0.1,
                       what="plain latency runs", worker=worker)
            lat = [int(x) for x in client.lrange(f"bench:{tag}:latency", 0, -1)]
            result["latency"] = {"runs": len(lat), "p50_ms": H.percentile(lat, 50),
                                 "p99_ms": H.percentile(lat, 99)}
        finally:
            worker.stop()
            H.delete_keys(client, f"dramatiq:{queue}*")
            H.delete_keys(client, f"dramatiq:{plain_queue}*")
            H.delete_keys(client, "bench:*")
            runtime.close()
            set_runtime(None)
    return result


def bench_checkpoints(backend: str, steps: int, repeats: int) -> dict:
    """Per-step cost in-process: (one run of N no-op steps − one run of N plain calls) / N."""
    from dramatiq.brokers.stub import StubBroker

    from tengo_jobs import Jobs
    from tengo_jobs.store.schema import RunRow as Run
    from tengo_jobs.core.registry import Registry
    from tengo_jobs.runtime import set_runtime

    def noop():
        return {"ok": True}

    url_cm = H.sqlite_url() if backend == "sqlite" else H.postgres_url()
    with url_cm as url:
        runtime = _runtime(url, "bench_ckpt", broker=StubBroker(), registry=Registry())
        jobs = Jobs(app_id="ckpt", runtime=runtime, registry=runtime.registry)

        @jobs.function("with-steps", event="ck.steps", retries=0)
        def with_steps(ctx, step):
            for _ in range(steps):
                step.run("s", noop)

        @jobs.function("without-steps", event="ck.plain", retries=0)
        def without_steps(ctx, step):
            for _ in range(steps):
                noop()

        def time_one(event):
            [event_id] = runtime.send({"name": event, "data": {}})
            runtime.broker.flush_all()
            run_id = Run.select(Run.id).where(Run.event_id == event_id).scalar()
            t0 = time.perf_counter()
            outcome = runtime.executor.execute(run_id)
            elapsed = time.perf_counter() - t0
            assert outcome == "completed", outcome
            return elapsed

        try:
            time_one("ck.steps"), time_one("ck.plain")  # warm-up (connection, caches)
            with_s = [time_one("ck.steps") for _ in range(repeats)]
            without_s = [time_one("ck.plain") for _ in range(repeats)]
            cur = runtime.db.execute_sql("SELECT 1")
            t0 = time.perf_counter()
            for _ in range(200):
                runtime.db.execute_sql("SELECT 1").fetchone()
            roundtrip_ms = (time.perf_counter() - t0) / 200 * 1000
            cur.close()
        finally:
            runtime.close()
            set_runtime(None)
    per_step_ms = (H.median(with_s) - H.median(without_s)) / steps * 1000
    return {"steps": steps, "with_steps_ms": H.median(with_s) * 1000,
            "without_steps_ms": H.median(without_s) * 1000, "per_step_ms": per_step_ms,
            "select1_roundtrip_ms": roundtrip_ms}


def versions() -> dict:
    import importlib.metadata as md
    import os

    import psycopg
    import redis

    out = {"python": platform.python_version(), "cpus": os.cpu_count(),
           "platform": platform.platform()}
    for pkg in ("dramatiq", "peewee", "psycopg", "redis", "tengo-jobs"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "?"
    try:
        with psycopg.connect(H.POSTGRES_URL) as conn:
            out["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            out["pg_synchronous_commit"] = conn.execute("SHOW synchronous_commit").fetchone()[0]
            out["pg_fsync"] = conn.execute("SHOW fsync").fetchone()[0]
    except Exception as exc:  # noqa: BLE001
        out["postgresql"] = f"unavailable: {exc}"
    out["redis_server"] = redis.Redis.from_url(H.REDIS_URL).info()["redis_version"]
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=2000, help="runs for the throughput measure")
    p.add_argument("--rate", type=float, default=50, help="runs/s for the latency measure")
    p.add_argument("--seconds", type=float, default=10, help="duration of the latency measure")
    p.add_argument("--threads", type=int, default=8, help="worker threads (1 process)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--checkpoint-steps", type=int, default=200)
    p.add_argument("--w1", action="store_true", help="also measure W1 (one step) throughput")
    p.add_argument("--json", type=Path, help="write every trial and the medians here")
    args = p.parse_args(argv)
    import os

    # _w4_funcs reads its plain queue name at import, in this process and in the workers
    os.environ["BENCH_PLAIN_QUEUE"] = f"bench_w4_plain_{uuid.uuid4().hex[:8]}"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    info = versions()
    print(json.dumps(info), flush=True)
    trials = []
    for trial in range(args.repeat):
        t = {"plain": bench_plain(args)}
        for backend in backends:
            t[backend] = bench_tengo(backend, args)
            t[f"checkpoint_{backend}"] = bench_checkpoints(backend, args.checkpoint_steps, 5)
        trials.append(t)
        print(json.dumps({"trial": trial + 1, **t}), flush=True)

    summary = summarize(trials, backends)
    print("\nmedians over", args.repeat, "trial(s):")
    for line in summary["lines"]:
        print(" ", line)
    if args.json:
        args.json.write_text(json.dumps({"versions": info, "args": vars(args) | {"json": str(args.json)},
                                         "trials": trials, "summary": summary}, indent=2))
    return 0


def summarize(trials: list[dict], backends: list[str]) -> dict:
    def med(path):
        values = []
        for t in trials:
            node = t
            for key in path:
                node = node[key]
            values.append(node)
        return H.median(values)

    lines = []
    plain_thr = med(["plain", "throughput", "runs_per_s"])
    lines.append(f"plain 4-actor pipeline: {plain_thr:.0f} runs/s; latency p50 "
                 f"{med(['plain', 'latency', 'p50_ms']):.1f} ms, p99 "
                 f"{med(['plain', 'latency', 'p99_ms']):.1f} ms")
    out = {"plain_runs_per_s": plain_thr, "lines": lines}
    for b in backends:
        thr = med([b, "throughput", "runs_per_s"])
        out[f"{b}_runs_per_s"] = thr
        lines.append(f"W4 on Redis + {b}, one event per send: {thr:.0f} runs/s "
                     f"(x{thr / plain_thr:.2f} of plain), submitted at "
                     f"{med([b, 'throughput', 'submit_per_s']):.0f}/s; latency p50 "
                     f"{med([b, 'latency', 'p50_ms']):.1f} ms, "
                     f"p99 {med([b, 'latency', 'p99_ms']):.1f} ms")
        batched = med([b, "throughput_batch100", "runs_per_s"])
        out[f"{b}_batch100_runs_per_s"] = batched
        lines.append(f"W4 on Redis + {b}, batches of 100: {batched:.0f} runs/s "
                     f"(x{batched / plain_thr:.2f} of plain)")
        if "w1_throughput" in trials[0][b]:
            lines.append(f"W1 on Redis + {b}: {med([b, 'w1_throughput', 'runs_per_s']):.0f} runs/s")
        lines.append(f"checkpoint overhead on {b}: {med([f'checkpoint_{b}', 'per_step_ms']):.3f} "
                     f"ms/step (SELECT 1 round trip "
                     f"{med([f'checkpoint_{b}', 'select1_roundtrip_ms']):.3f} ms)")
    return out


if __name__ == "__main__":
    sys.exit(main())
