"""Sleep scale: N runs asleep until the same instant; how fast does the system wake them?

    python bench/sleep_scale.py --runs 100000

On a fresh PostgreSQL database (created and dropped here) and a throwaway
redis-server, with a real ``dramatiq`` worker process and a real
``python scheduler.py`` process:

1. send N events (batches of 5,000 through ``send_events``); each run executes
   ``step.sleep_until("until", <tomorrow>)`` and suspends — the worker holds
   nothing for it afterwards (its RSS is sampled before and after);
2. move every sleeping run's due time (timer, run and step rows, one UPDATE each)
   to the same instant D, ``--lead`` seconds ahead — so all N are asleep at once
   whatever the set-up took;
3. wait until every run completed; wake-up lag = the ``woke`` step's start - D.

Reports lag p50/p99/max, when the last run finished (after D), and peak RSS
(VmHWM) of the worker's processes and of the scheduler. This file is also the
function module the worker imports (``dramatiq sleep_scale``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FAR_FUTURE_MS = 24 * 3_600_000

if __name__ != "__main__":  # imported by the worker (and by main): declare the function
    from tengo_jobs import Jobs

    jobs = Jobs(app_id="bench")

    @jobs.function("bench-sleeper", event="bench/sleep", retries=0)
    def sleeper(ctx, step):
        step.sleep_until("until", int(ctx.event.data["until"]))
        return step.run("woke", lambda: int(time.time() * 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rss_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    kids = [int(p) for p in out.stdout.split()]
    return [pid] + [k for kid in kids for k in _tree(kid)]


def _tree_kb(pid: int, field: str) -> int:
    return sum(_rss_kb(p, field) for p in _tree(pid))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, env, log_path):
    log = open(log_path, "wb")
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _pct(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _insert_sleeping(runtime, n: int, until: int) -> None:
    """Rows of ``n`` runs suspended in ``step.sleep_until("until", until)``, as the executor
    writes them (event, run ``sleeping``, step ``sleeping``, timer)."""
    import json

    from tengo_jobs.ids import new_id
    from tengo_jobs.store.schema import EventRow as Event, RunRow as Run, StepRow as Step, TimerRow as Timer

    now = _now_ms()
    for i in range(0, n, 1_000):
        events, runs, steps, timers = [], [], [], []
        for _ in range(min(1_000, n - i)):
            event_id, run_id = new_id(now), new_id(now)
            events.append(dict(id=event_id, name="bench/sleep", data=json.dumps({"until": until}),
                               ts=now, received_at=now))
            runs.append(dict(id=run_id, app_id="bench", function_id="bench-sleeper",
                             event_id=event_id, status="sleeping", attempt=0, created_at=now,
                             started_at=now, wake_at=until))
            steps.append(dict(run_id=run_id, key="until", name="until", kind="sleep", position=0,
                              status="sleeping", attempts=0, started_at=now, wake_at=until))
            timers.append(dict(run_id=run_id, due_at=until, kind="sleep"))
        with runtime.db.atomic():
            for model, rows in ((Event, events), (Run, runs), (Step, steps), (Timer, timers)):
                model.insert_many(rows).execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from the move to D")
    parser.add_argument("--processes", type=int, default=1, help="dramatiq -p")
    parser.add_argument("--threads", type=int, default=8, help="dramatiq -t")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--timeout", type=float, default=1_800)
    parser.add_argument("--logs", default="/tmp/sleep_scale_logs")
    parser.add_argument("--direct", action="store_true",
                        help="write the N runs already asleep (the rows a suspended run has) "
                             "instead of executing each once to reach its sleep")
    args = parser.parse_args()

    import psycopg

    db_name = f"tj_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(args.postgres, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    db_url = f"{args.postgres.rsplit('/', 1)[0]}/{db_name}"
    redis_port = _free_port()
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    redis_proc = _start([shutil.which("redis-server"), "--port", str(redis_port), "--bind",
                         "127.0.0.1", "--save", "", "--appendonly", "no"], dict(os.environ),
                        logs / "redis.log")
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
               TENGO_FUNCTIONS="sleep_scale", TENGO_ENV="test", TENGO_QUEUE="bench",
               # a backlog older than the default 60 s would be re-sent by the sweeper
               TENGO_REDELIVER_AFTER="1h",
               PYTHONPATH=os.pathsep.join([str(BENCH), str(ROOT)]), PYTHONUNBUFFERED="1")
    procs = []
    try:
        time.sleep(0.5)
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "TENGO_FUNCTIONS",
                                               "TENGO_ENV", "TENGO_QUEUE")})
        sys.path.insert(0, str(BENCH))
        from tengo_jobs.store.schema import RunRow as Run, RunStatus, StepRow as Step, TimerRow as Timer
        from tengo_jobs.runtime import boot

        runtime = boot(load_functions=True)  # imports sleep_scale: the function is declared
        worker = _start([sys.executable, "-m", "dramatiq", "sleep_scale", "-p",
                         str(args.processes), "-t", str(args.threads)], env, logs / "worker.log")
        procs.append(worker)
        time.sleep(3)
        worker_idle_kb = _tree_kb(worker.pid, "VmRSS")

        # 1. N runs, each asleep until tomorrow.
        t0 = time.monotonic()
        far = _now_ms() + FAR_FUTURE_MS
        if args.direct:
            _insert_sleeping(runtime, args.runs, far)
        else:
            for i in range(0, args.runs, 5_000):
                n = min(5_000, args.runs - i)
                runtime.send([{"name": "bench/sleep", "data": {"until": far}}] * n)
        insert_s = time.monotonic() - t0
        print(f"inserted {args.runs} events+runs in {insert_s:.1f}s "
              f"({args.runs / insert_s:.0f}/s)", flush=True)
        while True:
            asleep = Run.select().where(Run.status == RunStatus.SLEEPING).count()
            if asleep >= args.runs:
                break
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"only {asleep} runs asleep after {args.timeout}s")
            time.sleep(1)
        suspend_s = time.monotonic() - t0
        print(f"all {args.runs} runs asleep after {suspend_s:.1f}s", flush=True)
        worker_asleep_kb = _tree_kb(worker.pid, "VmRSS")

        scheduler = _start([sys.executable, str(ROOT / "scheduler.py")], env, logs / "scheduler.log")
        procs.append(scheduler)
        deadline = time.monotonic() + 60
        while b"scheduler started" not in (logs / "scheduler.log").read_bytes():
            if time.monotonic() > deadline or scheduler.poll() is not None:
                raise SystemExit("the scheduler did not start; see " + str(logs / "scheduler.log"))
            time.sleep(0.2)

        # 2. Everyone due at the same instant D.
        due = _now_ms() + int(args.lead * 1000)
        with runtime.db.atomic():
            Timer.update(due_at=due).execute()
            Run.update(wake_at=due).where(Run.status == RunStatus.SLEEPING).execute()
            Step.update(wake_at=due).where(Step.key == "until").execute()

        # 3. Wait for every run to complete, sampling memory.
        sched_peak = worker_peak = 0
        while True:
            worker_peak = max(worker_peak, _tree_kb(worker.pid, "VmRSS"))
            sched_peak = max(sched_peak, _rss_kb(scheduler.pid, "VmRSS"))
            done = Run.select().where(Run.status == RunStatus.COMPLETED).count()
            if done >= args.runs:
                break
            if _now_ms() - due > args.timeout * 1000:
                raise SystemExit(f"only {done} runs completed {args.timeout}s after D")
            time.sleep(0.5)
        worker_hwm = _tree_kb(worker.pid, "VmHWM")
        sched_hwm = _rss_kb(scheduler.pid, "VmHWM")

        lags = [r[0] - due for r in Step.select(Step.started_at).where(Step.key == "woke").tuples()]
        fired = [r[0] - due for r in Run.select(Run.enqueued_at).tuples()]
        last_end = Run.select(Run.ended_at).order_by(Run.ended_at.desc()).limit(1).scalar()
        failed = Run.select().where(Run.status != RunStatus.COMPLETED).count()
        print(f"\nruns: {args.runs}  worker: dramatiq -p {args.processes} -t {args.threads}  "
              f"failed/other: {failed}")
        print(f"insert: {insert_s:.1f}s  all asleep after: {suspend_s:.1f}s")
        print(f"wake-up lag (D -> 'woke' step start): p50 {statistics.median(lags) / 1000:.2f}s  "
              f"p99 {_pct(lags, 0.99) / 1000:.2f}s  max {max(lags) / 1000:.2f}s  "
              f"min {min(lags) / 1000:.3f}s")
        print(f"scheduler lag (D -> wake-up enqueued): p50 {statistics.median(fired) / 1000:.2f}s  "
              f"p99 {_pct(fired, 0.99) / 1000:.2f}s  max {max(fired) / 1000:.2f}s")
        print(f"last run finished {(last_end - due) / 1000:.1f}s after D "
              f"({args.runs / max(0.001, (last_end - due) / 1000):.0f} runs/s)")
        print(f"worker RSS: idle {worker_idle_kb / 1024:.0f} MiB, with {args.runs} asleep "
              f"{worker_asleep_kb / 1024:.0f} MiB, peak sampled {worker_peak / 1024:.0f} MiB, "
              f"VmHWM sum {worker_hwm / 1024:.0f} MiB")
        print(f"scheduler RSS: peak sampled {sched_peak / 1024:.0f} MiB, VmHWM {sched_hwm / 1024:.0f} MiB")
        runtime.close()
        return 0
    finally:
        for proc in procs:
            _stop(proc)
        _stop(redis_proc)
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (db_name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
