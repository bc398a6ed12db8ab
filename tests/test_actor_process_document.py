"""process-document: the pipeline verifies or rejects with reasons, and tells the user."""

import actors  # noqa: F401
from tengo_lugar.factories import make_document, make_driver, make_user
from tengo_lugar.models import Document, DocumentType, Driver
from tengo_lugar.testing import START_MS, app_runtime, notifications, tester  # noqa: F401

YEAR = 365 * 86_400_000


def _upload(tester, doc_id):
    tester.send({"name": "document.uploaded", "data": {"documentId": doc_id}})
    [run] = tester.run_until_idle()
    return run


def test_valid_licence_is_verified_and_marks_the_driver(tester):
    user = make_user("Raúl")
    make_driver(user)
    doc = make_document(user, type=DocumentType.DRIVER_LICENSE, number="28999111",
                        expires_at=START_MS + YEAR)
    run = _upload(tester, doc.id)
    assert run.status == "completed", run.error
    assert [s.key for s in tester.steps(run.id)] == [
        "get-document", "mark-processing", "validate-document", "update-status", "notify-user"]
    row = Document.get_by_id(doc.id)
    assert row.status == "VERIFIED" and row.verified_at == START_MS and row.failure_reason is None
    driver = Driver.get(Driver.user == user.id)
    assert driver.license_verified and driver.license_number == "28999111"
    [note] = notifications(user.id)
    assert note.type == "DOCUMENT_VERIFIED"


def test_invalid_document_is_rejected_with_every_reason(tester):
    user = make_user()
    doc = make_document(user, type=DocumentType.DRIVER_LICENSE, number="12AB",
                        front_url="http://insecure.example/x.gif", back_url=None,
                        expires_at=START_MS - 1)
    run = _upload(tester, doc.id)
    reasons = tester.output(run)["reasons"]
    assert len(reasons) == 4
    row = Document.get_by_id(doc.id)
    assert row.status == "REJECTED" and "vencido" in row.failure_reason
    [note] = notifications(user.id)
    assert note.type == "DOCUMENT_REJECTED" and "falta la imagen del dorso" in note.message


def test_missing_document_fails_at_once(tester):
    run = _upload(tester, "missing")
    assert run.status == "failed"
    assert tester.steps(run.id)[0].attempts == 1


def test_a_transient_failure_is_retried_up_to_three_times(tester, monkeypatch):
    import actors.process_document as mod

    doc = make_document(make_user())
    real, calls = mod.update_status, []

    def flaky(d, verdict):
        calls.append(1)
        if len(calls) <= 3:
            raise ConnectionError("database restarting")
        return real(d, verdict)

    monkeypatch.setattr(mod, "update_status", flaky)
    run = _upload(tester, doc.id)
    assert run.status == "completed" and len(calls) == 4
    assert Document.get_by_id(doc.id).status == "VERIFIED"
    assert [s.attempts for s in tester.steps(run.id) if s.key == "update-status"] == [4]


def test_decided_document_is_skipped(tester):
    doc = make_document(make_user())
    Document.update(status="VERIFIED").where(Document.id == doc.id).execute()
    run = _upload(tester, doc.id)
    assert tester.output(run)["skipped"] is True
