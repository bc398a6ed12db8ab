"""send-verification-email: ask a user to verify an uploaded document (the team's ``sendVerificationEmail``).

Event ``document-verification-email`` with ``userId``, ``email``, ``documentId`` and
``type``, as the server action ``create_document_verification`` sends it. get-document
reads the document with its user (``None`` when it does not exist: the run then fails
with ``Document <id> not found``, thrown outside the step as the team's code does);
send-email mails the event's ``email`` with the template ``document-verification`` and
``{userName, documentType, documentId}``, under the idempotency key
``"{run_id}:send-email"``.
"""

from tengo_lugar.email import idempotency_key, send_email
from tengo_lugar.errors import JobError
from tengo_lugar.models import Document, User

from .client import jobs


def get_document(document_id) -> dict | None:
    """The document with its user (``include: { user: true }``), or ``None``."""
    if not isinstance(document_id, str) or not document_id:
        return None
    doc = Document.select(Document, User).join(User).where(Document.id == document_id).first()
    return None if doc is None else {**doc.to_dict(), "user": doc.user.to_dict()}


@jobs.function("send-verification-email", event="document-verification-email")
def send_verification_email(ctx, step):
    data = ctx.event.data
    # userId is in the event too; the team's code reads it and does not use it.
    email, document_id, doc_type = data.get("email"), data.get("documentId"), data.get("type")
    document = step.run("get-document", get_document, document_id)
    if not document:
        raise JobError(f"Document {document_id} not found")
    step.run("send-email", send_email, email, "Document Verification Required",
             "document-verification",
             {"userName": document["user"]["name"], "documentType": doc_type,
              "documentId": document_id},
             idempotency_key=idempotency_key(ctx.run_id, "send-email"))
    return {"success": True, "documentId": document_id}
