"""Functions that try their best to log secrets (``TENGO_FUNCTIONS=actors,leaky_functions``),
for the secrets-in-logs test: every configured secret and connection URL goes into a log
line, a logged traceback, an uncaught exception in a thread, and a step's error; and an
email goes through the real Resend SDK to a fake that answers with an error."""

from __future__ import annotations

import logging
import os
import threading

import tengo_lugar
from tengo_jobs import Jobs
from tengo_lugar.email import send_email

jobs = Jobs(app_id="leaky", extensions=[tengo_lugar.extension])
log = logging.getLogger("leaky_functions")

_NAMES = ("DATABASE_URL", "REDIS_URL", "TENGO_EVENT_KEYS", "TENGO_SIGNING_KEY",
          "TENGO_DASHBOARD_PASSWORD", "RESEND_API_KEY", "LEAKY_EXTRA")


def everything() -> str:
    """Every secret this process was given, as a careless program would print them."""
    return " ".join(f"{name}={os.environ.get(name)}" for name in _NAMES)


@jobs.function("leaky-step", event="leaky/step", retries=0)
def leaky_step(ctx, step):
    ctx.logger.warning("starting with %s", everything())

    def crash_in_a_thread():
        raise RuntimeError(f"thread crashed: {everything()}")

    thread = threading.Thread(target=crash_in_a_thread, name="leaky-thread")
    thread.start()
    thread.join()

    def fail():
        try:
            raise ConnectionError(f"cannot connect: {everything()}")
        except ConnectionError:
            log.exception("step failing")
            raise

    step.run("fail", fail)


@jobs.function("leaky-email", event="leaky/email", retries=0)
def leaky_email(ctx, step):
    return step.run("send", lambda: send_email(
        "ana@example.com", "Hola", "welcome", {"name": "Ana"},
        idempotency_key=f"{ctx.run_id}:send"))
