"""payment-reminder: scheduled future-dated, fires at the due time, skips unless PENDING."""

import actors  # noqa: F401
from tengo_lugar.actions import schedule_payment_reminder
from tengo_lugar.factories import make_driver, make_payment, make_trip, make_user
from tengo_lugar.models import Payment
from tengo_lugar.testing import START_MS, app_runtime, outbox, tester  # noqa: F401

DAY = 86_400_000


def test_reminder_scheduled_for_the_due_date_fires_then_and_not_before(tester):
    user = make_user("Julieta", "julieta@example.com")
    trip = make_trip(make_driver(make_user()), START_MS + 2 * DAY, origin="Rosario",
                     destination="Buenos Aires")
    payment = make_payment(user, "7800.50", trip=trip)
    due = START_MS + 3 * DAY
    response = schedule_payment_reminder(payment.id, due)
    assert response.success, response.error
    assert response.data["dueAt"] == due and Payment.get_by_id(payment.id).due_at == due
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "queued" and outbox() == []      # waiting for its time
    tester.clock.set(due - 1)
    tester.run_until_idle(advance_time=False)
    assert outbox() == []
    [run] = tester.run_until_idle()                        # the clock moves to the due time
    assert run.status == "completed", run.error
    assert run.started_at == due
    [email] = outbox()
    assert email.to_address == "julieta@example.com" and email.template == "payment-reminder"
    assert "7800.50 ARS" in email.text and "Rosario → Buenos Aires" in email.text
    assert email.created_at == due and email.idempotency_key == f"{run.id}:send-reminder"


def test_scheduling_the_same_reminder_twice_sends_one(tester):
    payment = make_payment(make_user())
    first = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00-03:00")
    second = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00-03:00")
    assert first.data["eventId"] == second.data["eventId"]
    tester.run_until_idle()
    assert len(outbox()) == 1


def test_paid_before_the_due_date_is_skipped_with_the_reason(tester):
    payment = make_payment(make_user())
    schedule_payment_reminder(payment.id, START_MS + DAY)
    Payment.update(status="APPROVED").where(Payment.id == payment.id).execute()
    [run] = tester.run_until_idle()
    assert tester.output(run) == {"skipped": True, "reason": "payment is APPROVED, not PENDING",
                                  "paymentId": payment.id}
    assert outbox() == []


def test_deleted_payment_is_skipped_with_the_reason(tester):
    tester.send({"name": "payment-reminder", "data": {"paymentId": "gone"}})
    [run] = tester.run_until_idle()
    assert run.status == "completed"
    assert tester.output(run) == {"skipped": True, "reason": "payment 'gone' not found"}


def test_schedule_refuses_bad_input_naming_it(tester):
    payment = make_payment(make_user())
    naive = schedule_payment_reminder(payment.id, "2026-03-12T10:00:00")
    assert not naive.success and naive.error.code == "VALIDATION_ERROR"
    assert "time zone" in naive.error.message
    missing = schedule_payment_reminder("nope", START_MS)
    assert missing.error.code == "PAYMENT_NOT_FOUND"
    done = make_payment(make_user(), status="REJECTED")
    assert "only PENDING" in schedule_payment_reminder(done.id, START_MS).error.message
