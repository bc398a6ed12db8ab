"""process-payment: charge a submitted payment in ARS and record the outcome (the team's ``processPayment``).

Event ``payment.submitted`` with ``paymentId``, ``userId`` and ``amount``. Steps:

- validate-payment: the payment row; a missing one raises ``Payment not found`` inside
  the step (retried, then the run fails), as the team's code does;
- process-gateway: the gateway charges the payment's stored amount (not the event's) in
  ARS and answers ``{success, transactionId}`` (and the ``reason`` of a rejection); its
  idempotency key ``"{run_id}:process-gateway"`` makes a step re-run charge once;
- update-status: APPROVED or REJECTED with the gateway's transaction id;
- send-notification: tells the event's ``userId``; its ``ApiResponse`` is the step's
  output and, as in the team's code, a failed one does not fail the run.

Returns ``{success: true, paymentId, status}`` where ``status`` is the gateway's boolean.
"""

from decimal import Decimal

from tengo_jobs import get_runtime
from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import JobError
from tengo_lugar.models import Payment, PaymentStatus
from tengo_lugar.notifications import send_system_notification
from tengo_lugar.payments import SUPPORTED_CURRENCY, get_gateway

from .client import jobs


def validate_payment(payment_id) -> dict:
    payment = (Payment.get_or_none(Payment.id == payment_id)
               if isinstance(payment_id, str) and payment_id else None)
    if payment is None:
        raise JobError("Payment not found")
    return payment.to_dict()


def process_gateway(amount: str, key: str) -> dict:
    return get_gateway().process(amount=Decimal(amount), currency=SUPPORTED_CURRENCY,
                                 idempotency_key=key).to_dict()


def update_status(payment_id: str, gateway_result: dict) -> dict:
    status = PaymentStatus.APPROVED if gateway_result["success"] else PaymentStatus.REJECTED
    updated = (Payment.update(status=status,
                              gateway_transaction_id=gateway_result["transactionId"],
                              failure_reason=gateway_result.get("reason"),
                              updated_at=get_runtime().now())
               .where(Payment.id == payment_id).execute())
    if not updated:  # Prisma's update throws when the row is gone
        raise JobError(f"Payment {payment_id} not found")
    return Payment.get_by_id(payment_id).to_dict()


def send_notification(user_id, payment_id: str, success: bool, key: str) -> dict:
    return send_system_notification(
        user_id,
        "Payment Approved" if success else "Payment Rejected",
        "Your payment has been approved" if success
        else "Your payment was rejected. Please try again.",
        "payment_update", f"/payments/{payment_id}", idempotency_key=key).to_dict()


@jobs.function("process-payment", event="payment.submitted")
def process_payment(ctx, step):
    # amount is in the event too; as in the team's code, the stored amount is charged.
    payment_id, user_id = ctx.event.data.get("paymentId"), ctx.event.data.get("userId")
    payment = step.run("validate-payment", validate_payment, payment_id)
    gateway_result = step.run("process-gateway", process_gateway, payment["amount"],
                              idempotency_key(ctx.run_id, "process-gateway"))
    step.run("update-status", update_status, payment_id, gateway_result)
    step.run("send-notification", send_notification, user_id, payment_id,
             gateway_result["success"], idempotency_key(ctx.run_id, "send-notification"))
    return {"success": True, "paymentId": payment_id, "status": gateway_result["success"]}
