"""End-to-end flows for the integration tests: multi-step, sleep + retry, failure handler."""

from __future__ import annotations

from .effects import record

APP_ID = "engine-tests"


def register(jobs) -> None:
    """Declare this module's functions on ``jobs``."""

    @jobs.function("it-multi", event="it.multi")
    def multi(ctx, step):
        n = ctx.event.data["n"]
        a = step.run("double", lambda: record(ctx.run_id, "double") and n * 2)
        b = step.run("add", lambda: record(ctx.run_id, "add") and a + 1)
        c = step.run("wrap", lambda: record(ctx.run_id, "wrap") and {"n": n, "value": b})
        return c

    def flaky(run_id):
        executions = record(run_id, "flaky")
        if executions < 3:
            raise ConnectionError(f"attempt {executions} failed on purpose")
        return executions

    @jobs.function("it-sleep-retry", event="it.sleep-retry", retries=4)
    def sleep_retry(ctx, step):
        step.run("before", lambda: record(ctx.run_id, "before") and "ok")
        step.sleep("nap", ctx.event.data.get("sleep", "1s"))
        attempts = step.run("flaky", flaky, ctx.run_id)
        return {"attempts": attempts}

    def on_failure(ctx, step):
        failed_run = ctx.event.data["run_id"]
        step.run("notify-admin", lambda: record(failed_run, "on-failure") and "notified")
        return {"failed_run": failed_run, "error": ctx.event.data["error"]["message"],
                "original": ctx.event.data["event"]["data"]}

    @jobs.function("it-fails", event="it.fails", retries=1, on_failure=on_failure)
    def fails(ctx, step):
        step.run("doomed", lambda: record(ctx.run_id, "doomed") and 1 / 0)
