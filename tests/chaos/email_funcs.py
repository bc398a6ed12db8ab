"""R2's function, on Tengo Lugar's email path: ``dramatiq chaos.email_funcs``.

``chaos-email`` (``chaos/email``) sends one email in its step ``send-email`` with
``tengo_lugar.email.send_email(..., idempotency_key=f"{run_id}:send-email")`` (the real
``resend`` SDK, pointed at the test's fake Resend by ``RESEND_API_URL``), records
``kind="sent"`` once the send returned, and, if no earlier execution had got that far,
SIGKILLs its own worker process: the crash lands exactly between the email being sent
and the step's checkpoint. The next execution sends again with the same key.
"""

from __future__ import annotations

import os
import signal

import tengo_lugar
from tengo_jobs import Jobs
from tengo_lugar.email import idempotency_key, send_email

from . import effects

jobs = Jobs(app_id="chaos-email", extensions=[tengo_lugar.extension, effects.extension])
STEP = "send-email"


def _send(run_id: str, n: int) -> dict:
    out = effects.record(run_id, STEP)
    sent_before = effects.count(run_id, STEP, kind="sent")
    result = send_email(f"rider{n}@example.com", "¡Bienvenido/a a Tengo Lugar!", "welcome",
                        {"name": f"Rider {n}", "link": "https://tengolugar.example/perfil"},
                        idempotency_key=idempotency_key(run_id, STEP))
    effects.record(run_id, STEP, kind="sent")
    if sent_before == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # sent, not yet checkpointed
    return {**out, "email_id": result["id"]}


@jobs.function("chaos-email", event="chaos/email", retries=20)
def email(ctx, step):
    sent = step.run(STEP, _send, ctx.run_id, ctx.event.data["n"])
    step.run("after", lambda: effects.record(ctx.run_id, "after"))
    return {"email_id": sent["email_id"]}
