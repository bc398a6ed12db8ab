"""``send_email``: Tengo Lugar's email, through Resend or into the local outbox.

With ``RESEND_API_KEY`` set the real ``resend`` SDK sends it (``RESEND_API_URL`` points
the SDK elsewhere, e.g. a test server); without it the email is only written to the
``tl_email_outbox`` table, so development shows exactly what would have been sent.
Either way every email sent is recorded once per ``(idempotency_key, batch_index)``.

Side effects inside steps pass ``idempotency_key=f"{ctx.run_id}:{step_key}"``: Resend
answers a repeated key with the original email instead of sending another, so a
step re-run after a crash sends nothing twice.

Resend's errors are mapped to the engine's retry model: 429 becomes a
:class:`~tengo_jobs.RetryAfterError` carrying the server's ``Retry-After``; 5xx and
connection errors an :class:`EmailDeliveryError` (retried with backoff); other 4xx a
:class:`~tengo_jobs.NonRetriableError` with Resend's message.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import resend
import resend.exceptions

from tengo_jobs import NonRetriableError, RetryAfterError, bulk_insert, get_runtime

from .dbutil import in_transaction
from .errors import EmailDeliveryError, InvalidDataError
from .models import EmailOutbox
from .settings import get_settings
from .templates import render

log = logging.getLogger(__name__)

RESEND_BATCH_LIMIT = 100
DEFAULT_RETRY_AFTER_S = 60
_sdk_lock = threading.Lock()  # the SDK's api_key/api_url are module globals


@dataclasses.dataclass(frozen=True)
class EmailMessage:
    """One email to render and send: recipient, subject, template name and its data."""

    to: str
    subject: str
    template: str
    data: dict


def idempotency_key(run_id: str, step_key: str) -> str:
    """The key a step's side effect carries: ``"{run_id}:{step_key}"``."""
    return f"{run_id}:{step_key}"


def _split_key(key: str | None) -> tuple[str | None, str | None]:
    if not key or ":" not in key:
        return None, None
    run_id, step_key = key.split(":", 1)
    return (run_id, step_key) if len(run_id) <= 32 else (None, None)


def _check(message: EmailMessage) -> None:
    if not isinstance(message.to, str) or "@" not in message.to or len(message.to) > 320:
        raise InvalidDataError(f"email recipient {message.to!r} is not an email address", field="to")
    if not isinstance(message.subject, str) or not message.subject.strip():
        raise InvalidDataError("email subject must be a non-empty string", field="subject")


def send_email(to: str, subject: str, template: str, data: dict, *,
               idempotency_key: str | None = None) -> dict:
    """Render ``template`` with ``data`` and send it to ``to``; returns ``{id, transport, to}``."""
    [sent] = send_emails([EmailMessage(to, subject, template, data)],
                         idempotency_key=idempotency_key)
    return sent


def send_emails(messages: list[EmailMessage], *, idempotency_key: str | None = None) -> list[dict]:
    """Send up to 100 emails as one batch (one Resend request, one idempotency key)."""
    if not messages:
        return []
    if len(messages) > RESEND_BATCH_LIMIT:
        raise InvalidDataError(f"{len(messages)} emails in one batch; Resend takes at most "
                               f"{RESEND_BATCH_LIMIT}", field="messages")
    runtime = get_runtime()
    settings = get_settings()
    rendered = []
    for m in messages:
        _check(m)
        html, text = render(m.template, m.data, subject=m.subject)
        rendered.append((m, html, text))
    if settings.resend_api_key:
        ids = _send_resend(settings, rendered, idempotency_key)
        transport = "resend"
    else:
        ids = [None] * len(rendered)
        transport = "outbox"
    _record(runtime, rendered, ids, transport, idempotency_key)
    return [{"id": ids[i], "transport": transport, "to": m.to}
            for i, (m, _, _) in enumerate(rendered)]


def _record(runtime, rendered, ids, transport: str, key: str | None) -> None:
    run_id, step_key = _split_key(key)
    now = runtime.now()
    rows = [dict(to_address=m.to, subject=m.subject, template=m.template, html=html, text=text,
                 idempotency_key=key, batch_index=i, run_id=run_id, step_key=step_key,
                 transport=transport, provider_id=ids[i], created_at=now)
            for i, (m, html, text) in enumerate(rendered)]
    with in_transaction(runtime.db):
        # A re-run of the same step (same key) records nothing new.
        bulk_insert(EmailOutbox, rows, ignore_conflicts=True)


def _send_resend(settings, rendered, key: str | None) -> list[str | None]:
    params = [{"from": settings.email_from, "to": [m.to], "subject": m.subject,
               "html": html, "text": text} for m, html, text in rendered]
    options = {"idempotency_key": key} if key else None
    with _sdk_lock:
        resend.api_key = settings.resend_api_key
        if settings.resend_api_url:
            resend.api_url = settings.resend_api_url.rstrip("/")
    try:
        if len(params) == 1:
            response = resend.Emails.send(params[0], options)
            return [response.get("id")]
        response = resend.Batch.send(params, options)
        return [item.get("id") for item in response.get("data", [])]
    except resend.exceptions.ResendError as exc:
        raise map_resend_error(exc, to=", ".join(m.to for m, _, _ in rendered)) from None


def _header(headers: dict, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def retry_after_seconds(headers: dict) -> float:
    """The ``Retry-After`` of a 429 in seconds (default 60 when absent or unreadable)."""
    raw = _header(headers, "retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def map_resend_error(exc: resend.exceptions.ResendError, *, to: str = "") -> Exception:
    """The engine error for a Resend failure (see the module docstring)."""
    try:
        code = int(exc.code)
    except (TypeError, ValueError):
        code = 500
    where = f"Resend ({code} {exc.error_type})"
    if code == 429:
        delay = retry_after_seconds(exc.headers)
        return RetryAfterError(f"{where} rate-limited the email to {to}: {exc.message}",
                               delay=delay)
    if code >= 500 or exc.error_type == "HttpClientError":
        return EmailDeliveryError(f"{where} could not send the email to {to}: {exc.message}")
    return NonRetriableError(f"{where} rejected the email to {to}: {exc.message}")
