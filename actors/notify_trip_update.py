"""notify-trip-update: tell a user their trip's status changed (the team's ``notifyTripUpdate``).

Event ``trip.status-changed`` with ``tripId``, ``newStatus`` and ``userId``. One step,
send-notification, stores the notification with ``send_system_notification`` (no session
in a job) and returns its ``ApiResponse``; a failed one (an unknown user, say) fails the
run with ``Failed to send notification: <message>``, as the team's code throws.
"""

from tengo_lugar.email import idempotency_key
from tengo_lugar.errors import JobError
from tengo_lugar.notifications import send_system_notification

from .client import jobs


def send_notification(trip_id, new_status, user_id, key: str) -> dict:
    return send_system_notification(
        user_id, "Trip Status Updated", f"Your trip status changed to {new_status}",
        "trip_update", f"/trips/{trip_id}", {"tripId": trip_id, "status": new_status},
        idempotency_key=key).to_dict()


@jobs.function("notify-trip-update", event="trip.status-changed")
def notify_trip_update(ctx, step):
    data = ctx.event.data
    trip_id, new_status, user_id = data.get("tripId"), data.get("newStatus"), data.get("userId")
    result = step.run("send-notification", send_notification, trip_id, new_status, user_id,
                      idempotency_key(ctx.run_id, "send-notification"))
    if not result["success"]:
        raise JobError(f"Failed to send notification: {(result.get('error') or {}).get('message')}")
    return {"success": True}
