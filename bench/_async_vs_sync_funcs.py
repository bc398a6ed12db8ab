"""Functions bench/async_vs_sync.py's worker serves (``dramatiq _async_vs_sync_funcs``):
W4 — four sequential ``step.run`` steps — whose steps do CPU-bound work
(``BENCH_CPU_ITERS`` iterations of integer arithmetic each), three ways:

* ``w4-sync``: a plain handler, plain step functions (the sync driver);
* ``w4-async``: an ``async def`` handler, ``async def`` step functions (run on the loop);
* ``w4-async-plain``: an ``async def`` handler, the plain step functions (each run in a
  thread, ``asyncio.to_thread``).
"""

from __future__ import annotations

import os

from tengo_jobs import AsyncStep, Context, Jobs, Step

jobs = Jobs(app_id="bench-async-vs-sync")  # the runtime from the environment
ITERS = int(os.environ.get("BENCH_CPU_ITERS", "20000"))


def burn(step: int, prev: int) -> dict:
    acc = 0
    for i in range(ITERS):
        acc = (acc + i * i) % 1_000_003
    return {"step": step, "prev": prev, "acc": acc}


async def burn_async(step: int, prev: int) -> dict:
    return burn(step, prev)


@jobs.function("w4-sync", event="bench.w4-sync", retries=0)
def w4_sync(ctx: Context, step: Step) -> dict:
    a = step.run("s1", burn, 1, 0)
    b = step.run("s2", burn, 2, a["step"])
    c = step.run("s3", burn, 3, b["step"])
    return step.run("s4", burn, 4, c["step"])


@jobs.function("w4-async", event="bench.w4-async", retries=0)
async def w4_async(ctx: Context, step: AsyncStep) -> dict:
    a = await step.run("s1", burn_async, 1, 0)
    b = await step.run("s2", burn_async, 2, a["step"])
    c = await step.run("s3", burn_async, 3, b["step"])
    return await step.run("s4", burn_async, 4, c["step"])


@jobs.function("w4-async-plain", event="bench.w4-async-plain", retries=0)
async def w4_async_plain(ctx: Context, step: AsyncStep) -> dict:
    a = await step.run("s1", burn, 1, 0)
    b = await step.run("s2", burn, 2, a["step"])
    c = await step.run("s3", burn, 3, b["step"])
    return await step.run("s4", burn, 4, c["step"])
