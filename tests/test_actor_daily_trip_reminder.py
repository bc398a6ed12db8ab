"""daily-trip-reminder: 09:00 in Buenos Aires; tomorrow is a Buenos Aires calendar day; one step per trip."""

import actors  # noqa: F401
from actors.daily_trip_reminder import daily_trip_reminder
from tengo_lugar.factories import make_driver, make_trip, make_user
from tengo_lugar.models import TripPassenger, TripStatus
from tengo_lugar.testing import (START_MS, app_runtime, notifications, outbox, tester,  # noqa: F401
                                 tick_cron)

HOUR = 3_600_000
# START_MS is 2026-03-10 09:00 in Buenos Aires (12:00 UTC): tomorrow there is
# [2026-03-11 00:00 -03:00, 2026-03-12 00:00 -03:00) = [03:00 UTC on the 11th, 03:00 UTC on the 12th).
TOMORROW_START = START_MS + 15 * HOUR
TOMORROW_END = TOMORROW_START + 24 * HOUR


def _tick(tester, at=START_MS):
    return tick_cron(tester, daily_trip_reminder, at)


def test_declared_as_the_teams_cron_at_nine_in_buenos_aires_with_three_retries(tester):
    assert daily_trip_reminder.cron == "TZ=America/Argentina/Buenos_Aires 0 9 * * *"
    assert daily_trip_reminder.retries == 3
    assert daily_trip_reminder.describe()["triggers"] == [{"cron": daily_trip_reminder.cron}]


def test_reminds_driver_and_passengers_of_trips_departing_tomorrow_only(tester):
    driver_user = make_user("Carlos", "carlos@example.com")
    driver = make_driver(driver_user)
    riders = [make_user(f"P{i}", f"p{i}@example.com") for i in range(3)]
    first = make_trip(driver, TOMORROW_START, passengers=riders, origin="Córdoba",
                      destination="Villa Carlos Paz")                         # 00:00 tomorrow
    last = make_trip(driver, TOMORROW_END - 60_000, passengers=riders[:1], origin="Rosario",
                     destination="Buenos Aires")                              # 23:59 tomorrow
    make_trip(driver, TOMORROW_START - 60_000, passengers=riders)            # 23:59 today
    make_trip(driver, TOMORROW_END, passengers=riders)                       # 00:00 the day after
    make_trip(driver, TOMORROW_START + HOUR, status=TripStatus.CANCELLED, passengers=riders)
    run = _tick(tester)
    assert run.status == "completed", run.error
    assert tester.output(run) == {"processedTrips": 2}
    steps = tester.steps(run.id)
    assert [s.key for s in steps] == [
        "get-tomorrow-trips", f"send-reminder-trip-{first.id}", f"send-reminder-trip-{last.id}"]
    trips = tester.output(steps[0])
    assert [(t["id"], t["driverUserId"], t["passengerUserIds"]) for t in trips] == [
        (first.id, driver_user.id, [u.id for u in riders]), (last.id, driver_user.id, [riders[0].id])]
    notes = notifications()
    assert [(n.user_id, n.title, n.message, n.type, n.link) for n in notes] == [
        (driver_user.id, "Trip Tomorrow", "You have a trip from Córdoba to Villa Carlos Paz tomorrow",
         "trip_reminder", f"/trips/{first.id}"),
        *[(u.id, "Trip Tomorrow", "Your trip from Córdoba to Villa Carlos Paz is tomorrow",
           "trip_reminder", f"/trips/{first.id}") for u in riders],
        (driver_user.id, "Trip Tomorrow", "You have a trip from Rosario to Buenos Aires tomorrow",
         "trip_reminder", f"/trips/{last.id}"),
        (riders[0].id, "Trip Tomorrow", "Your trip from Rosario to Buenos Aires is tomorrow",
         "trip_reminder", f"/trips/{last.id}"),
    ]
    assert {n.idempotency_key for n in notes} == {
        f"{run.id}:send-reminder-trip-{first.id}", f"{run.id}:send-reminder-trip-{last.id}"}
    assert outbox() == []  # the team's reminder notifies in the app only


def test_day_boundary_follows_buenos_aires_not_utc(tester):
    # 01:00 UTC on the 11th is already "tomorrow" in UTC but 22:00 on the 10th (today) in
    # Buenos Aires; 02:00 UTC on the 12th is 23:00 on the 11th (tomorrow) there.
    driver = make_driver(make_user())
    make_trip(driver, TOMORROW_START - 2 * HOUR)  # 01:00 UTC on the 11th, 22:00 the 10th in BA
    kept = make_trip(driver, TOMORROW_END - HOUR)  # 02:00 UTC on the 12th, 23:00 the 11th in BA
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 1}
    assert tester.steps(run.id)[1].key == f"send-reminder-trip-{kept.id}"


def test_only_confirmed_passengers_are_reminded(tester):
    driver_user = make_user()
    confirmed, cancelled = make_user(), make_user()
    trip = make_trip(make_driver(driver_user), TOMORROW_START + HOUR,
                     passengers=[confirmed, cancelled])
    (TripPassenger.update(status="CANCELLED")
     .where(TripPassenger.passenger == cancelled.passenger.get().id).execute())
    run = _tick(tester)
    assert run.status == "completed"
    assert [n.user_id for n in notifications()] == [driver_user.id, confirmed.id]
    assert tester.output(tester.steps(run.id)[0])[0]["id"] == trip.id


def test_no_trips_tomorrow_completes_with_zero(tester):
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 0}
    assert [s.key for s in tester.steps(run.id)] == ["get-tomorrow-trips"]
    assert notifications() == []


def test_a_user_deleted_since_does_not_fail_the_step_and_the_others_are_reminded(
        tester, monkeypatch, caplog):
    import actors.daily_trip_reminder as mod

    driver_user = make_user()
    gone, kept = make_user(), make_user()
    trip = make_trip(make_driver(driver_user), TOMORROW_START + HOUR, passengers=[gone, kept])
    real = mod.tomorrow_trips

    def list_then_delete(now):
        trips = real(now)
        gone.delete_instance(recursive=True)
        return trips

    monkeypatch.setattr(mod, "tomorrow_trips", list_then_delete)
    run = _tick(tester)
    assert run.status == "completed" and tester.output(run) == {"processedTrips": 1}
    assert [n.user_id for n in notifications()] == [driver_user.id, kept.id]
    assert f"trip {trip.id}: the reminder to user {gone.id} was not stored" in caplog.text


def test_a_failing_trip_step_is_retried_alone_and_others_are_not_reminded_twice(tester, monkeypatch):
    import actors.daily_trip_reminder as mod

    driver = make_driver(make_user())
    trips = [make_trip(driver, TOMORROW_START + i * HOUR, passengers=[make_user()]) for i in range(3)]
    real = mod.send_trip_reminder
    calls = []

    def flaky(trip, key):
        calls.append(trip["id"])
        result = real(trip, key)  # the notifications are written, then the step fails
        if trip["id"] == trips[1].id and calls.count(trip["id"]) == 1:
            raise ConnectionError("database hiccup")
        return result

    monkeypatch.setattr(mod, "send_trip_reminder", flaky)
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 3}
    assert calls == [trips[0].id, trips[1].id, trips[1].id, trips[2].id]
    assert len(notifications()) == 6  # the failed attempt's rows were rolled back with it
    assert tester.steps(run.id)[2].attempts == 2
