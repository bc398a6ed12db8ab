"""process-payment: the sandbox gateway decides; the payment row and the event's user's
notification say so; the run returns the team's {success, paymentId, status}."""

import actors  # noqa: F401
from tengo_lugar.factories import make_payment, make_user
from tengo_lugar.models import Payment
from tengo_lugar.testing import app_runtime, make_app_runtime, notifications, tester  # noqa: F401
from tengo_jobs.testing import JobsTester

STEPS = ["validate-payment", "process-gateway", "update-status", "send-notification"]


def _submit(tester, payment_id, user_id, amount):
    # The team's event, verbatim.
    tester.send({"name": "payment.submitted",
                 "data": {"paymentId": payment_id, "userId": user_id, "amount": amount}})
    [run] = tester.run_until_idle()
    return run


def test_approved_payment_is_recorded_and_the_user_notified(tester):
    user = make_user("Martín")
    payment = make_payment(user, "4500.00")
    run = _submit(tester, payment.id, user.id, 4500)
    assert run.status == "completed", run.error
    steps = tester.steps(run.id)
    assert [s.key for s in steps] == STEPS
    gateway = tester.output(steps[1])
    assert gateway["success"] is True and gateway["transactionId"].startswith("sbx_")
    row = Payment.get_by_id(payment.id)
    assert row.status == "APPROVED" and row.gateway_transaction_id == gateway["transactionId"]
    assert tester.output(steps[2])["status"] == "APPROVED"
    [note] = notifications(user.id)
    assert (note.title, note.message, note.type, note.link, note.metadata) == (
        "Payment Approved", "Your payment has been approved", "payment_update",
        f"/payments/{payment.id}", None)
    assert tester.output(run) == {"success": True, "paymentId": payment.id, "status": True}


def test_declined_amount_is_rejected(tester):
    user = make_user()
    payment = make_payment(user, "1200.99")  # the sandbox declines .99: insufficient funds
    run = _submit(tester, payment.id, user.id, 1200.99)
    assert run.status == "completed"
    assert tester.output(run) == {"success": True, "paymentId": payment.id, "status": False}
    row = Payment.get_by_id(payment.id)
    assert row.status == "REJECTED" and row.failure_reason == "insufficient funds"
    [note] = notifications(user.id)
    assert (note.title, note.message) == ("Payment Rejected",
                                          "Your payment was rejected. Please try again.")


def test_the_notification_goes_to_the_events_user_and_the_stored_amount_is_charged(tester):
    payer, other = make_user(), make_user()
    payment = make_payment(payer, "1200.99")
    run = _submit(tester, payment.id, other.id, 100)  # the event's amount is not charged
    assert tester.output(run)["status"] is False
    assert notifications(payer.id) == [] and len(notifications(other.id)) == 1


def test_a_rejected_payment_submitted_again_is_charged_again(tester):
    user = make_user()
    payment = make_payment(user, "1200.99")
    first = _submit(tester, payment.id, user.id, 1200.99)
    Payment.update(amount="1200.00").where(Payment.id == payment.id).execute()
    tester.send({"name": "payment.submitted",
                 "data": {"paymentId": payment.id, "userId": user.id, "amount": 1200}})
    second = [r for r in tester.run_until_idle() if r.id != first.id][0]
    assert tester.output(second)["status"] is True
    row = Payment.get_by_id(payment.id)
    assert row.status == "APPROVED"
    assert tester.output(tester.steps(first.id)[1])["transactionId"] != row.gateway_transaction_id


def test_unknown_user_does_not_fail_the_run_as_in_the_teams_code(tester):
    payment = make_payment(make_user())
    run = _submit(tester, payment.id, "ghost", 4500)
    assert run.status == "completed"
    response = tester.output(tester.steps(run.id)[3])
    assert response["success"] is False and response["error"]["code"] == "USER_NOT_FOUND"
    assert notifications() == []


def test_missing_payment_fails_validation_with_the_teams_error_after_the_retries(tester):
    run = _submit(tester, "missing", "u1", 10)
    assert run.status == "failed"
    [step] = tester.steps(run.id)
    assert (step.key, step.status, step.attempts) == ("validate-payment", "failed", 5)
    assert tester.error(step)["message"] == "Payment not found"
    assert "Payment not found" in tester.error(run)["message"]


def test_gateway_outage_is_retried_until_the_retries_run_out(tmp_path):
    runtime = make_app_runtime(tmp_path, payment_sandbox_failure_rate=1.0)
    try:
        tester = JobsTester(runtime)
        user = make_user()
        payment = make_payment(user, "100.00")
        run = _submit(tester, payment.id, user.id, 100)
        assert run.status == "failed"
        gateway = [s for s in tester.steps(run.id) if s.key == "process-gateway"][0]
        assert gateway.status == "failed" and gateway.attempts == 5  # 1 + 4 default retries
        assert tester.error(run)["name"] == "GatewayUnavailableError"
        assert Payment.get_by_id(payment.id).status == "PENDING"
        assert notifications() == []
    finally:
        runtime.close()
