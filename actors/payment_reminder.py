"""payment-reminder: remind the passenger of a pending payment when it falls due (the team's ``paymentReminder``).

Event ``payment-reminder`` with ``paymentId``, sent future-dated (``ts``) by
``tengo_lugar.actions.schedule_payment_reminder(payment_id, due_date)``, so the run starts
at the due time. get-payment reads the payment with its passenger's user; one that is no
longer PENDING is skipped with ``{skipped: true, reason: "Payment already processed"}``;
otherwise send-reminder notifies the passenger (its ``ApiResponse`` is the step's output
and, as in the team's code, a failed one does not fail the run).

The team's payment reaches its passenger through ``tripPassenger.passenger.user``; our
``tl_payments`` row names the paying passenger's user directly (``user_id``), so that is
who is reminded. A payment that does not exist fails the run with ``Payment <id> not
found`` (the team's code fails there too, reading ``status`` of ``null``).
"""

from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import JobError
from tengo_lugar.models import Payment, PaymentStatus, User
from tengo_lugar.notifications import send_system_notification

from .client import jobs


def get_payment(payment_id) -> dict | None:
    """The payment with its passenger's user, or ``None``."""
    if not isinstance(payment_id, str) or not payment_id:
        return None
    payment = Payment.select(Payment, User).join(User).where(Payment.id == payment_id).first()
    return None if payment is None else {**payment.to_dict(), "user": payment.user.to_dict()}


def send_reminder(user_id: str, payment_id: str, key: str) -> dict:
    return send_system_notification(
        user_id, "Payment Reminder", "You have a pending payment. Please complete it soon.",
        "payment_reminder", f"/payments/{payment_id}", idempotency_key=key).to_dict()


@jobs.function("payment-reminder", event="payment-reminder")
def payment_reminder(ctx, step):
    payment_id = ctx.event.data.get("paymentId")
    payment = step.run("get-payment", get_payment, payment_id)
    if payment is None:
        raise JobError(f"Payment {payment_id} not found")
    if payment["status"] != PaymentStatus.PENDING.value:
        return {"skipped": True, "reason": "Payment already processed"}
    step.run("send-reminder", send_reminder, payment["userId"], payment_id,
             idempotency_key(ctx.run_id, "send-reminder"))
    return {"success": True, "paymentId": payment_id}
