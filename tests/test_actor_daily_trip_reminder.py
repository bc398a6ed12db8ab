"""daily-trip-reminder: tomorrow is a Buenos Aires calendar day; one step per trip."""

import actors  # noqa: F401
from actors.daily_trip_reminder import daily_trip_reminder
from tengo_lugar.factories import make_driver, make_trip, make_user
from tengo_lugar.models import TripStatus
from tengo_lugar.testing import START_MS, app_runtime, notifications, outbox, tester  # noqa: F401
from tengo_jobs.core.cron import parse_cron
from tengo_jobs.core.events import SCHEDULED_EVENT, Event

HOUR = 3_600_000
# START_MS is 2026-03-10 09:00 in Buenos Aires (12:00 UTC): tomorrow there is
# [2026-03-11 00:00 -03:00, 2026-03-12 00:00 -03:00) = [03:00 UTC on the 11th, 03:00 UTC on the 12th).
TOMORROW_START = START_MS + 15 * HOUR
TOMORROW_END = TOMORROW_START + 24 * HOUR


def _tick(tester, at=START_MS):
    run_id = tester.runtime.store.events.start_run(daily_trip_reminder,
                       Event(name=SCHEDULED_EVENT, data={"cron": daily_trip_reminder.cron}, ts=at),
                       now=at, unique_key=f"cron:daily-trip-reminder:{at}")
    tester.run_until_idle()
    return tester.run(run_id)


def test_cron_fires_at_nine_in_buenos_aires():
    spec = parse_cron(daily_trip_reminder.cron)
    assert spec.next_fire(START_MS - 1) == START_MS
    assert spec.next_fire(START_MS) == START_MS + 24 * HOUR


def test_reminds_driver_and_passengers_of_trips_departing_tomorrow_only(tester):
    driver_user = make_user("Carlos", "carlos@example.com")
    driver = make_driver(driver_user)
    riders = [make_user(f"P{i}", f"p{i}@example.com") for i in range(3)]
    first = make_trip(driver, TOMORROW_START, passengers=riders)             # 00:00 tomorrow
    last = make_trip(driver, TOMORROW_END - 60_000, passengers=riders[:1])    # 23:59 tomorrow
    make_trip(driver, TOMORROW_START - 60_000, passengers=riders)            # 23:59 today
    make_trip(driver, TOMORROW_END, passengers=riders)                       # 00:00 the day after
    make_trip(driver, TOMORROW_START + HOUR, status=TripStatus.CANCELLED, passengers=riders)
    run = _tick(tester)
    assert run.status == "completed", run.error
    assert tester.output(run) == {"processedTrips": 2}
    assert [s.key for s in tester.steps(run.id)] == [
        "get-tomorrow-trips", f"send-reminder-trip-{first.id}", f"send-reminder-trip-{last.id}"]
    notes = notifications()
    assert len(notes) == 4 + 2
    assert sorted(n.user_id for n in notes if n.metadata_dict["tripId"] == first.id) == sorted(
        [driver_user.id] + [u.id for u in riders])
    assert {n.type for n in notes} == {"TRIP_REMINDER"}
    emails = outbox()
    assert len(emails) == 6
    assert {e.idempotency_key for e in emails} == {
        f"{run.id}:send-reminder-trip-{first.id}", f"{run.id}:send-reminder-trip-{last.id}"}
    driver_mail = [e for e in emails if e.to_address == "carlos@example.com"][0]
    assert "como conductor" in driver_mail.text and "11/03/2026 00:00" in driver_mail.text


def test_day_boundary_follows_buenos_aires_not_utc(tester):
    # 01:00 UTC on the 11th is already "tomorrow" in UTC but 22:00 on the 10th (today) in
    # Buenos Aires; 02:00 UTC on the 12th is 23:00 on the 11th (tomorrow) there.
    driver = make_driver(make_user())
    make_trip(driver, TOMORROW_START - 2 * HOUR)  # 01:00 UTC on the 11th, 22:00 the 10th in BA
    kept = make_trip(driver, TOMORROW_END - HOUR)  # 02:00 UTC on the 12th, 23:00 the 11th in BA
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 1}
    assert tester.steps(run.id)[1].key == f"send-reminder-trip-{kept.id}"


def test_no_trips_tomorrow_completes_with_zero(tester):
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 0}
    assert notifications() == [] and outbox() == []


def test_a_failing_trip_step_is_retried_alone_and_others_are_not_reminded_twice(tester, monkeypatch):
    import actors.daily_trip_reminder as mod

    driver = make_driver(make_user())
    trips = [make_trip(driver, TOMORROW_START + i * HOUR, passengers=[make_user()]) for i in range(3)]
    real = mod.send_trip_reminder
    calls = []

    def flaky(trip_id, key, loader):
        calls.append(trip_id)
        if trip_id == trips[1].id and calls.count(trip_id) == 1:
            raise ConnectionError("database hiccup")
        return real(trip_id, key, loader)

    monkeypatch.setattr(mod, "send_trip_reminder", flaky)
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 3}
    assert calls == [trips[0].id, trips[1].id, trips[1].id, trips[2].id]
    assert len(notifications()) == 6 and len(outbox()) == 6
    assert tester.steps(run.id)[2].attempts == 2


def test_declared_with_three_retries():
    assert daily_trip_reminder.retries == 3


def test_trip_cancelled_after_the_list_was_made_is_skipped(tester, monkeypatch):
    import actors.daily_trip_reminder as mod
    from tengo_lugar.models import Trip

    driver = make_driver(make_user())
    keep = make_trip(driver, TOMORROW_START + HOUR, passengers=[make_user()])
    gone = make_trip(driver, TOMORROW_START + 2 * HOUR, passengers=[make_user()])
    real = mod.tomorrow_trip_ids

    def list_then_cancel(now):
        ids = real(now)
        Trip.update(status=TripStatus.CANCELLED).where(Trip.id == gone.id).execute()
        return ids

    monkeypatch.setattr(mod, "tomorrow_trip_ids", list_then_cancel)
    run = _tick(tester)
    assert tester.output(run) == {"processedTrips": 2}
    import json

    assert json.loads(tester.steps(run.id)[2].output) == {
        "tripId": gone.id, "skipped": True, "reason": "trip is CANCELLED"}
    assert {n.metadata_dict["tripId"] for n in notifications()} == {keep.id}
