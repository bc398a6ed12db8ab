"""welcome-sequence: three emails to a new user, 45 seconds apart.

welcome, then getting-started, then features; the gaps are durable sleeps, so the
worker is free while the run waits. A user deleted before the run starts is
skipped with the reason.
"""

from tengo_lugar.email import idempotency_key, send_email
from tengo_lugar.links import url
from tengo_lugar.models import User

from .client import jobs

GAP = "45s"
EMAILS = (
    ("send-welcome-email", "¡Bienvenido/a a Tengo Lugar!", "welcome", "/perfil"),
    ("send-getting-started-email", "Primeros pasos en Tengo Lugar", "getting-started", "/viajes"),
    ("send-features-email", "Todo lo que podés hacer en Tengo Lugar", "features", "/"),
)


def get_user(user_id: str) -> dict | None:
    user = User.get_or_none(User.id == user_id) if user_id else None
    return None if user is None else {"id": user.id, "name": user.name, "email": user.email}


@jobs.function("welcome-sequence", event="user.registered")
def welcome_sequence(ctx, step):
    user_id = ctx.event.data.get("userId")
    user = step.run("get-user", get_user, user_id)
    if user is None:
        return {"skipped": True, "reason": f"user {user_id!r} not found"}
    sent = []
    for i, (step_id, subject, template, path) in enumerate(EMAILS):
        if i:
            step.sleep(f"wait-before-{template}", GAP)
        result = step.run(step_id, send_email, user["email"], subject, template,
                          {"name": user["name"], "link": url(path)},
                          idempotency_key=idempotency_key(ctx.run_id, step_id))
        sent.append(result["id"] or template)
    return {"userId": user["id"], "emailsSent": len(sent)}
