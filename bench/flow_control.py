"""Benchmark: flow control (concurrency, fair keys) on Redis + PostgreSQL, with a worker started
as production starts it (``dramatiq _flow_funcs -p 2 -t 8``), all cases in one invocation:

* **limit holds**: ``--runs`` W4 runs under ``concurrency=10``: the maximum overlap of executing
  runs observed from their stored step times (a run executes from its first step's start to
  its last step's end, in one invocation), and throughput next to the same runs without flow
  control (``w4-free``) and with a limit that never binds (``concurrency=1000``), interleaved
  ``--repeat`` times (medians);
* **many keys**: ``--keys`` concurrency keys (``limit 1`` per key) with ``--per-key`` runs each:
  the spread of each key's first start after the submission began (p50 / p99 / max) next to
  the drain time;
* **fair keys**: a hot customer's backlog of ``--hot`` runs under ``[{"limit": 10}, {"limit": 5,
  "key": customer}]``, then one run of a cold customer once the backlog is parked waiting for
  slots (every hot wake-up consumed): the cold run's
  wait (created → started). Only the cold run is waited for.

Throughput is runs divided by the time from the first submission to the last completion;
events go in batches of 100. Every wait is bounded (``--timeout``). The machine's load
average is recorded before and after. Run: ``python bench/flow_control.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as H  # noqa: E402
from tengo_jobs.testing import max_overlap  # noqa: E402


def _runtime(database_url: str, queue: str):
    runtime = H.producer_runtime(database_url, queue)
    import _flow_funcs  # noqa: F401  (registers the cases on the current runtime)
    return runtime


def _send(runtime, function_id: str, datas: list[dict]) -> None:
    from _flow_funcs import event_of

    name = event_of(function_id)
    for i in range(0, len(datas), 100):
        runtime.send([{"name": name, "data": d} for d in datas[i:i + 100]])


def _count(function_id: str, since: int, status: str | None = "completed") -> int:
    from tengo_jobs.store.schema import RunRow as Run

    query = Run.select().where((Run.function_id == function_id) & (Run.created_at >= since))
    if status is not None:
        query = query.where(Run.status == status)
    return query.count()


def _executions(function_id: str, since: int) -> list[tuple[int, int]]:
    """(first step start, last step end) of each run: when it executed (held its slots)."""
    from tengo_jobs.store.schema import RunRow as Run, StepRow as Step
    import peewee as pw

    return list(Step.select(pw.fn.MIN(Step.started_at), pw.fn.MAX(Step.ended_at))
                .join(Run, on=(Run.id == Step.run_id))
                .where((Run.function_id == function_id) & (Run.created_at >= since))
                .group_by(Step.run_id).tuples())


def throughput(runtime, function_id: str, n: int, worker, timeout: float) -> dict:
    from tengo_jobs.store.schema import RunRow as Run

    start = runtime.now()
    _send(runtime, function_id, [{"i": i} for i in range(n)])
    H.wait_for(lambda: _count(function_id, start) >= n, timeout=timeout, interval=0.1,
               what=f"{n} {function_id} runs", worker=worker)
    last = (Run.select(pw_max(Run.ended_at)).where((Run.function_id == function_id)
                                                   & (Run.created_at >= start)).scalar())
    elapsed = (last - start) / 1000
    return {"runs": n, "elapsed_s": round(elapsed, 2), "runs_per_s": round(n / elapsed, 1),
            "max_overlap": max_overlap(_executions(function_id, start))}


def pw_max(field):
    import peewee as pw

    return pw.fn.MAX(field)


def many_keys(runtime, keys: int, per_key: int, worker, timeout: float) -> dict:
    from tengo_jobs.store.schema import RunRow as Run, EventRow as Event

    start = runtime.now()
    # round after round: every key's first run is submitted before any key's second
    _send(runtime, "w4-keys", [{"k": f"k{k}"} for _ in range(per_key) for k in range(keys)])
    submitted = runtime.now()
    n = keys * per_key
    H.wait_for(lambda: _count("w4-keys", start) >= n, timeout=timeout, interval=0.2,
               what=f"{n} keyed runs", worker=worker)
    first: dict[str, int] = {}
    for data, started in (Run.select(Event.data, Run.started_at)
                          .join(Event, on=(Event.id == Run.event_id))
                          .where((Run.function_id == "w4-keys") & (Run.created_at >= start))
                          .tuples()):
        k = json.loads(data)["k"]
        first[k] = min(first.get(k, started), started)
    offsets = [(t - start) / 1000 for t in first.values()]
    per_key = _executions_per_key(start)  # once: it reads every step of the case
    last = (Run.select(pw_max(Run.ended_at)).where((Run.function_id == "w4-keys")
                                                   & (Run.created_at >= start)).scalar())
    return {"keys": keys, "per_key": per_key, "runs": n,
            "submit_s": round((submitted - start) / 1000, 2),
            "drain_s": round((last - start) / 1000, 2),
            "first_start_s": {"p50": round(H.percentile(offsets, 50), 2),
                              "p99": round(H.percentile(offsets, 99), 2),
                              "max": round(max(offsets), 2)},
            "max_overlap_per_key": max(max_overlap(per_key[k]) for k in list(first)[:200])}


def _executions_per_key(start: int) -> dict[str, list[tuple[int, int]]]:
    from tengo_jobs.store.schema import EventRow as Event, RunRow as Run, StepRow as Step
    import peewee as pw

    out: dict[str, list] = {}
    for data, s, e in (Step.select(Event.data, pw.fn.MIN(Step.started_at), pw.fn.MAX(Step.ended_at))
                       .join(Run, on=(Run.id == Step.run_id))
                       .join(Event, on=(Event.id == Run.event_id))
                       .where((Run.function_id == "w4-keys") & (Run.created_at >= start))
                       .group_by(Step.run_id, Event.data).tuples()):
        out.setdefault(json.loads(data)["k"], []).append((s, e))
    return out


def fair_keys(runtime, hot: int, worker, timeout: float) -> dict:
    from tengo_jobs.store.schema import RunRow as Run

    start = runtime.now()
    _send(runtime, "w4-fair", [{"c": "hot", "i": i} for i in range(hot)])
    # the cold customer's run arrives once the hot backlog is parked waiting for slots (its
    # wake-up messages consumed): what it queues behind is the slot queue, not Redis's FIFO
    def parked():
        waiting = runtime.store.slots.usage("c:fn:w4-fair", runtime.now())
        return sum(w for _, _, _, w in waiting) + _count("w4-fair", start) >= hot - 10

    H.wait_for(parked, timeout=timeout, interval=0.1, what="the hot backlog to park",
               worker=worker)
    cold_sent = runtime.now()
    _send(runtime, "w4-fair", [{"c": "cold"}])
    cold = H.wait_for(lambda: Run.select().where(
        (Run.function_id == "w4-fair") & (Run.created_at >= cold_sent)
        & (Run.started_at.is_null(False))).first(), timeout=timeout, interval=0.02,
        what="the cold run to start", worker=worker)
    hot_done = _count("w4-fair", start) - (1 if cold.status.value == "completed" else 0)
    return {"hot_backlog": hot, "hot_done_when_cold_started": hot_done,
            "cold_wait_s": round((cold.started_at - cold.created_at) / 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--per-key", type=int, default=2)
    parser.add_argument("--hot", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--skip", default="", help="comma-separated: limits,keys,fair")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    queue = f"bench_flow_{uuid.uuid4().hex[:8]}"
    result: dict = {"python": platform.python_version(), "load_before": os.getloadavg(),
                    "args": vars(args) | {"json": str(args.json)}}
    with H.postgres_url() as url:
        runtime = _runtime(url, queue)
        worker = H.Worker({"DATABASE_URL": url, "REDIS_URL": H.REDIS_URL, "TENGO_QUEUE": queue,
                           "TENGO_FUNCTIONS": "_flow_funcs", "TENGO_ENV": "test"},
                          processes=args.processes, threads=args.threads, module="_flow_funcs")
        try:
            throughput(runtime, "w4-free", 100, worker, args.timeout)  # warm-up
            if "limits" not in skip:
                trials: dict[str, list] = {"w4-free": [], "w4-c10": [], "w4-c1000": []}
                for _ in range(args.repeat):  # interleaved: the machine's drift hits all three
                    for fid in trials:
                        trials[fid].append(throughput(runtime, fid, args.runs, worker,
                                                      args.timeout))
                        print(fid, trials[fid][-1], flush=True)
                result["limits"] = {fid: {
                    "runs_per_s_median": H.median([t["runs_per_s"] for t in ts]),
                    "max_overlap": max(t["max_overlap"] for t in ts), "trials": ts}
                    for fid, ts in trials.items()}
            if "keys" not in skip:
                result["keys"] = many_keys(runtime, args.keys, args.per_key, worker,
                                           args.timeout)
                print("keys", result["keys"], flush=True)
            if "fair" not in skip:
                result["fair"] = fair_keys(runtime, args.hot, worker, args.timeout)
                print("fair", result["fair"], flush=True)
        finally:
            worker.stop()
            runtime.close()
            import redis

            H.delete_keys(redis.Redis.from_url(H.REDIS_URL), f"*{queue}*")
    result["load_after"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
