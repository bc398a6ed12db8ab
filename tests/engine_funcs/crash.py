"""The crash test's function: six steps that each take a little while, with a short sleep mid-way."""

from __future__ import annotations

import random
import time

from .effects import record_unique

STEPS = ("s1", "s2", "s3", "s4", "s5", "s6")


def register(jobs) -> None:
    @jobs.function("crash-six", event="crash.six", retries=20)
    def six(ctx, step):
        total = 0
        for i, name in enumerate(STEPS):
            if i == 3:
                step.sleep("nap", "300ms")

            def body(name=name, i=i):
                record_unique(ctx.run_id, name)  # the side effect first...
                time.sleep(random.uniform(0.02, 0.12))  # ...so kills land before the checkpoint
                return i

            total += step.run(name, body)
        return {"total": total, "n": ctx.event.data["n"]}
