"""welcome-sequence: the team's three emails to the event's address, 45 s apart on the fake clock."""

import actors  # noqa: F401
from tengo_lugar.testing import START_MS, app_runtime, outbox, tester  # noqa: F401

# The team's event, verbatim: no user row is needed.
EVENT = {"name": "user.registered",
         "data": {"userId": "usr_123", "email": "sofia@example.com", "name": "Sofía"}}


def test_three_emails_to_the_events_address_45_seconds_apart(tester):
    tester.send(EVENT)
    [run] = tester.run_until_idle()
    assert run.status == "completed", run.error
    steps = tester.steps(run.id)
    assert [s.key for s in steps] == ["send-welcome-email", "delay-after-welcome",
                                     "send-guide-email", "delay-after-guide",
                                     "send-features-email"]
    assert [s.ended_at for s in steps if s.key.startswith("send-")] == [
        START_MS, START_MS + 45_000, START_MS + 90_000]
    assert tester.output(run) == {"success": True, "emailsSent": 3}
    emails = outbox()
    assert [(e.to_address, e.subject, e.template) for e in emails] == [
        ("sofia@example.com", "Welcome to Tengo Lugar!", "welcome"),
        ("sofia@example.com", "Getting Started with Tengo Lugar", "getting-started"),
        ("sofia@example.com", "Discover Tengo Lugar Features", "features"),
    ]
    assert [e.created_at for e in emails] == [START_MS, START_MS + 45_000, START_MS + 90_000]
    assert all("Sofía" in e.text and "Sofía" in e.html for e in emails)
    assert [e.idempotency_key for e in emails] == [
        f"{run.id}:send-welcome-email", f"{run.id}:send-guide-email",
        f"{run.id}:send-features-email"]


def test_run_sleeps_between_emails_and_sends_nothing_early(tester):
    tester.send(EVENT)
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "sleeping"
    assert [e.template for e in outbox()] == ["welcome"]
    tester.clock.advance(44_999)
    tester.run_until_idle(advance_time=False)
    assert len(outbox()) == 1
    tester.clock.advance(1)
    tester.run_until_idle(advance_time=False)
    assert [e.template for e in outbox()] == ["welcome", "getting-started"]
    tester.clock.advance(45_000)
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "completed" and len(outbox()) == 3


def test_an_address_that_is_not_one_fails_the_first_email_and_sends_nothing(tester):
    tester.send({"name": "user.registered", "data": {"userId": "u1", "name": "Ana"}})
    [run] = tester.run_until_idle()
    assert run.status == "failed"
    [step] = tester.steps(run.id)
    assert (step.key, step.status, step.attempts) == ("send-welcome-email", "failed", 1)
    assert "is not an email address" in tester.error(run)["message"]
    assert outbox() == []
