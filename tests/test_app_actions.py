"""Server actions as Python functions and as authenticated HTTP endpoints; notifications."""

import pytest

import actors  # noqa: F401
from tengo_lugar.actions import DOCUMENT_UPLOADED_MESSAGE, create_document_verification
from tengo_lugar.errors import SessionRequiredError
from tengo_lugar.factories import make_payment, make_session, make_user
from tengo_lugar.http import blueprint
from tengo_lugar.models import Document, Notification, Payment
from tengo_lugar.notifications import notify_user, send_system_notification
from tengo_lugar.testing import START_MS, app_runtime, notifications, outbox, tester  # noqa: F401
from tengo_jobs.process.web import create_app

DOC = {"type": "DNI", "number": "30123456",
       "frontUrl": "https://files.tengolugar.com/f.jpg", "backUrl": "https://files.tengolugar.com/b.jpg"}


@pytest.fixture
def client(app_runtime):
    app = create_app(app_runtime)  # tengo_lugar.pages installs the actions blueprint
    return app.test_client()


def _auth(session):
    return {"Authorization": f"Bearer {session.token}"}


def test_create_document_verification_stores_it_and_sends_the_teams_event(tester):
    user = make_user("Lucía", "lucia@example.com")
    response = create_document_verification(make_session(user), DOC)
    assert response.success and response.message == DOCUMENT_UPLOADED_MESSAGE
    doc = Document.get_by_id(response.data["id"])
    assert response.data == doc.to_dict()  # ApiHandler.handleSuccess(document, ...)
    assert (doc.user_id, doc.status, doc.number) == (user.id, "PENDING", "30123456")
    api = create_app(tester.runtime).test_client()
    events = {e["name"]: e for e in api.get("/api/events").get_json()["data"]}
    assert events["document-verification-email"]["data"] == {
        "userId": user.id, "email": "lucia@example.com", "documentId": doc.id,
        "type": "verification"}
    assert events["document.uploaded"]["data"] == {"documentId": doc.id, "userId": user.id}
    runs = tester.run_until_idle()
    assert sorted(r.function_id for r in runs) == ["process-document", "send-verification-email"]
    assert all(r.status == "completed" for r in runs)
    [email] = outbox()
    assert (email.to_address, email.subject, email.template) == (
        "lucia@example.com", "Document Verification Required", "document-verification")
    assert Document.get_by_id(doc.id).status == "VERIFIED"


def test_create_document_verification_without_session_or_with_bad_data(tester):
    no_session = create_document_verification(None, DOC)
    assert no_session.error.code == "UNAUTHENTICATED"
    bad = create_document_verification(make_session(make_user()), {**DOC, "type": "PASSPORT"})
    assert bad.error.code == "VALIDATION_ERROR" and "type must be one of" in bad.error.message
    assert Document.select().count() == 0 and tester.runs() == []


def test_http_document_verification_needs_a_valid_bearer_session(client, app_runtime):
    user = make_user()
    assert client.post("/app/actions/document-verification", json=DOC).status_code == 401
    bad = client.post("/app/actions/document-verification", json=DOC,
                      headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "UNAUTHENTICATED"
    expired = make_session(user, ttl_ms=1)
    app_runtime.clock.advance(10)
    assert client.post("/app/actions/document-verification", json=DOC,
                       headers=_auth(expired)).status_code == 401
    ok = client.post("/app/actions/document-verification", json=DOC,
                     headers=_auth(make_session(user)))
    assert ok.status_code == 201
    body = ok.get_json()
    assert body["success"] is True and body["message"] == DOCUMENT_UPLOADED_MESSAGE
    assert Document.get_by_id(body["data"]["id"]).user_id == user.id


def test_http_document_verification_names_the_bad_field(client):
    session = make_session(make_user())
    r = client.post("/app/actions/document-verification", json={**DOC, "frontUrl": "ftp://x"},
                    headers=_auth(session))
    assert r.status_code == 400 and "frontUrl" in r.get_json()["error"]["message"]
    r = client.post("/app/actions/document-verification", data="[1]",
                    content_type="application/json", headers=_auth(session))
    assert r.status_code == 400


def test_http_payment_reminder_is_scheduled_for_the_owner_only(client, tester):
    owner, other = make_user(), make_user()
    payment = make_payment(owner)
    due = START_MS + 86_400_000
    denied = client.post("/app/actions/payment-reminder", json={"paymentId": payment.id, "dueDate": due},
                         headers=_auth(make_session(other)))
    assert denied.status_code == 403
    missing = client.post("/app/actions/payment-reminder", json={"paymentId": "x", "dueDate": due},
                          headers=_auth(make_session(owner)))
    assert missing.status_code == 404
    ok = client.post("/app/actions/payment-reminder",
                     json={"paymentId": payment.id, "dueDate": "2026-03-11T09:00:00-03:00"},
                     headers=_auth(make_session(owner)))
    assert ok.status_code == 202 and ok.get_json()["data"]["dueAt"] == due
    [run] = tester.run_until_idle()
    assert run.status == "completed" and run.started_at == due
    assert len(notifications(owner.id)) == 1 and Payment.get_by_id(payment.id).due_at == due


def test_system_notification_needs_no_session_but_an_existing_user(app_runtime):
    user = make_user()
    ok = send_system_notification(user.id, "Hola", "Mensaje", "INFO", "/x", {"a": 1})
    assert ok.success and ok.data["userId"] == user.id
    [row] = notifications(user.id)
    assert (row.title, row.type, row.link, row.metadata_dict, row.read) == (
        "Hola", "INFO", "/x", {"a": 1}, False)
    missing = send_system_notification("ghost", "Hola", "Mensaje", "INFO", None)
    assert not missing.success and missing.error.code == "USER_NOT_FOUND"
    assert missing.to_dict() == {"success": False, "data": None,
                                 "error": {"message": "User ghost not found",
                                           "code": "USER_NOT_FOUND"}}
    invalid = send_system_notification(user.id, "", "Mensaje", "INFO", None)
    assert invalid.error.code == "VALIDATION_ERROR" and "title" in invalid.error.message
    assert Notification.select().count() == 1


def test_system_notification_with_a_key_is_stored_once(app_runtime):
    user = make_user()
    for _ in range(2):
        assert send_system_notification(user.id, "T", "M", "INFO", idempotency_key="R:s").success
    assert len(notifications(user.id)) == 1


def test_notify_user_requires_a_session_and_says_what_to_use_in_jobs(app_runtime):
    with pytest.raises(SessionRequiredError) as info:
        notify_user(None, "T", "M", "INFO")
    assert "send_system_notification" in str(info.value)
    user = make_user()
    assert notify_user(make_session(user), "T", "M", "INFO").success
    assert len(notifications(user.id)) == 1


def test_notify_user_inside_a_job_fails_the_run_clearly(tester):
    from tengo_jobs import Jobs

    jobs = Jobs(app_id="t", runtime=tester.runtime)

    @jobs.function("wrong-notify", event="test/wrong-notify")
    def wrong(ctx, step):
        return step.run("notify", notify_user, None, "T", "M", "INFO")

    tester.send({"name": "test/wrong-notify"})
    [run] = tester.run_until_idle()
    assert run.status == "failed" and tester.steps(run.id)[0].attempts == 1
    assert tester.error(run)["name"] == "SessionRequiredError"
