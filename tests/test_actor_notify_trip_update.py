"""notify-trip-update: the trip's people are notified; a failed ApiResponse fails the run."""

import actors  # noqa: F401
from tengo_lugar.factories import make_driver, make_trip, make_user
from tengo_lugar.testing import START_MS, app_runtime, notifications, tester  # noqa: F401


def _send(tester, data):
    [event_id] = tester.send({"name": "trip.status-changed", "data": data})
    tester.run_until_idle()
    [run] = [r for r in tester.runs("notify-trip-update") if r.event_id == event_id]
    return run


def test_cancellation_notifies_driver_and_passengers(tester):
    driver_user = make_user("Diego")
    riders = [make_user("Ana"), make_user("Beto")]
    trip = make_trip(make_driver(driver_user), START_MS + 3_600_000, passengers=riders)
    run = _send(tester, {"tripId": trip.id, "status": "CANCELLED"})
    assert run.status == "completed", run.error
    notes = notifications()
    assert sorted(n.user_id for n in notes) == sorted([driver_user.id] + [u.id for u in riders])
    assert {n.message for n in notes} == {"El viaje fue cancelado."}
    assert {n.link for n in notes} == {f"https://tengolugar.com/viajes/{trip.id}"}
    assert notes[0].metadata_dict == {"tripId": trip.id, "status": "CANCELLED"}


def test_one_user_with_a_custom_message(tester):
    user = make_user()
    run = _send(tester, {"tripId": "t1", "status": "IN_PROGRESS", "userId": user.id,
                         "message": "Tu conductor está llegando."})
    assert run.status == "completed"
    [note] = notifications(user.id)
    assert note.message == "Tu conductor está llegando." and note.type == "TRIP_UPDATE"


def test_unknown_user_makes_the_api_response_fail_and_the_run_fail_at_once(tester):
    run = _send(tester, {"tripId": "t1", "status": "CANCELLED", "userId": "ghost"})
    assert run.status == "failed"
    [step] = tester.steps(run.id)
    assert step.attempts == 1
    message = tester.error(run)["message"]
    assert "user 'ghost' not found (USER_NOT_FOUND)" in message
    assert notifications() == []


def test_unknown_trip_and_missing_fields_fail_clearly(tester):
    run = _send(tester, {"tripId": "nope", "status": "CANCELLED"})
    assert "trip 'nope' not found (TRIP_NOT_FOUND)" in tester.error(run)["message"]
    run = _send(tester, {"status": "CANCELLED"})
    assert "needs tripId and status (VALIDATION_ERROR)" in tester.error(run)["message"]
