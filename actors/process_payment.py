"""process-payment: charge a submitted payment in ARS and record APPROVED or REJECTED.

Steps: validate-payment (missing or invalid data fails at once; an already decided
payment is skipped), process-gateway (retried while the gateway is unavailable),
update-status, send-notification (to the payer).
"""

from decimal import Decimal

from tengo_jobs import get_runtime
from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import InvalidDataError, NotFoundError
from tengo_lugar.links import url
from tengo_lugar.models import Payment, PaymentStatus
from tengo_lugar.notifications import send_system_notification
from tengo_lugar.payments import SUPPORTED_CURRENCY, get_gateway, money

from .client import jobs


def validate_payment(payment_id: str) -> dict:
    payment = Payment.get_or_none(Payment.id == payment_id) if payment_id else None
    if payment is None:
        raise NotFoundError(f"payment {payment_id!r} not found")
    if payment.currency != SUPPORTED_CURRENCY:
        raise InvalidDataError(f"payment {payment_id}: currency {payment.currency!r} is not "
                               f"{SUPPORTED_CURRENCY}", field="currency")
    if Decimal(payment.amount) <= 0:
        raise InvalidDataError(f"payment {payment_id}: amount {payment.amount} is not positive",
                               field="amount")
    return {"id": payment.id, "userId": payment.user_id, "amount": money(payment.amount),
            "currency": payment.currency, "status": payment.status.value}


def process_gateway(payment: dict) -> dict:
    gateway = get_gateway()
    return gateway.charge(payment["id"], Decimal(payment["amount"]), payment["currency"]).to_dict()


def update_status(payment_id: str, result: dict) -> dict:
    status = PaymentStatus.APPROVED if result["approved"] else PaymentStatus.REJECTED
    (Payment.update(status=status, gateway_transaction_id=result["transactionId"],
                    failure_reason=result.get("reason"), updated_at=get_runtime().now())
     .where((Payment.id == payment_id) & (Payment.status == PaymentStatus.PENDING.value))
     .execute())
    return {"status": status.value}


def notify_payer(payment: dict, status: str, reason: str | None, key: str) -> dict:
    if status == PaymentStatus.APPROVED.value:
        title, message = "Pago aprobado", f"Tu pago de {payment['amount']} ARS fue aprobado."
    else:
        title = "Pago rechazado"
        message = f"Tu pago de {payment['amount']} ARS fue rechazado: {reason}."
    return send_system_notification(
        payment["userId"], title, message, f"PAYMENT_{status}", url(f"/pagos/{payment['id']}"),
        {"paymentId": payment["id"], "status": status},
        idempotency_key=key).raise_for_error("send-notification").data


@jobs.function("process-payment", event="payment.submitted")
def process_payment(ctx, step):
    payment = step.run("validate-payment", validate_payment, ctx.event.data.get("paymentId"))
    if payment["status"] != PaymentStatus.PENDING.value:
        return {"skipped": True, "reason": f"payment is already {payment['status']}",
                "paymentId": payment["id"]}
    result = step.run("process-gateway", process_gateway, payment)
    status = step.run("update-status", update_status, payment["id"], result)["status"]
    step.run("send-notification", notify_payer, payment, status, result.get("reason"),
             idempotency_key(ctx.run_id, "send-notification"))
    return {"paymentId": payment["id"], "status": status, "transactionId": result["transactionId"]}
