"""welcome-sequence: three emails, 45 s apart on the fake clock."""

import actors  # noqa: F401
from tengo_lugar.factories import make_user
from tengo_lugar.testing import START_MS, app_runtime, outbox, tester  # noqa: F401


def test_three_emails_are_sent_45_seconds_apart(tester):
    user = make_user("Sofía", "sofia@example.com")
    tester.send({"name": "user.registered", "data": {"userId": user.id}})
    [run] = tester.run_until_idle()
    assert run.status == "completed", run.error
    steps = {s.key: s for s in tester.steps(run.id)}
    sends = [steps[k] for k in ("send-welcome-email", "send-getting-started-email",
                                "send-features-email")]
    assert [s.ended_at for s in sends] == [START_MS, START_MS + 45_000, START_MS + 90_000]
    assert steps["wait-before-getting-started"].wake_at == START_MS + 45_000
    emails = outbox()
    assert [e.template for e in emails] == ["welcome", "getting-started", "features"]
    assert [e.created_at for e in emails] == [START_MS, START_MS + 45_000, START_MS + 90_000]
    assert {e.to_address for e in emails} == {"sofia@example.com"}
    assert [e.idempotency_key for e in emails] == [
        f"{run.id}:send-welcome-email", f"{run.id}:send-getting-started-email",
        f"{run.id}:send-features-email"]
    assert tester.output(run) == {"userId": user.id, "emailsSent": 3}


def test_run_sleeps_between_emails_and_sends_nothing_early(tester):
    user = make_user()
    tester.send({"name": "user.registered", "data": {"userId": user.id}})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "sleeping"
    assert [e.template for e in outbox()] == ["welcome"]
    tester.clock.advance(44_999)
    tester.run_until_idle(advance_time=False)
    assert len(outbox()) == 1
    tester.clock.advance(1)
    tester.run_until_idle(advance_time=False)
    assert [e.template for e in outbox()] == ["welcome", "getting-started"]


def test_unknown_user_is_skipped_with_the_reason(tester):
    tester.send({"name": "user.registered", "data": {"userId": "ghost"}})
    [run] = tester.run_until_idle()
    assert tester.output(run) == {"skipped": True, "reason": "user 'ghost' not found"}
    assert outbox() == []
