"""process-payment: the sandbox gateway decides, the payment row and the payer's notification say so."""

import actors  # noqa: F401
from tengo_lugar.factories import make_payment, make_user
from tengo_lugar.models import Payment
from tengo_lugar.testing import app_runtime, make_app_runtime, notifications, tester  # noqa: F401
from tengo_jobs.runtime import set_runtime
from tengo_jobs.testing import JobsTester


def _submit(tester, payment_id):
    tester.send({"name": "payment.submitted", "data": {"paymentId": payment_id}})
    [run] = tester.run_until_idle()
    return run


def test_approved_payment_is_recorded_and_the_payer_notified(tester):
    user = make_user("Martín")
    payment = make_payment(user, "4500.00")
    run = _submit(tester, payment.id)
    assert run.status == "completed", run.error
    assert [s.key for s in tester.steps(run.id)] == [
        "validate-payment", "process-gateway", "update-status", "send-notification"]
    row = Payment.get_by_id(payment.id)
    assert row.status == "APPROVED" and row.gateway_transaction_id.startswith("sbx_")
    [note] = notifications(user.id)
    assert note.title == "Pago aprobado" and note.type == "PAYMENT_APPROVED"
    assert note.metadata_dict == {"paymentId": payment.id, "status": "APPROVED"}
    assert tester.output(run) == {"paymentId": payment.id, "status": "APPROVED",
                                  "transactionId": row.gateway_transaction_id}


def test_declined_amount_is_rejected_with_the_reason(tester):
    user = make_user()
    payment = make_payment(user, "1200.99")  # the sandbox declines .99: insufficient funds
    run = _submit(tester, payment.id)
    assert run.status == "completed"
    row = Payment.get_by_id(payment.id)
    assert row.status == "REJECTED" and row.failure_reason == "insufficient funds"
    [note] = notifications(user.id)
    assert note.type == "PAYMENT_REJECTED" and "insufficient funds" in note.message


def test_missing_payment_fails_at_validation_without_retries(tester):
    run = _submit(tester, "missing")
    assert run.status == "failed"
    [step] = tester.steps(run.id)
    assert (step.key, step.status, step.attempts) == ("validate-payment", "failed", 1)
    assert "payment 'missing' not found" in tester.error(run)["message"]


def test_non_ars_payment_is_refused_and_left_pending(tester):
    payment = make_payment(make_user(), "10.00", currency="USD")
    run = _submit(tester, payment.id)
    assert run.status == "failed" and "'USD' is not ARS" in tester.error(run)["message"]
    assert Payment.get_by_id(payment.id).status == "PENDING"
    assert notifications() == []


def test_already_decided_payment_is_skipped(tester):
    payment = make_payment(make_user(), status="APPROVED")
    run = _submit(tester, payment.id)
    assert tester.output(run) == {"skipped": True, "reason": "payment is already APPROVED",
                                  "paymentId": payment.id}
    assert [s.key for s in tester.steps(run.id)] == ["validate-payment"]


def test_gateway_outage_is_retried_until_the_retries_run_out(tmp_path):
    runtime = make_app_runtime(tmp_path, payment_sandbox_failure_rate=1.0)
    try:
        tester = JobsTester(runtime)
        payment = make_payment(make_user(), "100.00")
        run = _submit(tester, payment.id)
        assert run.status == "failed"
        gateway = [s for s in tester.steps(run.id) if s.key == "process-gateway"][0]
        assert gateway.status == "failed" and gateway.attempts == 5  # 1 + 4 default retries
        assert "GatewayUnavailableError" in tester.error(run)["message"]
        assert Payment.get_by_id(payment.id).status == "PENDING"
    finally:
        runtime.close()
        set_runtime(None)
