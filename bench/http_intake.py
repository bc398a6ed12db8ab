"""HTTP intake throughput: gunicorn (2 sync workers) on PostgreSQL, wrk on loopback.

Scenarios: single-event requests (``POST /e/<key>`` with one event) and batches of
100 events per request. Every event triggers one function, so each event costs an
event row, a run row and a Redis wake-up message, as in production. Each scenario
runs ``--rounds`` times for ``--seconds``; the medians are reported.

    python bench/http_intake.py [--seconds 8] [--rounds 3] [--connections 8]

Needs PostgreSQL at 127.0.0.1:5432 (user postgres), Redis at 127.0.0.1:6379 and
``wrk`` (``apt-get install wrk``). Uses a fresh database and its own Redis queue,
both removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
EVENT_KEY = "bench-event-key-0123456789"
PASSWORD = "bench-dashboard-password"

FUNCTIONS_MODULE = '''
from tengo_jobs import Jobs

jobs = Jobs(app_id="bench")


@jobs.function("bench-handler", event="bench.event")
def handler(ctx, step):
    return None
'''

WRK_SCRIPT = '''
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{path}", "rb"))
wrk.body = f:read("*a")
f:close()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, body: str, seconds: int, connections: int, workdir: Path) -> dict:
    body_path = workdir / "body.json"
    body_path.write_text(body)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("{path}", str(body_path)))
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
                           "--latency", "-s", str(script), url], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stdout}{done.stderr}")
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.M))
    if set(latency) != {"50", "99"}:
        raise SystemExit(f"could not read wrk's latency distribution:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": parse_ms(latency["50"]), "p99_ms": parse_ms(latency["99"]),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn threads per worker (>1 uses the gthread worker)")
    parser.add_argument("--no-runs", action="store_true",
                        help="send an event name no function listens to: events only, no runs "
                             "and no Redis messages (isolates the database cost)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    import psycopg
    import redis

    db_name = f"tj_bench_{uuid.uuid4().hex[:10]}"
    queue = f"tj_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{db_name}"')
    workdir = Path(tempfile.mkdtemp(prefix="tj-bench-"))
    (workdir / "bench_intake_functions.py").write_text(FUNCTIONS_MODULE)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=f"{PG_ADMIN.rsplit('/', 1)[0]}/{db_name}",
               REDIS_URL=REDIS_URL, TENGO_QUEUE=queue, TENGO_ENV="production",
               TENGO_EVENT_KEYS=EVENT_KEY, TENGO_DASHBOARD_PASSWORD=PASSWORD,
               TENGO_FUNCTIONS="bench_intake_functions",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(workdir), os.environ.get("PYTHONPATH", "")]))
    # Migrate once before the workers start: two workers migrating a fresh database at the
    # same moment race on CREATE INDEX (see the report; boot() has no migration lock).
    subprocess.run([sys.executable, "-c", "import web"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # create_app() migrates every registered model
    log = open(workdir / "gunicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "web:app", "-b", f"127.0.0.1:{port}",
         "-w", str(args.workers), "--threads", str(args.threads), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, list[dict]] = {"single": [], "batch100": []}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib.request.urlopen(f"{base}/healthz", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"gunicorn did not come up; log: {workdir / 'gunicorn.log'}")
                time.sleep(0.2)
        name = "bench.untriggered" if args.no_runs else "bench.event"
        single = json.dumps({"name": name, "data": {"userId": "u-123", "n": 1}})
        batch = json.dumps([{"name": name, "data": {"userId": f"u-{i}", "n": i}}
                            for i in range(100)])
        url = f"{base}/e/{EVENT_KEY}"
        run_wrk(url, single, 2, args.connections, workdir)  # warm-up: connections, caches
        for _ in range(args.rounds):
            for name, body in (("single", single), ("batch100", batch)):
                results[name].append(run_wrk(url, body, args.seconds, args.connections, workdir))
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            stored = conn.execute("SELECT count(*) FROM tj_events").fetchone()[0]
            runs = conn.execute("SELECT count(*) FROM tj_runs").fetchone()[0]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        log.close()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"dramatiq:*{queue}*"):
            client.delete(key)
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (db_name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        admin.close()

    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"gunicorn {args.workers} workers x {args.threads} threads, wrk -t1 -c{args.connections}, "
          f"{args.rounds} x {args.seconds}s per scenario")
    print(f"stored {stored} events and {runs} runs")
    for name, per_request in (("single", 1), ("batch100", 100)):
        rounds = results[name]
        rps = statistics.median(r["rps"] for r in rounds)
        p50 = statistics.median(r["p50_ms"] for r in rounds)
        p99 = statistics.median(r["p99_ms"] for r in rounds)
        bad = sum(r["non_2xx"] for r in rounds)
        print(f"{name:>9}: {rps:8.0f} req/s  {rps * per_request:9.0f} events/s  "
              f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  non-2xx {bad}  "
              "(rounds req/s: " + ", ".join(f"{r['rps']:.0f}" for r in rounds) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
