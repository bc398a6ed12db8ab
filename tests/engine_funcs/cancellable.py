"""A function cancelled by an event (``cancel_on``) while a worker process executes its step."""

from __future__ import annotations

import time

from .effects import record


def register(jobs) -> None:
    @jobs.function("it-cancellable", event="it.cancellable",
                   cancel_on=[{"event": "it.cancel", "match": "data.orderId"}])
    def cancellable(ctx, step):
        step.run("first", lambda: record(ctx.run_id, "first") and "one")

        def slow():
            record(ctx.run_id, "slow")  # the test sends the cancel event once it sees this
            time.sleep(1.5)
            return "two"

        step.run("slow", slow)
        step.run("after", lambda: record(ctx.run_id, "after") and "three")
        step.sleep("nap", "1h")
        return "done"
