"""process-document (retries 3): the pipeline we built for the team verifies or rejects
with reasons, and tells the owner."""

import actors  # noqa: F401
from actors.process_document import process_document
from tengo_lugar.factories import make_document, make_driver, make_user
from tengo_lugar.models import Document, DocumentType, Driver
from tengo_lugar.testing import START_MS, app_runtime, notifications, tester  # noqa: F401

YEAR = 365 * 86_400_000
STEPS = ["get-document", "mark-processing", "validate-document", "update-status",
         "send-notification"]


def _upload(tester, document_id, user_id):
    # As create_document_verification sends it.
    tester.send({"name": "document.uploaded",
                 "data": {"documentId": document_id, "userId": user_id}})
    [run] = tester.run_until_idle()
    return run


def test_declared_as_the_team_declares_it():
    assert (process_document.events, process_document.retries) == (("document.uploaded",), 3)


def test_valid_licence_is_verified_and_marks_the_driver(tester):
    user = make_user("Raúl")
    make_driver(user)
    doc = make_document(user, type=DocumentType.DRIVER_LICENSE, number="28999111",
                        expires_at=START_MS + YEAR)
    run = _upload(tester, doc.id, doc.user_id)
    assert run.status == "completed", run.error
    assert [s.key for s in tester.steps(run.id)] == STEPS
    assert tester.output(run) == {"success": True, "documentId": doc.id, "status": "VERIFIED",
                                  "reasons": []}
    row = Document.get_by_id(doc.id)
    assert row.status == "VERIFIED" and row.verified_at == START_MS and row.failure_reason is None
    driver = Driver.get(Driver.user == user.id)
    assert driver.license_verified and driver.license_number == "28999111"
    [note] = notifications(user.id)
    assert (note.title, note.message, note.type, note.link) == (
        "Document Verified", "Your document has been verified", "document_update",
        f"/documents/{doc.id}")


def test_invalid_document_is_rejected_with_every_reason(tester):
    user = make_user()
    doc = make_document(user, type=DocumentType.DRIVER_LICENSE, number="12AB",
                        front_url="http://insecure.example/x.gif", back_url=None,
                        expires_at=START_MS - 1)
    run = _upload(tester, doc.id, doc.user_id)
    output = tester.output(run)
    assert output["status"] == "REJECTED" and len(output["reasons"]) == 4
    row = Document.get_by_id(doc.id)
    assert row.status == "REJECTED" and "the document has expired" in row.failure_reason
    [note] = notifications(user.id)
    assert note.title == "Document Rejected" and "the back image is missing" in note.message


def test_missing_document_fails_the_run_with_the_teams_error(tester):
    run = _upload(tester, "missing", "u1")
    assert run.status == "failed"
    assert tester.error(run)["message"] == "Document missing not found"
    assert [s.key for s in tester.steps(run.id)] == ["get-document"]


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
    run = _upload(tester, doc.id, doc.user_id)
    assert run.status == "completed" and len(calls) == 4
    assert Document.get_by_id(doc.id).status == "VERIFIED"
    assert [s.attempts for s in tester.steps(run.id) if s.key == "update-status"] == [4]


def test_a_fourth_failure_fails_the_run(tester, monkeypatch):
    import actors.process_document as mod

    def down(d, verdict):
        raise ConnectionError("database down")

    monkeypatch.setattr(mod, "update_status", down)
    doc = make_document(make_user())
    run = _upload(tester, doc.id, doc.user_id)
    assert run.status == "failed"
    assert [s.attempts for s in tester.steps(run.id) if s.key == "update-status"] == [4]


def test_decided_document_is_skipped_with_the_reason(tester):
    doc = make_document(make_user())
    Document.update(status="VERIFIED").where(Document.id == doc.id).execute()
    run = _upload(tester, doc.id, doc.user_id)
    assert tester.output(run) == {"skipped": True, "reason": "Document already processed"}
    assert [s.key for s in tester.steps(run.id)] == ["get-document"]
