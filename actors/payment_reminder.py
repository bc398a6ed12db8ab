"""payment-reminder: remind a user of a pending payment when it falls due.

Sent future-dated by ``schedule_payment_reminder(payment_id, due_date)``, so the run
starts at the due time. A payment that is gone or no longer PENDING is skipped with
the reason, not failed: by then there is nothing to remind.
"""

from tengo_lugar.email import idempotency_key, send_email
from tengo_lugar.links import url
from tengo_lugar.payments import money
from tengo_lugar.models import Payment, PaymentStatus, Trip, User
from tengo_lugar.trips import format_local

from .client import jobs


def get_payment(payment_id: str) -> dict | None:
    payment = (Payment.select(Payment, User).join(User)
               .where(Payment.id == payment_id).first()) if payment_id else None
    if payment is None:
        return None
    trip = Trip.get_or_none(Trip.id == payment.trip_id) if payment.trip_id else None
    return {"id": payment.id, "amount": money(payment.amount), "currency": payment.currency,
            "status": payment.status.value, "dueAt": payment.due_at,
            "trip": f"{trip.origin} → {trip.destination}" if trip else None,
            "user": {"id": payment.user.id, "name": payment.user.name,
                     "email": payment.user.email}}


@jobs.function("payment-reminder", event="payment-reminder")
def payment_reminder(ctx, step):
    payment_id = ctx.event.data.get("paymentId")
    payment = step.run("get-payment", get_payment, payment_id)
    if payment is None:
        return {"skipped": True, "reason": f"payment {payment_id!r} not found"}
    if payment["status"] != PaymentStatus.PENDING.value:
        return {"skipped": True, "reason": f"payment is {payment['status']}, not PENDING",
                "paymentId": payment["id"]}
    due = payment["dueAt"] if payment["dueAt"] is not None else ctx.event.ts
    sent = step.run("send-reminder", send_email, payment["user"]["email"],
                    "Tenés un pago pendiente en Tengo Lugar", "payment-reminder",
                    {"name": payment["user"]["name"], "amount": payment["amount"],
                     "currency": payment["currency"], "trip": payment["trip"],
                     "due_date": format_local(due) if due else "hoy",
                     "link": url(f"/pagos/{payment['id']}")},
                    idempotency_key=idempotency_key(ctx.run_id, "send-reminder"))
    return {"sent": True, "paymentId": payment["id"], "emailId": sent["id"]}
