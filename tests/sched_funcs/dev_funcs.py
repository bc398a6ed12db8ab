"""Functions for the ``tengo-jobs dev`` tests: a sleeper and a step that blocks until a file exists."""

import os
import time

from tengo_jobs import Jobs

jobs = Jobs(app_id="dev-tests")


def _now_ms() -> int:
    return int(time.time() * 1000)


@jobs.function("dev-sleeper", event="dev/nap")
def dev_sleeper(ctx, step):
    before = step.run("before", _now_ms)
    step.sleep("nap", "2s")
    after = step.run("after", _now_ms)
    return {"slept_ms": after - before}


def _wait_for_file(path: str) -> str:
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)
    return "released"


@jobs.function("dev-blocker", event="dev/block", retries=0)
def dev_blocker(ctx, step):
    return step.run("wait-for-file", _wait_for_file, ctx.event.data["path"])
