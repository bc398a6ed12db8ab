"""notify-trip-update: tell the people of a trip that its status changed.

Event ``trip.status-changed`` with ``tripId`` and ``status`` (and optionally
``userId`` to notify one person, ``message``); without ``userId`` the driver and
the confirmed passengers are notified. A failed ``ApiResponse`` raises: an unknown
user or trip fails the run at once, other failures are retried.
"""

from tengo_lugar.api_response import ApiResponse
from tengo_lugar.email import idempotency_key
from tengo_lugar.links import url
from tengo_lugar.notifications import send_system_notifications
from tengo_lugar.trips import trip_user_ids

from .client import jobs

STATUS_MESSAGES = {
    "ACTIVE": "El viaje está confirmado.",
    "IN_PROGRESS": "El viaje comenzó.",
    "COMPLETED": "El viaje finalizó. ¡Gracias por viajar con Tengo Lugar!",
    "CANCELLED": "El viaje fue cancelado.",
}


def notify(data: dict, key: str) -> dict:
    trip_id, status = data.get("tripId"), data.get("status")
    if not trip_id or not status:
        response = ApiResponse.fail("event data needs tripId and status", "VALIDATION_ERROR")
    else:
        users = [data["userId"]] if data.get("userId") else trip_user_ids(trip_id)
        if not users:
            response = ApiResponse.fail(f"trip {trip_id!r} not found", "TRIP_NOT_FOUND")
        else:
            message = data.get("message") or STATUS_MESSAGES.get(status, f"Nuevo estado: {status}.")
            response = send_system_notifications(
                users, "Actualización de tu viaje", message, "TRIP_UPDATE",
                url(f"/viajes/{trip_id}"), {"tripId": trip_id, "status": status},
                idempotency_key=key)
    response.raise_for_error("notify-trip-update send-notification")
    return {"notified": [n["userId"] for n in response.data]}


@jobs.function("notify-trip-update", event="trip.status-changed")
def notify_trip_update(ctx, step):
    result = step.run("send-notification", notify, ctx.event.data,
                      idempotency_key(ctx.run_id, "send-notification"))
    return {"success": True, "tripId": ctx.event.data.get("tripId"), **result}
