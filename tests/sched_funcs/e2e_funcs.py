"""Functions for the multi-process scheduler tests (web, worker and schedulers as OS processes)."""

import time

from tengo_jobs import Jobs

jobs = Jobs(app_id="sched-tests")


def _now_ms() -> int:
    return int(time.time() * 1000)


@jobs.function("e2e-delayed", event="e2e/delayed")
def delayed(ctx, step):
    """Started by a future-dated event: records when its first step ran."""
    return step.run("started", _now_ms)


@jobs.function("e2e-sleeper", event="e2e/nap")
def sleeper(ctx, step):
    before = step.run("before", _now_ms)
    step.sleep("s", "2s")
    after = step.run("after", _now_ms)
    return {"before": before, "after": after}


@jobs.function("e2e-quick", event="e2e/quick")
def quick(ctx, step):
    return step.run("only", lambda: ctx.event.data.get("i"))


@jobs.function("e2e-tick", cron="* * * * *")
def tick(ctx, step):
    """Every minute; the tests run the schedulers with ``--cron-second */2``."""
    return step.run("tick", lambda: ctx.event.ts)
