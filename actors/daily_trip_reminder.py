"""daily-trip-reminder: at 09:00 in Buenos Aires, remind everyone travelling tomorrow (the team's ``dailyTripReminder``).

Cron ``0 9 * * *`` in ``America/Argentina/Buenos_Aires``, retries 3. get-tomorrow-trips
lists the ACTIVE trips departing tomorrow, a Buenos Aires calendar day counted from the
tick's time (so a late or replayed tick reminds the same trips), with their driver's and
confirmed passengers' user ids. Then one ``send-reminder-trip-<id>`` step per trip
notifies the driver ("You have a trip from X to Y tomorrow") and each passenger ("Your
trip from X to Y is tomorrow"). As in the team's code a failed ``ApiResponse`` (a user
deleted since) does not fail the step; it is logged. The notifications of a step commit
together with its checkpoint (``step.transaction``), under the key
``"{run_id}:send-reminder-trip-<id>"``: a failed trip step is retried alone, and nobody
is reminded twice. Returns ``{processedTrips}``.
"""

import logging

from tengo_jobs import get_runtime
from tengo_lugar.email import idempotency_key
from tengo_lugar.notifications import SystemNotification, send_system_notifications
from tengo_lugar.trips import tomorrow_trips

from .client import jobs

log = logging.getLogger(__name__)


def send_trip_reminder(trip: dict, key: str) -> None:
    link = f"/trips/{trip['id']}"
    route = f"from {trip['origin']} to {trip['destination']}"
    notes = [SystemNotification(trip["driverUserId"], "Trip Tomorrow",
                                f"You have a trip {route} tomorrow", "trip_reminder", link)]
    notes += [SystemNotification(user_id, "Trip Tomorrow", f"Your trip {route} is tomorrow",
                                 "trip_reminder", link)
              for user_id in trip["passengerUserIds"]]
    for note, response in zip(notes, send_system_notifications(notes, idempotency_key=key)):
        if not response.success:
            log.warning("trip %s: the reminder to user %s was not stored: %s", trip["id"],
                        note.user_id, response.error.message)


@jobs.function("daily-trip-reminder", cron="TZ=America/Argentina/Buenos_Aires 0 9 * * *",
               retries=3)
def daily_trip_reminder(ctx, step):
    now = ctx.event.ts if ctx.event.ts is not None else get_runtime().now()
    trips = step.run("get-tomorrow-trips", tomorrow_trips, now)
    for trip in trips:
        step_id = f"send-reminder-trip-{trip['id']}"
        step.transaction(step_id, send_trip_reminder, trip, idempotency_key(ctx.run_id, step_id))
    return {"processedTrips": len(trips)}
