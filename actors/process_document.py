"""process-document: the verification pipeline of an uploaded document (retries 3).

The team's document declares only the function (``id: "process-document"``, ``retries:
3``, event ``document.uploaded``) and leaves its body out. This is the body we built
for it, written the way the team's other functions are:

- get-document: the document, or ``None``; a missing one fails the run with ``Document
  <id> not found``, thrown outside the step as in ``send-verification-email``;
- a document already VERIFIED or REJECTED is skipped with ``{skipped: true, reason:
  "Document already processed"}`` (the team's skip shape);
- mark-processing (PENDING → PROCESSING), validate-document (the reasons it cannot be
  accepted: image URLs, the number's format, expiry), update-status (VERIFIED, or
  REJECTED with the reasons; a verified driver's licence also marks the driver's licence
  verified);
- send-notification: tells the document's owner with ``send_system_notification``; a
  failed ``ApiResponse`` raises ``Failed to send notification: <message>`` (the team's
  best practice 3), inside the step so it is retried.

Event ``document.uploaded`` with ``documentId`` (and ``userId``), as
``create_document_verification`` sends it. Returns ``{success: true, documentId,
status, reasons}``.
"""

import re

from tengo_jobs import get_runtime
from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import JobError
from tengo_lugar.models import Document, DocumentStatus, DocumentType, Driver
from tengo_lugar.notifications import send_system_notification

from .client import jobs

_IMAGE = re.compile(r"^https://\S+\.(jpe?g|png|pdf|webp)$", re.IGNORECASE)
_NUMBER = {
    DocumentType.DNI.value: re.compile(r"^\d{7,8}$"),
    DocumentType.DRIVER_LICENSE.value: re.compile(r"^\d{7,8}$"),
    DocumentType.CAR_INSURANCE.value: re.compile(r"^[A-Z0-9-]{5,30}$", re.IGNORECASE),
    DocumentType.CAR_REGISTRATION.value: re.compile(r"^[A-Z0-9-]{5,30}$", re.IGNORECASE),
}
_TWO_SIDED = (DocumentType.DNI.value, DocumentType.DRIVER_LICENSE.value)
_EXPIRING = (DocumentType.DRIVER_LICENSE.value, DocumentType.CAR_INSURANCE.value)
_DECIDED = (DocumentStatus.VERIFIED.value, DocumentStatus.REJECTED.value)


def get_document(document_id) -> dict | None:
    if not isinstance(document_id, str) or not document_id:
        return None
    doc = Document.get_or_none(Document.id == document_id)
    return None if doc is None else doc.to_dict()


def mark_processing(document_id: str) -> dict:
    (Document.update(status=DocumentStatus.PROCESSING, updated_at=get_runtime().now())
     .where((Document.id == document_id) & (Document.status == DocumentStatus.PENDING.value))
     .execute())
    return {"status": DocumentStatus.PROCESSING.value}


def validate_document(doc: dict, now: int) -> dict:
    """The reasons a document cannot be accepted (none: it is valid)."""
    reasons = []
    if not _IMAGE.match(doc["frontUrl"] or ""):
        reasons.append("the front image is not an https URL of an image or PDF")
    if doc["type"] in _TWO_SIDED and not _IMAGE.match(doc["backUrl"] or ""):
        reasons.append("the back image is missing")
    pattern = _NUMBER.get(doc["type"])
    if pattern is None or not pattern.match(doc["number"] or ""):
        reasons.append(f"the number {doc['number']!r} is not a valid {doc['type']} number")
    if doc["type"] in _EXPIRING:
        if doc["expiresAt"] is None:
            reasons.append("the expiry date is missing")
        elif doc["expiresAt"] <= now:
            reasons.append("the document has expired")
    return {"valid": not reasons, "reasons": reasons}


def update_status(doc: dict, verdict: dict) -> dict:
    now = get_runtime().now()
    status = DocumentStatus.VERIFIED if verdict["valid"] else DocumentStatus.REJECTED
    with get_runtime().db.atomic():
        (Document.update(status=status, updated_at=now,
                         verified_at=now if verdict["valid"] else None,
                         failure_reason="; ".join(verdict["reasons"]) or None)
         .where(Document.id == doc["id"]).execute())
        if verdict["valid"] and doc["type"] == DocumentType.DRIVER_LICENSE.value:
            (Driver.update(license_verified=True, license_number=doc["number"])
             .where(Driver.user == doc["userId"]).execute())
    return {"status": status.value}


def send_notification(doc: dict, status: str, reasons: list, key: str) -> dict:
    if status == DocumentStatus.VERIFIED.value:
        title, message = "Document Verified", "Your document has been verified"
    else:
        title = "Document Rejected"
        message = f"Your document was rejected: {'; '.join(reasons)}. Please upload it again."
    result = send_system_notification(
        doc["userId"], title, message, "document_update", f"/documents/{doc['id']}",
        {"documentId": doc["id"], "status": status}, idempotency_key=key)
    if not result.success:
        raise JobError(f"Failed to send notification: {result.error.message}")
    return result.to_dict()


@jobs.function("process-document", event="document.uploaded", retries=3)
def process_document(ctx, step):
    document_id = ctx.event.data.get("documentId")
    doc = step.run("get-document", get_document, document_id)
    if not doc:
        raise JobError(f"Document {document_id} not found")
    if doc["status"] in _DECIDED:
        return {"skipped": True, "reason": "Document already processed"}
    step.run("mark-processing", mark_processing, doc["id"])
    now = ctx.event.ts if ctx.event.ts is not None else get_runtime().now()
    verdict = step.run("validate-document", validate_document, doc, now)
    status = step.run("update-status", update_status, doc, verdict)["status"]
    step.run("send-notification", send_notification, doc, status, verdict["reasons"],
             idempotency_key(ctx.run_id, "send-notification"))
    return {"success": True, "documentId": doc["id"], "status": status,
            "reasons": verdict["reasons"]}
