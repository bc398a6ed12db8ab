"""Functions for the dashboard's browser tests (tests/test_dashboard_browser.py), run by a live
``tengo-jobs dev``: a charge that fails until a flag file exists, a long sleeper, and a step
whose error and event carry an XSS payload. Each step appends its name to a calls file, so a
test can see which steps ran again after a rerun."""

import os
from pathlib import Path

from tengo_jobs import Jobs, NonRetriableError

jobs = Jobs(app_id="dash-browser")


def _note(name: str) -> None:
    with open(os.environ["DASH_CALLS_FILE"], "a", encoding="utf-8") as calls:
        calls.write(name + "\n")


@jobs.function("dash-charge", event="dash/charge", retries=0)
def dash_charge(ctx, step):
    def prepare():
        _note("prepare")
        return {"order": ctx.event.data["order"]}

    def charge(order):
        _note("charge")
        flag = Path(os.environ["DASH_FLAG_FILE"])
        if not flag.exists():
            raise NonRetriableError(f"card declined for order {order}: the gateway is down")
        return {"charged": order}

    prepared = step.run("prepare", prepare)
    return step.run("charge", charge, prepared["order"])


@jobs.function("dash-sleeper", event="dash/nap")
def dash_sleeper(ctx, step):
    step.sleep("long-nap", "6h")
    return "woke"


@jobs.function("dash-hostile", event="dash/hostile", retries=0)
def dash_hostile(ctx, step):
    def explode():
        raise NonRetriableError(ctx.event.data["payload"])

    step.run("explode", explode)
