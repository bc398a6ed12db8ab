"""An async function whose one step awaits ``asyncio.sleep``: awaiting runs must not hold
the worker's threads."""

from __future__ import annotations

import asyncio

from tengo_jobs import AsyncStep, Context, Jobs

APP_ID = "async-it"


def register(jobs: Jobs) -> None:
    async def nap(seconds: float) -> dict:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @jobs.function("async-sleeper", event="async.sleep", retries=1)
    async def sleeper(ctx: Context, step: AsyncStep) -> dict:
        slept = await step.run("nap", nap, ctx.event.data.get("seconds", 1))
        return {"n": ctx.event.data["n"], **slept}

    async def mark_then_nap(path: str, run_id: str, seconds: float) -> dict:
        # the side effect first (an append to a file shared with the test), then the await a
        # SIGKILL lands in (tests/test_async_kill.py)
        with open(path, "a", encoding="utf-8") as f:
            f.write(run_id + "\n")
        await asyncio.sleep(seconds)
        return {"napped": seconds}

    @jobs.function("async-killable", event="async.killable", retries=3)
    async def killable(ctx: Context, step: AsyncStep) -> dict:
        data = ctx.event.data
        napped = await step.run("mark-then-nap", mark_then_nap, data["path"], ctx.run_id,
                                data.get("seconds", 3))
        after = await step.run("after", lambda: {"done": True})
        return {**napped, **after}
