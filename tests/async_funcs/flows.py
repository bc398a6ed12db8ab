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
