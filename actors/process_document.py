"""process-document: the verification pipeline of an uploaded document (retries 3).

get-document → mark-processing → validate-document → update-status (VERIFIED or
REJECTED with the reasons) → notify-user. A verified driver's licence also marks
the driver's licence verified. Missing documents fail at once; a document already
decided is skipped with the reason.
"""

import re

from tengo_jobs import get_runtime
from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import NotFoundError
from tengo_lugar.links import url
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


def get_document(document_id: str) -> dict:
    doc = Document.get_or_none(Document.id == document_id) if document_id else None
    if doc is None:
        raise NotFoundError(f"document {document_id!r} not found")
    return {"id": doc.id, "userId": doc.user_id, "type": doc.type.value, "number": doc.number,
            "frontUrl": doc.front_url, "backUrl": doc.back_url, "expiresAt": doc.expires_at,
            "status": doc.status.value}


def mark_processing(document_id: str) -> dict:
    now = get_runtime().now()
    (Document.update(status=DocumentStatus.PROCESSING, updated_at=now)
     .where((Document.id == document_id) & (Document.status == DocumentStatus.PENDING.value))
     .execute())
    return {"status": DocumentStatus.PROCESSING.value}


def validate_document(doc: dict, now: int) -> dict:
    """The reasons a document cannot be accepted (none: it is valid)."""
    reasons = []
    if not _IMAGE.match(doc["frontUrl"] or ""):
        reasons.append("la imagen del frente no es una URL https de una imagen o PDF")
    if doc["type"] in _TWO_SIDED and not _IMAGE.match(doc["backUrl"] or ""):
        reasons.append("falta la imagen del dorso")
    pattern = _NUMBER.get(doc["type"])
    if pattern is None or not pattern.match(doc["number"] or ""):
        reasons.append(f"el número {doc['number']!r} no es válido para {doc['type']}")
    if doc["type"] in _EXPIRING:
        if doc["expiresAt"] is None:
            reasons.append("falta la fecha de vencimiento")
        elif doc["expiresAt"] <= now:
            reasons.append("el documento está vencido")
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


def notify_user(doc: dict, status: str, reasons: list, key: str) -> dict:
    if status == DocumentStatus.VERIFIED.value:
        title, message = "Documento verificado", "Tu documento fue verificado. ¡Ya podés viajar!"
    else:
        title = "Documento rechazado"
        message = "No pudimos verificar tu documento: " + "; ".join(reasons) + "."
    return send_system_notification(
        doc["userId"], title, message, f"DOCUMENT_{status}", url("/perfil/documentos"),
        {"documentId": doc["id"], "status": status},
        idempotency_key=key).raise_for_error("notify-user").data


@jobs.function("process-document", event="document.uploaded", retries=3)
def process_document(ctx, step):
    doc = step.run("get-document", get_document, ctx.event.data.get("documentId"))
    if doc["status"] in (DocumentStatus.VERIFIED.value, DocumentStatus.REJECTED.value):
        return {"skipped": True, "reason": f"document is already {doc['status']}",
                "documentId": doc["id"]}
    step.run("mark-processing", mark_processing, doc["id"])
    now = ctx.event.ts if ctx.event.ts is not None else get_runtime().now()
    verdict = step.run("validate-document", validate_document, doc, now)
    status = step.run("update-status", update_status, doc, verdict)["status"]
    step.run("notify-user", notify_user, doc, status, verdict["reasons"],
             idempotency_key(ctx.run_id, "notify-user"))
    return {"documentId": doc["id"], "status": status, "reasons": verdict["reasons"]}
