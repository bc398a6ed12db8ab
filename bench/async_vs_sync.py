"""Async vs sync handlers on W4 with CPU-bound steps: throughput and worker CPU per run.

One worker process shape (``dramatiq _async_vs_sync_funcs -p 1 -t 8``, started once and
serving every variant) runs batches of ``--runs`` runs of each variant
(bench/_async_vs_sync_funcs.py: a sync handler; an async handler with ``async def`` steps;
an async handler with plain steps, each run in a thread), one variant after the other,
``--repeat`` rounds with the order rotated each round. For each batch:

* runs/s: runs divided by the time from the first submission to the last run's end;
* worker CPU seconds per run: the user+system CPU time of every process in the worker's
  process group (``/proc/<pid>/stat``), after the batch minus before, divided by the runs.
  The submitting and polling are done by this process and are not counted.

Reported: the median of each over the rounds, and the ratios async/sync (the target:
async costs at most 10% more CPU per run). ``--py-spy DIR`` samples the worker with
py-spy in an extra round and prints where its time goes. Usage: ``python bench/async_vs_sync.py [--runs 300]
[--repeat 5] [--iters 20000] [--db postgres|sqlite]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import signal
import subprocess
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402

VARIANTS = ("w4-sync", "w4-async", "w4-async-plain")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in process group ``pgid``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # field 5: pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / CLK_TCK


def _runtime(database_url: str, queue: str):
    runtime = H.producer_runtime(database_url, queue)
    import _async_vs_sync_funcs  # noqa: F401  (the functions, so events start their runs)
    return runtime


def _batch(runtime, worker: H.Worker, function_id: str, n: int) -> dict:
    from tengo_jobs.store.schema import RunRow as Run, RunStatus

    def done() -> int:
        return (Run.select().where((Run.function_id == function_id)
                                   & (Run.status == RunStatus.COMPLETED)
                                   & (Run.created_at >= start_ms)).count())

    cpu0 = group_cpu_seconds(worker.popen.pid)
    start_ms = runtime.now()
    for i in range(0, n, 100):
        runtime.send([{"name": f"bench.{function_id}", "data": {"i": j}}
                      for j in range(i, min(n, i + 100))])
    H.wait_for(lambda: done() >= n, timeout=600, interval=0.2, what=f"{n} {function_id} runs",
               worker=worker)
    cpu1 = group_cpu_seconds(worker.popen.pid)
    last = (Run.select(Run.ended_at).where((Run.function_id == function_id)
                                           & (Run.created_at >= start_ms))
            .order_by(Run.ended_at.desc()).limit(1).scalar())
    elapsed = (last - start_ms) / 1000
    return {"runs_per_s": n / elapsed, "cpu_ms_per_run": (cpu1 - cpu0) / n * 1000}


@contextlib.contextmanager
def _sampled(worker: H.Worker, out: Path):
    """``py-spy record`` on the worker's busiest child for the duration of the block."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgrp(int(p)) == worker.popen.pid]
    child = max(pids)  # dramatiq's worker process is forked after the main one
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(child), "--format", "raw",
                            "--output", str(out), "--rate", "200", "--threads"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def _pgrp(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[2])


def _summarise(path: Path, top: int = 25) -> str:
    """Inclusive sample counts per function from py-spy's collapsed stacks."""
    per_fn: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")[1:]):  # the first frame is the thread
            per_fn[frame] += n
    return "\n".join(f"{n / total:6.1%}  {fn}" for fn, n in per_fn.most_common(top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20000,
                        help="loop iterations of CPU work in each step")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--py-spy", metavar="DIR", dest="py_spy",
                        help="sample the worker's processes with py-spy during an extra round "
                             "(not measured) and write one collapsed-stack file per variant")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from tengo_jobs.runtime import set_runtime

    queue = f"bench_avs_{uuid.uuid4().hex[:8]}"
    url_cm = H.sqlite_url() if args.db == "sqlite" else H.postgres_url()
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with url_cm as url:
        runtime = _runtime(url, queue)
        env = {"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
               "TENGO_FUNCTIONS": "_async_vs_sync_funcs", "TENGO_ENV": "test",
               "BENCH_CPU_ITERS": str(args.iters)}
        worker = H.Worker(env, threads=args.threads, module="_async_vs_sync_funcs")
        try:
            for v in VARIANTS:  # warm-up: imports, connections, caches
                _batch(runtime, worker, v, 50)
            if args.py_spy:
                for v in VARIANTS:
                    with _sampled(worker, Path(args.py_spy) / f"{v}.txt"):
                        _batch(runtime, worker, v, args.runs)
            for r in range(args.repeat):
                order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
                for v in order:
                    results[v].append(_batch(runtime, worker, v, args.runs))
        finally:
            worker.stop()
            H.delete_keys(runtime.broker.client, f"dramatiq:{queue}*")
            runtime.close()
            set_runtime(None)

    summary = {v: {"runs_per_s": H.median([b["runs_per_s"] for b in bs]),
                   "cpu_ms_per_run": H.median([b["cpu_ms_per_run"] for b in bs]),
                   "batches": bs} for v, bs in results.items()}
    sync = summary["w4-sync"]
    for v in VARIANTS:
        s = summary[v]
        s["cpu_ratio_vs_sync"] = s["cpu_ms_per_run"] / sync["cpu_ms_per_run"]
        s["throughput_ratio_vs_sync"] = s["runs_per_s"] / sync["runs_per_s"]
    if args.json:
        print(json.dumps({"args": vars(args), "summary": summary}, indent=2))
    else:
        print(f"W4, CPU-bound steps ({args.iters} iterations each), {args.db}, worker -p 1 "
              f"-t {args.threads}, {args.runs} runs a batch, median of {args.repeat} rounds")
        print(f"{'variant':16} {'runs/s':>8} {'CPU ms/run':>11} {'CPU vs sync':>12} "
              f"{'runs/s vs sync':>15}")
        for v in VARIANTS:
            s = summary[v]
            print(f"{v:16} {s['runs_per_s']:8.1f} {s['cpu_ms_per_run']:11.2f} "
                  f"{s['cpu_ratio_vs_sync']:12.3f} {s['throughput_ratio_vs_sync']:15.3f}")
        if args.py_spy:
            for v in VARIANTS:
                print(f"\n{v}: where the worker's samples are (inclusive, top 25)")
                print(_summarise(Path(args.py_spy) / f"{v}.txt"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
