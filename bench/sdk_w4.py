"""Benchmark: W4 as a TypeScript function served by inngest 3.32.7 (``inngest/node``) and
driven by this engine over HTTP, next to the Python W4, in the same invocation.

Each trial, on a fresh PostgreSQL database and Redis queue:

* the TS app (``tests/js/seed/w4_app.mjs``, four sequential ``step.run`` like
  ``bench/_w4_funcs.py``'s ``w4``) is started on this machine and synced with a ``PUT`` (its
  SDK posts ``/fn/register`` to a web app of this process on the same database);
* one worker as production starts it, ``dramatiq _w4_funcs -p 2 -t 8`` (``--processes``,
  ``--threads``), serves both the Python ``w4`` and, through the HTTP driver, ``bench-ts-w4``;
* for each: throughput (``--runs`` runs sent one event per ``send`` as fast as one thread can;
  runs / time from the first send to the last completion) and submit→complete latency
  p50/p99 at a steady ``--rate`` for ``--seconds``;
* the HTTP round trips per TS run: the execution requests the app received / runs; and the
  CPU time the app's Node process spent per TS run (and its share of the phase's wall time).

Run: ``python bench/sdk_w4.py`` (``--repeat 3``; ``--help``). Needs Node.js with
``tests/js``'s modules (``cd tests/js && npm ci``), Redis and PostgreSQL
(``BENCH_REDIS_URL``, ``BENCH_POSTGRES_URL``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
import w4 as W  # noqa: E402

JS = H.ROOT / "tests" / "js"
TS_FUNCTION = "bench-ts-w4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class TsApp:
    """``node seed/w4_app.mjs PORT`` with ``INNGEST_DEV`` at ``server``."""

    def __init__(self, server: str):
        node = shutil.which("node")
        if node is None or not (JS / "node_modules" / "inngest").exists():
            raise SystemExit("needs Node.js and tests/js's modules: (cd tests/js && npm ci)")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="tj-bench-tsapp-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen([node, "seed/w4_app.mjs", str(self.port)], cwd=JS,
                                      env={**os.environ, "INNGEST_DEV": server},
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        H.wait_for(lambda: b"listening" in self.log_path.read_bytes(), timeout=30,
                   what="the TS app")

    def sync(self) -> None:
        request = urllib.request.Request(f"{self.url}/api/inngest", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "registered 1 function" not in answer.get("message", ""):
            raise RuntimeError(f"the TS app did not sync: {answer}")

    def cpu_s(self) -> float:
        """CPU seconds the node process used so far (user + system, from /proc)."""
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def posts(self) -> int:
        return _get_json(f"{self.url}/calls")["posts"]

    def max_in_flight(self) -> int:
        return _get_json(f"{self.url}/calls")["maxInFlight"]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        self.popen.wait(10)
        self._log.close()


@contextlib.contextmanager
def _web(runtime):
    """This process's web app (the SDK's ``/fn/register``) on a free port."""
    from werkzeug.serving import make_server

    from tengo_jobs.process.web import create_app

    port = _free_port()
    server = make_server("127.0.0.1", port, create_app(runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


def trial(args) -> dict:
    from tengo_jobs.runtime import set_runtime

    queue = f"bench_sdkw4_{uuid.uuid4().hex[:8]}"
    with H.postgres_url() as url:
        runtime = W._runtime(url, queue)
        W._load_functions()
        worker = app = None
        try:
            with _web(runtime) as base:
                app = TsApp(base)
                app.sync()
            worker = H.Worker({"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
                               "TENGO_FUNCTIONS": "_w4_funcs", "TENGO_ENV": "test"},
                              processes=args.processes, threads=args.threads)
            result: dict = {}
            for label, event, function_id in (("python", "bench.w4", "w4"),
                                              ("typescript", "bench.w4ts", TS_FUNCTION)):
                W._tengo_throughput(runtime, 50, event, function_id, worker)  # warm-up
                posts, cpu = app.posts(), app.cpu_s()
                thr = W._tengo_throughput(runtime, args.runs, event, function_id, worker)
                thr["http_calls_per_run"] = (app.posts() - posts) / args.runs
                # how busy the app's one Node thread was: its CPU time per run, and per second
                thr["node_cpu_ms_per_run"] = (app.cpu_s() - cpu) * 1000 / args.runs
                thr["node_cpu_share"] = (app.cpu_s() - cpu) / thr["elapsed_s"]
                thr["max_requests_in_flight"] = app.max_in_flight()
                lat = W._tengo_latency(runtime, args.rate, args.seconds, event, function_id, worker)
                result[label] = {"throughput": thr, "latency": lat}
        finally:
            if worker is not None:
                worker.stop()
            if app is not None:
                app.stop()
            H.delete_keys(runtime.broker.client, f"dramatiq:{queue}*")
            runtime.close()
            set_runtime(None)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=300, help="runs for the throughput measure")
    p.add_argument("--rate", type=float, default=5, help="runs/s for the latency measure")
    p.add_argument("--seconds", type=float, default=10, help="duration of the latency measure")
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--threads", type=int, default=8, help="threads per worker process")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, help="write every trial and the medians here")
    args = p.parse_args(argv)

    info = W.versions()
    info["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    info["inngest_js"] = json.loads((JS / "node_modules" / "inngest" / "package.json").read_text())["version"]
    print(json.dumps(info), flush=True)
    trials = []
    for n in range(args.repeat):
        t = trial(args)
        trials.append(t)
        print(json.dumps({"trial": n + 1, **t}), flush=True)

    def med(label, *path):
        values = []
        for t in trials:
            node = t[label]
            for key in path:
                node = node[key]
            values.append(node)
        return H.median(values)

    lines = []
    for label in ("python", "typescript"):
        lines.append(f"{label:<10} W4: {med(label, 'throughput', 'runs_per_s'):.1f} runs/s; latency "
                     f"p50 {med(label, 'latency', 'p50_ms'):.0f} ms, p99 "
                     f"{med(label, 'latency', 'p99_ms'):.0f} ms")
    ratio = med("typescript", "throughput", "runs_per_s") / med("python", "throughput", "runs_per_s")
    lines.append(f"TS/Python throughput ratio: {ratio:.2f}; HTTP round trips per TS run: "
                 f"{med('typescript', 'throughput', 'http_calls_per_run'):.2f}; the app's Node "
                 f"thread: {med('typescript', 'throughput', 'node_cpu_ms_per_run'):.1f} ms CPU "
                 f"per TS run, busy {med('typescript', 'throughput', 'node_cpu_share'):.0%} of "
                 "the TS phase")
    print(f"\nmedians over {args.repeat} trial(s) "
          f"(worker: {args.processes} processes x {args.threads} threads):")
    for line in lines:
        print(" ", line)
    if args.json:
        args.json.write_text(json.dumps({"versions": info, "args": {k: str(v) for k, v in vars(args).items()},
                                         "trials": trials, "lines": lines}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
