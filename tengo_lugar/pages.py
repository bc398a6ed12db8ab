"""Tengo Lugar's dashboard pages: the email outbox, beside the engine's pages.

``/outbox`` lists every email (newest first): recipient, subject, idempotency key, template,
transport, and the run and step that sent it, linked to the run's page. ``/outbox/<id>``
shows one: its text part, and its HTML rendered in an ``<iframe sandbox>`` with no
``allow-scripts`` (nor ``allow-same-origin``), fed by ``/outbox/<id>/html``, whose own
Content-Security-Policy (``sandbox``, ``default-src 'none'``, inline styles and ``data:``
images only, framed by this site only) keeps the email from running anything or loading
anything, even opened on its own.

They extend the engine's ``tj/base.html`` and need the dashboard password, like every
dashboard page. The app's :data:`~tengo_lugar.extension` registers them and links the list
in the navigation.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from tengo_jobs import require_dashboard

from .models import EmailOutbox

outbox = Blueprint("tengo_lugar_outbox", __name__, template_folder="templates")

LISTED = 200
EMAIL_HTML_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                     "font-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


@outbox.get("/outbox")
@require_dashboard
def outbox_page():
    messages = list(EmailOutbox.select().order_by(EmailOutbox.id.desc()).limit(LISTED))
    return render_template("tl/outbox.html", messages=messages)


def _message(message_id: str):
    """The email with this id, or ``None`` (for an id that is not a number too: the route
    takes any text, so the password is asked before anything else)."""
    if not message_id.isascii() or not message_id.isdigit() or len(message_id) > 18:
        return None
    return EmailOutbox.get_or_none(EmailOutbox.id == int(message_id))


@outbox.get("/outbox/<message_id>")
@require_dashboard
def email_page(message_id: str):
    message = _message(message_id)
    if message is None:
        return render_template("tj/message.html", title="Email not found",
                               message=f"no email {message_id} in the outbox"), 404
    return render_template("tl/email.html", m=message)


@outbox.get("/outbox/<message_id>/html")
@require_dashboard
def email_html(message_id: str):
    """The email's HTML as the iframe shows it: sandboxed, nothing loaded, framed here only."""
    message = _message(message_id)
    if message is None:
        return "no such email", 404, {"Content-Type": "text/plain; charset=utf-8"}
    return message.html, 200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": EMAIL_HTML_POLICY,
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
    }
