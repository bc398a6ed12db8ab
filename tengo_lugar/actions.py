"""Server actions: what the Tengo Lugar web app calls, as Python functions.

``create_document_verification(session, document_data)`` is the team's
``createDocumentVerification``: it stores the signed-in user's document, sends
``document-verification-email`` with ``{userId, email, documentId, type:
"verification"}`` exactly as their TypeScript does, and answers
``ApiResponse.ok(document, "Document uploaded. Verification email will be sent
shortly.")``. It also sends ``document.uploaded`` with ``{documentId, userId}``: the
team's document names that event as process-document's trigger without showing who
sends it, and without it the verification pipeline would never start.

``schedule_payment_reminder(payment_id, due_date)`` is the team's
``schedulePaymentReminder``: it sends ``payment-reminder`` with ``{paymentId}`` and
``ts`` = the due time, so the run starts then.

Both answer with an :class:`ApiResponse`; bad input gets ``VALIDATION_ERROR`` naming
the field.
"""

from __future__ import annotations

import re

from tengo_jobs import TengoJobsError, get_runtime, to_epoch_ms

from .api_response import ApiResponse
from .errors import SessionRequiredError
from .models import Document, DocumentStatus, DocumentType, Payment, PaymentStatus
from .notifications import session_user

DOCUMENT_UPLOADED_MESSAGE = "Document uploaded. Verification email will be sent shortly."
_URL = re.compile(r"^https?://\S+$")


def _parse_ms(value, field: str) -> int:
    """Epoch ms of an aware datetime, an ISO 8601 string with an offset, or an int of ms."""
    try:
        return to_epoch_ms(value)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _document_fields(data) -> dict:
    if not isinstance(data, dict):
        raise ValueError("document_data must be an object")
    doc_type = data.get("type")
    if doc_type not in {t.value for t in DocumentType}:
        raise ValueError(f"type must be one of {', '.join(t.value for t in DocumentType)}, "
                         f"got {doc_type!r}")
    number = data.get("number")
    if not isinstance(number, str) or not number.strip() or len(number) > 40:
        raise ValueError("number must be a non-empty string of at most 40 characters")
    front = data.get("frontUrl")
    if not isinstance(front, str) or not _URL.match(front) or len(front) > 1000:
        raise ValueError("frontUrl must be an http(s) URL")
    back = data.get("backUrl")
    if back is not None and (not isinstance(back, str) or not _URL.match(back)):
        raise ValueError("backUrl must be an http(s) URL or absent")
    expires = data.get("expiresAt")
    return {"type": DocumentType(doc_type), "number": number.strip(), "front_url": front,
            "back_url": back, "expires_at": None if expires is None else _parse_ms(expires, "expiresAt")}


def create_document_verification(session, document_data) -> ApiResponse:
    """Store the signed-in user's document and start its verification email and pipeline."""
    try:
        user = session_user(session)
    except SessionRequiredError as exc:
        return ApiResponse.fail(str(exc), "UNAUTHENTICATED")
    try:
        fields = _document_fields(document_data)
    except ValueError as exc:
        return ApiResponse.fail(str(exc), "VALIDATION_ERROR")
    runtime = get_runtime()
    now = runtime.now()
    doc = Document.create(user=user, status=DocumentStatus.PENDING, created_at=now,
                          updated_at=now, **fields)
    # Not nested in a transaction with the document: send_events enqueues wake-ups right
    # after its own commit, and a worker must find the document committed by then.
    try:
        runtime.send([
            {"name": "document-verification-email",
             "data": {"userId": user.id, "email": user.email, "documentId": doc.id,
                      "type": "verification"}},
            {"name": "document.uploaded", "data": {"documentId": doc.id, "userId": user.id}},
        ], now=now)
    except Exception:
        doc.delete_instance()
        raise
    return ApiResponse.ok(doc.to_dict(), message=DOCUMENT_UPLOADED_MESSAGE)


def schedule_payment_reminder(payment_id: str, due_date) -> ApiResponse:
    """Send ``payment-reminder`` for ``payment_id`` to run at ``due_date`` (future-dated event).

    More than the team's version: it refuses an unknown or no longer PENDING payment
    and a due date without a time zone, records the due date on the payment, and gives
    the event an id so scheduling the same payment and due time twice sends one reminder
    (the id dedupes for 24 h).
    """
    if not isinstance(payment_id, str) or not payment_id:
        return ApiResponse.fail("payment_id must be a non-empty string", "VALIDATION_ERROR")
    try:
        due_ms = _parse_ms(due_date, "due_date")
    except ValueError as exc:
        return ApiResponse.fail(str(exc), "VALIDATION_ERROR")
    payment = Payment.get_or_none(Payment.id == payment_id)
    if payment is None:
        return ApiResponse.fail(f"payment {payment_id!r} not found", "PAYMENT_NOT_FOUND")
    if payment.status != PaymentStatus.PENDING:
        return ApiResponse.fail(f"payment {payment_id} is {payment.status.value}; only PENDING "
                                "payments get reminders", "VALIDATION_ERROR")
    runtime = get_runtime()
    Payment.update(due_at=due_ms).where(Payment.id == payment_id).execute()
    try:
        [event_id] = runtime.send({"name": "payment-reminder",
                                           "data": {"paymentId": payment_id},
                                           "id": f"payment-reminder:{payment_id}:{due_ms}",
                                           "ts": due_ms})
    except TengoJobsError as exc:
        return ApiResponse.fail(str(exc), "VALIDATION_ERROR")
    return ApiResponse.ok({"eventId": event_id, "paymentId": payment_id, "dueAt": due_ms},
                          message="Payment reminder scheduled")
