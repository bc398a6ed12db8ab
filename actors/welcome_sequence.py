"""welcome-sequence: three emails to a new user, 45 seconds apart (the team's ``sendWelcomeSequence``).

Event ``user.registered`` with ``userId``, ``email`` and ``name``: the emails go to the
event's ``email`` with ``{name}`` as their data; nothing is looked up. The two delays
are durable sleeps, so no worker is held while the run waits. Each email carries the
idempotency key ``"{run_id}:{step_id}"``, so a step re-run after a crash sends nothing
twice.
"""

from tengo_lugar.email import idempotency_key, send_email

from .client import jobs

EMAILS = {
    "send-welcome-email": ("Welcome to Tengo Lugar!", "welcome"),
    "send-guide-email": ("Getting Started with Tengo Lugar", "getting-started"),
    "send-features-email": ("Discover Tengo Lugar Features", "features"),
}


@jobs.function("welcome-sequence", event="user.registered")
def welcome_sequence(ctx, step):
    # The team's code reads userId too, and uses only email and name.
    email, name = ctx.event.data.get("email"), ctx.event.data.get("name")

    def send(step_id: str):
        subject, template = EMAILS[step_id]
        return step.run(step_id, send_email, email, subject, template, {"name": name},
                        idempotency_key=idempotency_key(ctx.run_id, step_id))

    send("send-welcome-email")
    # Between emails, so they are not classified as spam.
    step.sleep("delay-after-welcome", "45s")
    send("send-guide-email")
    step.sleep("delay-after-guide", "45s")
    send("send-features-email")
    return {"success": True, "emailsSent": 3}
