"""send-verification-email: the email reaches the outbox once; a missing document fails the run."""

import actors  # noqa: F401  (registers the functions before the registry snapshot)
from tengo_lugar.factories import make_document, make_user
from tengo_lugar.testing import app_runtime, outbox, tester  # noqa: F401


def test_sends_the_verification_email_to_the_documents_owner(tester):
    user = make_user("Lucía Pérez", "lucia@example.com")
    doc = make_document(user, number="30123456")
    tester.send({"name": "document-verification-email", "data": {"documentId": doc.id}})
    [run] = tester.run_until_idle()
    assert run.status == "completed", run.error
    assert [s.key for s in tester.steps(run.id)] == ["get-document", "send-email"]
    [email] = outbox()
    assert email.to_address == "lucia@example.com"
    assert email.template == "document-verification"
    assert "Lucía Pérez" in email.html and "30123456" in email.text
    assert email.idempotency_key == f"{run.id}:send-email"
    assert (email.run_id, email.step_key, email.transport) == (run.id, "send-email", "outbox")
    assert tester.output(run)["documentId"] == doc.id


def test_html_part_escapes_user_data_and_text_part_does_not(tester):
    user = make_user("<b>Ana</b> & Co", "ana@example.com")
    doc = make_document(user)
    tester.send({"name": "document-verification-email", "data": {"documentId": doc.id}})
    tester.run_until_idle()
    [email] = outbox()
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; Co" in email.html and "<b>Ana</b>" not in email.html
    assert "<b>Ana</b> & Co" in email.text


def test_missing_document_fails_the_run_at_once_and_sends_nothing(tester):
    tester.send({"name": "document-verification-email", "data": {"documentId": "nope"}})
    [run] = tester.run_until_idle()
    assert run.status == "failed"
    err = tester.error(run)
    assert err["name"] == "StepError" and "document 'nope' not found" in err["message"]
    [step] = tester.steps(run.id)
    assert (step.key, step.status, step.attempts) == ("get-document", "failed", 1)
    assert outbox() == []
