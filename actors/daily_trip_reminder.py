"""daily-trip-reminder: at 09:00 in Buenos Aires, remind everyone travelling tomorrow.

get-tomorrow-trips lists the ACTIVE trips departing tomorrow (Buenos Aires calendar
day of the tick); then one ``send-reminder-trip-<id>`` step per trip loads the trip
with its driver and confirmed passengers and notifies each of them in the app and
by email (one batch, one idempotency key per step). A trip cancelled in between is
skipped. A failed trip step is retried alone; the trips already reminded are not
reminded again.
"""

from tengo_jobs import get_runtime
from tengo_lugar.dbutil import in_transaction
from tengo_lugar.email import EmailMessage, idempotency_key, send_emails
from tengo_lugar.links import url
from tengo_lugar.notifications import send_system_notifications
from tengo_lugar.models import TripStatus
from tengo_lugar.trips import TripLoader, format_local, tomorrow_trip_ids, trip_with_people

from .client import jobs


def send_trip_reminder(trip_id: str, key: str, loader: TripLoader | None = None) -> dict:
    trip = loader.get(trip_id) if loader is not None else trip_with_people(trip_id)
    if trip is None or trip["status"] != TripStatus.ACTIVE.value:
        return {"tripId": trip_id, "skipped": True,
                "reason": "trip not found" if trip is None else f"trip is {trip['status']}"}
    people = [dict(trip["driver"], role="driver")] + [dict(p, role="passenger")
                                                      for p in trip["passengers"]]
    departure = format_local(trip["departureAt"])
    link = url(f"/viajes/{trip['id']}")
    with in_transaction(get_runtime().db):  # joins the step's transaction (step.transaction)
        send_system_notifications(
            [p["userId"] for p in people], "Tu viaje es mañana",
            f"{trip['origin']} → {trip['destination']}, salida {departure}.", "TRIP_REMINDER",
            link, {"tripId": trip["id"]}, idempotency_key=key).raise_for_error("trip reminder notification")
        send_emails([EmailMessage(p["email"], "Recordatorio: tu viaje es mañana", "trip-reminder",
                                  {"name": p["name"], "role": p["role"], "origin": trip["origin"],
                                   "destination": trip["destination"], "departure": departure,
                                   "link": link})
                     for p in people], idempotency_key=key)
    return {"tripId": trip["id"], "notified": len(people)}


@jobs.function("daily-trip-reminder", cron="TZ=America/Argentina/Buenos_Aires 0 9 * * *",
               retries=3)
def daily_trip_reminder(ctx, step):
    # The tick's time (the scheduled event's ts) decides what "tomorrow" is, so a late
    # or replayed tick reminds the same trips.
    now = ctx.event.ts if ctx.event.ts is not None else get_runtime().now()
    trip_ids = step.run("get-tomorrow-trips", tomorrow_trip_ids, now)
    loader = TripLoader(trip_ids)  # reads trips in chunks as their steps come up
    for trip_id in trip_ids:
        step_id = f"send-reminder-trip-{trip_id}"
        # notifications and outbox rows commit with the step's checkpoint, exactly once
        step.transaction(step_id, send_trip_reminder, trip_id,
                         idempotency_key(ctx.run_id, step_id), loader)
    return {"processedTrips": len(trip_ids)}
