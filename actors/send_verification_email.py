"""send-verification-email: tell a user their document arrived and is being reviewed.

Triggered by ``document-verification-email`` (sent by the server action
``create_document_verification``). A missing document fails the run at once.
"""

from tengo_lugar.email import idempotency_key, send_email
from tengo_lugar.errors import NotFoundError
from tengo_lugar.links import url
from tengo_lugar.models import Document, User

from .client import jobs

DOCUMENT_LABELS = {"DNI": "DNI", "DRIVER_LICENSE": "licencia de conducir",
                   "CAR_INSURANCE": "seguro del auto", "CAR_REGISTRATION": "cédula del auto"}


def get_document(document_id: str) -> dict:
    doc = (Document.select(Document, User).join(User)
           .where(Document.id == document_id).first()) if document_id else None
    if doc is None:
        raise NotFoundError(f"document {document_id!r} not found")
    return {"id": doc.id, "type": doc.type.value, "number": doc.number,
            "status": doc.status.value,
            "user": {"id": doc.user.id, "name": doc.user.name, "email": doc.user.email}}


@jobs.function("send-verification-email", event="document-verification-email", retries=3)
def send_verification_email(ctx, step):
    doc = step.run("get-document", get_document, ctx.event.data.get("documentId"))
    user = doc["user"]
    sent = step.run("send-email", send_email, user["email"],
                    "Recibimos tu documento", "document-verification",
                    {"name": user["name"],
                     "document_type_label": DOCUMENT_LABELS.get(doc["type"], doc["type"]),
                     "document_number": doc["number"], "link": url("/perfil/documentos")},
                    idempotency_key=idempotency_key(ctx.run_id, "send-email"))
    return {"success": True, "documentId": doc["id"], "emailId": sent["id"]}
