"""Functions the W4 benchmark's worker serves: ``dramatiq _w4_funcs -p 1 -t 8`` (bench/ on PYTHONPATH).

* ``w4``: the tengo_jobs workload W4, four sequential ``step.run`` steps each returning a small dict.
* ``plain_1`` … ``plain_4``: the non-durable baseline, four plain Dramatiq actors each sending the
  next; the last one records its completion time and latency in Redis.
* ``w1``: one step, so a W4-vs-W1 difference isolates the cost of three extra steps.
"""

from __future__ import annotations

import os
import time

import dramatiq

from tengo_jobs import Jobs

jobs = Jobs(app_id="bench")  # binds the runtime (and the global broker) from the environment
PLAIN_QUEUE = os.environ.get("BENCH_PLAIN_QUEUE", "bench_w4_plain")


@jobs.function("w4", event="bench.w4", retries=0)
def w4(ctx, step):
    a = step.run("s1", lambda: {"step": 1, "ok": True})
    b = step.run("s2", lambda: {"step": 2, "prev": a["step"]})
    c = step.run("s3", lambda: {"step": 3, "prev": b["step"]})
    return step.run("s4", lambda: {"step": 4, "prev": c["step"]})


@jobs.function("w1", event="bench.w1", retries=0)
def w1(ctx, step):
    return step.run("s1", lambda: {"step": 1, "ok": True})


def _work(step: int, prev: int) -> dict:
    return {"step": step, "prev": prev}  # the same trivial work as a W4 step


@dramatiq.actor(queue_name=PLAIN_QUEUE, max_retries=0)
def plain_1(tag: str, submitted_ms: int) -> None:
    r = _work(1, 0)
    plain_2.send(tag, submitted_ms, r)


@dramatiq.actor(queue_name=PLAIN_QUEUE, max_retries=0)
def plain_2(tag: str, submitted_ms: int, prev: dict) -> None:
    plain_3.send(tag, submitted_ms, _work(2, prev["step"]))


@dramatiq.actor(queue_name=PLAIN_QUEUE, max_retries=0)
def plain_3(tag: str, submitted_ms: int, prev: dict) -> None:
    plain_4.send(tag, submitted_ms, _work(3, prev["step"]))


@dramatiq.actor(queue_name=PLAIN_QUEUE, max_retries=0)
def plain_4(tag: str, submitted_ms: int, prev: dict) -> None:
    _work(4, prev["step"])
    now = int(time.time() * 1000)
    client = dramatiq.get_broker().client
    pipe = client.pipeline()
    pipe.rpush(f"bench:{tag}:done", now)
    pipe.rpush(f"bench:{tag}:latency", now - submitted_ms)
    pipe.execute()
