"""Functions with ``step.parallel`` and a pausable one, run by real worker processes: each step
body records its execution (``it_effects`` or, for the kill test, ``crash_effects``)."""

from __future__ import annotations

import time

from .effects import record, record_unique

CRASH_BRANCHES = 6


def register(jobs) -> None:
    """Declare this module's functions on ``jobs``."""

    @jobs.function("it-parallel", event="it.parallel", retries=2)
    def fan_out(ctx, step):
        run_id = ctx.run_id

        def napping():
            step.sleep("nap", "300ms")
            return step.run("after-nap", lambda: record(run_id, "after-nap") and "rested")

        def flaky():
            if record(run_id, "flaky") == 1:
                raise ConnectionError("the first attempt fails on purpose")
            return "recovered"

        results = step.parallel([
            lambda: step.run("quick", lambda: record(run_id, "quick") and "quick"),
            napping,
            lambda: step.run("flaky", flaky),
        ])
        return step.run("join", lambda: record(run_id, "join") and "+".join(results))

    @jobs.function("it-parallel-crash", event="it.parallel-crash", retries=20)
    def slow_branches(ctx, step):
        def branch(i):
            record_unique(ctx.run_id, f"b{i}")  # the side effect first, then the work
            time.sleep(0.3 * (i + 1))
            return i

        results = step.parallel([lambda i=i: step.run(f"b{i}", branch, i)
                                 for i in range(CRASH_BRANCHES)])
        return {"sum": sum(results)}

    @jobs.function("it-pausable", event="it.pausable")
    def pausable(ctx, step):
        return step.run("work", lambda: record(ctx.run_id, "work") and ctx.event.data["n"])
