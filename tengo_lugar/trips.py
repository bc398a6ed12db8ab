"""Trip queries the jobs need: which trips leave "tomorrow" in Buenos Aires, and who rides them.

"Tomorrow" is a calendar day in ``America/Argentina/Buenos_Aires`` (UTC-3, no DST),
computed from an injected ``now`` (epoch ms), never from the machine's clock or zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from tengo_jobs import ms_to_iso

from .models import Driver, Passenger, Trip, TripPassenger, TripPassengerStatus, TripStatus

BUENOS_AIRES = zoneinfo.ZoneInfo("America/Argentina/Buenos_Aires")
_CHUNK = 500


def local_day_bounds(now_ms: int, days_ahead: int = 1, tz=BUENOS_AIRES) -> tuple[int, int]:
    """``[start, end)`` in epoch ms of the local calendar day ``days_ahead`` after ``now_ms``'s."""
    today = dt.datetime.fromtimestamp(now_ms / 1000, tz=tz).date()
    day = today + dt.timedelta(days=days_ahead)
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def format_local(ms: int, tz=BUENOS_AIRES) -> str:
    """``dd/mm/yyyy HH:MM`` in Buenos Aires time, as Tengo Lugar shows dates."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=tz).strftime("%d/%m/%Y %H:%M")


def tomorrow_trips(now_ms: int) -> list[dict]:
    """The ACTIVE trips departing tomorrow (Buenos Aires), in departure order, with their
    driver's and confirmed passengers' user ids; two queries per 500 trips.

    Each trip is ``{id, origin, destination, departureDate, driverUserId,
    passengerUserIds}``: what the reminder reads, not whole rows with their users
    included, so the step output of 10,000 trips stays under the 4 MB limit (about
    290 bytes a trip with three passengers: 2.9 MB).
    """
    start, end = local_day_bounds(now_ms, 1)
    rows = (Trip.select(Trip.id, Trip.origin, Trip.destination, Trip.departure_at, Driver.user)
            .join(Driver)
            .where((Trip.status == TripStatus.ACTIVE.value)
                   & (Trip.departure_at >= start) & (Trip.departure_at < end))
            .order_by(Trip.departure_at, Trip.id).tuples())
    trips = [{"id": tid, "origin": origin, "destination": dest, "departureDate": ms_to_iso(dep),
              "driverUserId": driver_user, "passengerUserIds": []}
             for tid, origin, dest, dep, driver_user in rows]
    by_id = {t["id"]: t for t in trips}
    ids = list(by_id)
    for i in range(0, len(ids), _CHUNK):
        riders = (TripPassenger.select(TripPassenger.trip, Passenger.user).join(Passenger)
                  .where(TripPassenger.trip.in_(ids[i:i + _CHUNK])
                         & (TripPassenger.status == TripPassengerStatus.CONFIRMED.value))
                  .order_by(TripPassenger.id).tuples())
        for trip_id, user_id in riders:
            by_id[trip_id]["passengerUserIds"].append(user_id)
    return trips
