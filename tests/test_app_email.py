"""send_email over the real ``resend`` SDK against a local fake Resend server, and the outbox."""

import pytest
import resend

import actors  # noqa: F401
from fake_resend import FakeResend
from tengo_jobs import NonRetriableError, RetryAfterError
from tengo_lugar.email import EmailMessage, send_email, send_emails
from tengo_lugar.errors import EmailDeliveryError, InvalidDataError
from tengo_lugar.factories import make_document, make_user
from tengo_lugar.testing import make_app_runtime, outbox
from tengo_jobs.errors import Interrupt  # the engine's interrupts: a crash must not be one
from tengo_jobs.engine.invocation import Invocation
from tengo_jobs.testing import JobsTester

DATA = {"name": "Lucía"}


@pytest.fixture
def fake_resend():
    fake = FakeResend()
    saved = (resend.api_key, resend.api_url)
    yield fake
    resend.api_key, resend.api_url = saved
    fake.close()


@pytest.fixture
def resend_tester(tmp_path, fake_resend):
    runtime = make_app_runtime(tmp_path, resend_api_key="re_test_123", resend_api_url=fake_resend.url,
                               email_from="Tengo Lugar <hola@tengolugar.com>")
    yield JobsTester(runtime)
    runtime.close()


def test_sdk_request_carries_body_sender_and_idempotency_key(resend_tester, fake_resend):
    sent = send_email("lucia@example.com", "¡Bienvenida!", "welcome", DATA, idempotency_key="R1:step")
    [request] = fake_resend.emails()
    assert (request.method, request.path) == ("POST", "/emails")
    assert request.headers["idempotency-key"] == "R1:step"
    assert request.headers["authorization"] == "Bearer re_test_123"
    body = request.body
    assert body["from"] == "Tengo Lugar <hola@tengolugar.com>"
    assert body["to"] == ["lucia@example.com"] and body["subject"] == "¡Bienvenida!"
    assert "Lucía" in body["html"] and body["html"].lstrip().startswith("<!doctype html>")
    assert "Lucía" in body["text"] and "<" not in body["text"]
    [row] = outbox()
    assert (row.transport, row.provider_id, row.run_id, row.step_key) == (
        "resend", sent["id"], "R1", "step")


def test_batch_goes_out_in_one_request_with_one_key(resend_tester, fake_resend):
    messages = [EmailMessage(f"p{i}@example.com", "Tu viaje", "welcome", DATA) for i in range(3)]
    sent = send_emails(messages, idempotency_key="R2:send-reminder-trip-1")
    [request] = fake_resend.emails()
    assert request.path == "/emails/batch" and len(request.body) == 3
    assert request.headers["idempotency-key"] == "R2:send-reminder-trip-1"
    assert [r.batch_index for r in outbox()] == [0, 1, 2]
    assert all(s["id"] for s in sent)


def test_rate_limit_becomes_retry_after_with_the_servers_delay(resend_tester, fake_resend):
    fake_resend.fail_next(429, name="rate_limit_exceeded", message="Too many requests",
                          headers={"Retry-After": "7"})
    with pytest.raises(RetryAfterError) as info:
        send_email("a@example.com", "s", "welcome", DATA)
    assert info.value.delay == 7.0 and "Too many requests" in str(info.value)
    assert outbox() == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(resend_tester, fake_resend, status):
    fake_resend.fail_next(status, message="upstream down")
    with pytest.raises(EmailDeliveryError) as info:
        send_email("a@example.com", "s", "welcome", DATA)
    assert not isinstance(info.value, NonRetriableError)


def test_connection_error_is_retryable(tmp_path):
    runtime = make_app_runtime(tmp_path, resend_api_key="re_x", resend_api_url="http://127.0.0.1:9")
    saved = (resend.api_key, resend.api_url)
    try:
        with pytest.raises(EmailDeliveryError):
            send_email("a@example.com", "s", "welcome", DATA)
    finally:
        resend.api_key, resend.api_url = saved
        runtime.close()


def test_validation_error_is_not_retried_and_keeps_resends_message(resend_tester, fake_resend):
    fake_resend.fail_next(422, name="validation_error", message="Invalid `to` field.")
    with pytest.raises(NonRetriableError) as info:
        send_email("a@example.com", "s", "welcome", DATA)
    assert "Invalid `to` field." in str(info.value) and "422" in str(info.value)


def _verification_event(doc):
    return {"name": "document-verification-email",
            "data": {"userId": doc.user_id, "email": "ana@example.com", "documentId": doc.id,
                     "type": "verification"}}


def test_a_step_retries_after_the_rate_limit_delay_then_sends(resend_tester, fake_resend):
    doc = make_document(make_user("Ana", "ana@example.com"))
    fake_resend.fail_next(429, name="rate_limit_exceeded", message="slow down",
                          headers={"Retry-After": "30"})
    start = resend_tester.clock.now()
    resend_tester.send(_verification_event(doc))
    [run] = resend_tester.run_until_idle()
    assert run.status == "completed", run.error
    step = resend_tester.steps(run.id)[1]
    assert step.attempts == 2 and step.ended_at == start + 30_000
    assert len(fake_resend.emails()) == 2 and len(outbox()) == 1


class SimulatedCrash(BaseException):
    """The worker dies after the email left but before the step's checkpoint was written."""


def test_crash_between_send_and_checkpoint_sends_once(resend_tester, fake_resend, monkeypatch):
    doc = make_document(make_user("Ana", "ana@example.com"))
    real_checkpoint = Invocation.checkpoint
    crashed = []

    def checkpoint(self, op, **kwargs):
        if op.key == "send-email" and not crashed:
            crashed.append(op.key)
            raise SimulatedCrash("killed before the checkpoint")
        return real_checkpoint(self, op, **kwargs)

    monkeypatch.setattr(Invocation, "checkpoint", checkpoint)
    resend_tester.send(_verification_event(doc))
    with pytest.raises(SimulatedCrash):
        resend_tester.run_until_idle()
    assert not issubclass(SimulatedCrash, Interrupt)
    [run] = resend_tester.run_until_idle()      # another executor takes the run over
    assert run.status == "completed", run.error
    requests = fake_resend.emails()
    assert len(requests) == 2                   # the step ran twice ...
    keys = {r.headers["idempotency-key"] for r in requests}
    assert keys == {f"{run.id}:send-email"}     # ... with one key, so Resend sent one email
    [row] = outbox()                            # ... and it is recorded once
    assert row.idempotency_key == f"{run.id}:send-email"
    step = resend_tester.steps(run.id)[1]
    assert resend_tester.output(step)["id"] == row.provider_id


def test_without_api_key_emails_go_to_the_outbox_only(tmp_path, fake_resend):
    runtime = make_app_runtime(tmp_path, resend_api_url=fake_resend.url)
    try:
        result = send_email("a@example.com", "Hola", "features", DATA, idempotency_key="R:s")
        send_email("a@example.com", "Hola", "features", DATA, idempotency_key="R:s")
        assert result == {"id": None, "transport": "outbox", "to": "a@example.com"}
        assert fake_resend.requests == []
        [row] = outbox()
        assert row.subject == "Hola" and "Lucía" in row.html and row.transport == "outbox"
    finally:
        runtime.close()


@pytest.mark.parametrize("to, subject, template, data, field", [
    ("not-an-email", "s", "welcome", DATA, "to"),
    ("a@example.com", " ", "welcome", DATA, "subject"),
    ("a@example.com", "s", "no-such-template", DATA, "template"),
    ("a@example.com", "s", "welcome", {"nombre": "x"}, "data"),  # 'name' missing
])
def test_bad_input_is_refused_naming_the_field(tmp_path, to, subject, template, data, field):
    runtime = make_app_runtime(tmp_path)
    try:
        with pytest.raises(InvalidDataError) as info:
            send_email(to, subject, template, data)
        assert info.value.field == field
        assert isinstance(info.value, NonRetriableError)
    finally:
        runtime.close()


def test_api_key_never_reaches_the_logs(resend_tester, fake_resend, caplog):
    import logging

    fake_resend.fail_next(422, name="validation_error", message="bad")
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(NonRetriableError) as info:
            send_email("a@example.com", "s", "welcome", DATA)
    assert "re_test_123" not in caplog.text and "re_test_123" not in str(info.value)
