"""A function that logs — inside a step, outside it, and with an error — for the JSON log
tests (tests/test_json_logs.py). It logs the dashboard password on purpose: redaction must
remove it from every line."""

import logging
import os

from tengo_jobs import Jobs

jobs = Jobs(app_id="json-logs")
log = logging.getLogger("json_log_funcs")


def _in_step():
    log.info("inside the step; password=%s", os.environ["TENGO_DASHBOARD_PASSWORD"])
    return 1


def _fails():
    raise RuntimeError(f"boom with {os.environ['TENGO_DASHBOARD_PASSWORD']}")


@jobs.function("json-logger", event="logs/go", retries=0)
def json_logger(ctx, step):
    ctx.logger.info("started, the secret is %s", os.environ["TENGO_DASHBOARD_PASSWORD"])
    step.run("log-inside", _in_step)
    try:
        step.run("explodes", _fails)
    except Exception:  # noqa: BLE001 - logged with its traceback, then the run completes
        ctx.logger.exception("the step failed")
    return {"ok": True}
