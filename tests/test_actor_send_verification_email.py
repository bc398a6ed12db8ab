"""send-verification-email: the team's event is mailed to its own address; a missing document fails the run."""

import actors  # noqa: F401  (registers the functions before the registry snapshot)
from tengo_lugar.factories import make_document, make_user
from tengo_lugar.testing import app_runtime, outbox, tester  # noqa: F401


def _event(user_id, document_id, email="lucia@example.com"):
    # As create_document_verification (the team's createDocumentVerification) sends it.
    return {"name": "document-verification-email",
            "data": {"userId": user_id, "email": email, "documentId": document_id,
                     "type": "verification"}}


def test_sends_the_verification_email_to_the_events_address(tester):
    user = make_user("Lucía Pérez", "lucia.account@example.com")
    doc = make_document(user)
    tester.send(_event(user.id, doc.id, email="lucia@example.com"))
    [run] = tester.run_until_idle()
    assert run.status == "completed", run.error
    steps = tester.steps(run.id)
    assert [s.key for s in steps] == ["get-document", "send-email"]
    document = tester.output(steps[0])
    assert document["id"] == doc.id and document["user"]["name"] == "Lucía Pérez"
    assert tester.output(run) == {"success": True, "documentId": doc.id}
    [email] = outbox()
    assert (email.to_address, email.subject, email.template) == (
        "lucia@example.com", "Document Verification Required", "document-verification")
    assert "Lucía Pérez" in email.html and doc.id in email.text and "(verification)" in email.text
    assert email.idempotency_key == f"{run.id}:send-email"
    assert (email.run_id, email.step_key, email.transport) == (run.id, "send-email", "outbox")


def test_html_part_escapes_user_data_and_text_part_does_not(tester):
    user = make_user("<b>Ana</b> & Co", "ana@example.com")
    tester.send(_event(user.id, make_document(user).id, email="ana@example.com"))
    tester.run_until_idle()
    [email] = outbox()
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; Co" in email.html and "<b>Ana</b>" not in email.html
    assert "<b>Ana</b> & Co" in email.text


def test_missing_document_fails_the_run_with_the_teams_error_and_sends_nothing(tester):
    tester.send(_event("u1", "doc_nope"))
    [run] = tester.run_until_idle()
    assert run.status == "failed"
    assert tester.error(run) == {"name": "JobError", "message": "Document doc_nope not found"}
    [step] = tester.steps(run.id)
    assert (step.key, step.status, step.output) == ("get-document", "completed", "null")
    assert outbox() == []
