"""notify-trip-update: the team's {tripId, newStatus, userId} event notifies that user;
a failed ApiResponse fails the run with the team's message."""

import actors  # noqa: F401
from tengo_lugar.factories import make_user
from tengo_lugar.testing import app_runtime, notifications, tester  # noqa: F401


def _send(tester, data):
    [event_id] = tester.send({"name": "trip.status-changed", "data": data})
    tester.run_until_idle()
    [run] = [r for r in tester.runs("notify-trip-update") if r.event_id == event_id]
    return run


def test_the_user_is_notified_of_the_new_status(tester):
    user = make_user("Ana")
    run = _send(tester, {"tripId": "trip_42", "newStatus": "CANCELLED", "userId": user.id})
    assert run.status == "completed", run.error
    assert tester.output(run) == {"success": True}
    [step] = tester.steps(run.id)
    assert step.key == "send-notification"
    [note] = notifications()
    assert (note.user_id, note.title, note.message, note.type, note.link) == (
        user.id, "Trip Status Updated", "Your trip status changed to CANCELLED", "trip_update",
        "/trips/trip_42")
    assert note.metadata_dict == {"tripId": "trip_42", "status": "CANCELLED"}
    assert note.idempotency_key == f"{run.id}:send-notification"
    output = tester.output(step)
    assert output["success"] is True and output["data"]["userId"] == user.id


def test_unknown_user_fails_the_run_with_the_teams_message(tester):
    run = _send(tester, {"tripId": "trip_42", "newStatus": "CANCELLED", "userId": "ghost"})
    assert run.status == "failed"
    assert tester.error(run)["message"] == "Failed to send notification: User ghost not found"
    [step] = tester.steps(run.id)  # the step itself completed, with the failed ApiResponse
    assert step.status == "completed" and tester.output(step)["success"] is False
    assert tester.output(step)["error"] == {"message": "User ghost not found",
                                            "code": "USER_NOT_FOUND"}
    assert notifications() == []
