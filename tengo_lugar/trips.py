"""Trip queries the jobs need: which trips leave "tomorrow" in Buenos Aires, and who rides them.

"Tomorrow" is a calendar day in ``America/Argentina/Buenos_Aires`` (UTC-3, no DST),
computed from an injected ``now`` (epoch ms), never from the machine's clock or zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from .models import Driver, Passenger, Trip, TripPassenger, TripPassengerStatus, TripStatus, User

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


def participants(trip_ids: list[str]) -> dict[str, list[dict]]:
    """Confirmed passengers of each trip: ``{trip_id: [{userId, name, email}]}``."""
    result: dict[str, list[dict]] = {t: [] for t in trip_ids}
    for i in range(0, len(trip_ids), _CHUNK):
        rows = (TripPassenger
                .select(TripPassenger.trip, User.id, User.name, User.email)
                .join(Passenger).join(User)
                .where(TripPassenger.trip.in_(trip_ids[i:i + _CHUNK])
                       & (TripPassenger.status == TripPassengerStatus.CONFIRMED.value))
                .order_by(TripPassenger.id).tuples())
        for trip_id, user_id, name, email in rows:
            result[trip_id].append({"userId": user_id, "name": name, "email": email})
    return result


def tomorrow_trip_ids(now_ms: int) -> list[str]:
    """Ids of the ACTIVE trips departing tomorrow (Buenos Aires), in departure order.

    Only ids, so the step output stays small for any number of trips (10,000 ids are
    about 300 KB of JSON; the trips with their people would pass the 4 MB limit).
    """
    start, end = local_day_bounds(now_ms, 1)
    return [tid for (tid,) in Trip.select(Trip.id)
            .where((Trip.status == TripStatus.ACTIVE.value)
                   & (Trip.departure_at >= start) & (Trip.departure_at < end))
            .order_by(Trip.departure_at, Trip.id).tuples()]


def trip_with_people(trip_id: str) -> dict | None:
    """One trip with its driver and confirmed passengers (two queries), or ``None``."""
    return trips_with_people([trip_id]).get(trip_id)


def trip_user_ids(trip_id: str) -> list[str]:
    """The driver's and the confirmed passengers' user ids of one trip."""
    trip = (Trip.select(Trip, Driver).join(Driver).where(Trip.id == trip_id).first())
    if trip is None:
        return []
    return [trip.driver.user_id] + [p["userId"] for p in participants([trip_id])[trip_id]]


class TripLoader:
    """Loads trips with their people ``chunk`` at a time, in the order of ``trip_ids``.

    The daily reminder has one step per trip; loading each trip in its own step would
    cost two queries per step. The loader reads the trips of the next ``chunk`` steps
    in two queries when a step first needs one of them. It lives for one handler
    invocation only, so what it holds is at most one chunk's worth of steps old.
    """

    def __init__(self, trip_ids: list[str], chunk: int = 200):
        self._order = {tid: i for i, tid in enumerate(trip_ids)}
        self._ids = list(trip_ids)
        self._chunk = chunk
        self._cache: dict[str, dict | None] = {}

    def get(self, trip_id: str) -> dict | None:
        if trip_id not in self._cache:
            self._cache.clear()
            start = self._order.get(trip_id)
            ids = [trip_id] if start is None else self._ids[start:start + self._chunk]
            self._cache.update(dict.fromkeys(ids))
            self._cache.update(trips_with_people(ids))
        return self._cache.get(trip_id)


def trips_with_people(trip_ids: list[str]) -> dict[str, dict]:
    """Trips with their drivers and confirmed passengers, two queries per 500 trips."""
    result = {}
    for i in range(0, len(trip_ids), _CHUNK):
        chunk = trip_ids[i:i + _CHUNK]
        rows = (Trip.select(Trip.id, Trip.origin, Trip.destination, Trip.departure_at,
                            Trip.status, User.id, User.name, User.email)
                .join(Driver).join(User).where(Trip.id.in_(chunk)).tuples())
        for tid, origin, dest, dep, status, uid, name, email in rows:
            result[tid] = {"id": tid, "origin": origin, "destination": dest, "departureAt": dep,
                           "status": TripStatus(status).value,
                           "driver": {"userId": uid, "name": name, "email": email}}
        riders = participants([t for t in chunk if t in result])
        for tid, people in riders.items():
            result[tid]["passengers"] = people
    return result
