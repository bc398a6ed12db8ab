"""payment-reminder: scheduled future-dated, fires at the due time, reminds the passenger
in the app, skips with the team's reason unless PENDING."""

import actors  # noqa: F401
from tengo_lugar.actions import schedule_payment_reminder
from tengo_lugar.factories import make_driver, make_payment, make_trip, make_user
from tengo_lugar.models import Payment
from tengo_lugar.testing import START_MS, app_runtime, notifications, outbox, tester  # noqa: F401
from tengo_jobs.process.web import create_app

DAY = 86_400_000


def test_the_teams_future_dated_event_fires_at_its_ts_and_reminds_the_passenger(tester):
    user = make_user("Julieta")
    trip = make_trip(make_driver(make_user()), START_MS + 2 * DAY, passengers=[user])
    payment = make_payment(user, "7800.50", trip=trip)
    due = START_MS + 3 * DAY
    # The team's schedulePaymentReminder, verbatim: {paymentId} and ts.
    tester.send({"name": "payment-reminder", "data": {"paymentId": payment.id}, "ts": due})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "queued" and notifications() == []   # waiting for its time
    tester.clock.set(due - 1)
    tester.run_until_idle(advance_time=False)
    assert notifications() == []
    [run] = tester.run_until_idle()                            # the clock moves to the due time
    assert run.status == "completed", run.error
    assert run.started_at == due
    steps = tester.steps(run.id)
    assert [s.key for s in steps] == ["get-payment", "send-reminder"]
    assert tester.output(steps[0])["user"]["id"] == user.id
    assert tester.output(run) == {"success": True, "paymentId": payment.id}
    [note] = notifications()
    assert (note.user_id, note.title, note.message, note.type, note.link) == (
        user.id, "Payment Reminder", "You have a pending payment. Please complete it soon.",
        "payment_reminder", f"/payments/{payment.id}")
    assert note.created_at == due and note.idempotency_key == f"{run.id}:send-reminder"
    assert outbox() == []  # the team's reminder notifies in the app only


def test_schedule_payment_reminder_sends_the_teams_event_future_dated(tester):
    payment = make_payment(make_user())
    due = START_MS + DAY
    response = schedule_payment_reminder(payment.id, due)
    assert response.success, response.error
    assert response.data["dueAt"] == due and Payment.get_by_id(payment.id).due_at == due
    api = create_app(tester.runtime).test_client()
    event = api.get(f"/api/events/{response.data['eventId']}").get_json()
    assert (event["name"], event["data"], event["ts"]) == (
        "payment-reminder", {"paymentId": payment.id}, due)
    [run] = tester.run_until_idle()
    assert run.status == "completed" and run.started_at == due
    assert len(notifications(payment.user_id)) == 1


def test_scheduling_the_same_reminder_twice_sends_one(tester):
    payment = make_payment(make_user())
    first = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00-03:00")
    second = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00-03:00")
    assert first.data["eventId"] == second.data["eventId"]
    tester.run_until_idle()
    assert len(notifications()) == 1


def test_paid_before_the_due_date_is_skipped_with_the_teams_reason(tester):
    payment = make_payment(make_user())
    schedule_payment_reminder(payment.id, START_MS + DAY)
    Payment.update(status="APPROVED").where(Payment.id == payment.id).execute()
    [run] = tester.run_until_idle()
    assert run.status == "completed"
    assert tester.output(run) == {"skipped": True, "reason": "Payment already processed"}
    assert [s.key for s in tester.steps(run.id)] == ["get-payment"]
    assert notifications() == []


def test_missing_payment_fails_the_run_naming_it(tester):
    tester.send({"name": "payment-reminder", "data": {"paymentId": "gone"}})
    [run] = tester.run_until_idle()
    assert run.status == "failed"
    assert tester.error(run)["message"] == "Payment gone not found"
    assert notifications() == []


def test_schedule_refuses_bad_input_naming_it(tester):
    payment = make_payment(make_user())
    naive = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00")
    assert not naive.success and naive.error.code == "VALIDATION_ERROR"
    assert "time zone" in naive.error.message
    missing = schedule_payment_reminder("nope", START_MS)
    assert missing.error.code == "PAYMENT_NOT_FOUND"
    done = make_payment(make_user(), status="REJECTED")
    assert "only PENDING" in schedule_payment_reminder(done.id, START_MS).error.message
