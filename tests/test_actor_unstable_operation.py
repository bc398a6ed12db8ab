"""unstable-operation: retried; when it fails for good its on_failure logs the error and
notifies the admin, as the team's handler does."""

import logging

import pytest

import actors  # noqa: F401
from actors.unstable_operation import unstable_operation
from tengo_lugar import settings as app_settings
from tengo_lugar.factories import make_user
from tengo_lugar.testing import error_logs, make_app_runtime, notifications  # noqa: F401
from tengo_jobs.testing import JobsTester


@pytest.fixture
def make_tester(tmp_path):
    made = []

    def make(**settings):
        runtime = make_app_runtime(tmp_path, **settings)
        made.append(runtime)
        return JobsTester(runtime)

    yield make
    for runtime in made:
        runtime.close()


def test_declared_with_the_default_retries_and_a_failure_handler():
    assert unstable_operation.events == ("unstable.operation",)
    assert unstable_operation.retries == 4  # the team sets none: Inngest's default is 4 too
    assert unstable_operation.on_failure.id == "unstable-operation-failure"


def test_failure_logs_the_error_and_notifies_the_admin(make_tester, caplog):
    tester = make_tester()
    admin = make_user("Admin", "admin@tengolugar.com", is_admin=True)
    app_settings.configure(app_settings.AppSettings(admin_user_id=admin.id))
    [event_id] = tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    with caplog.at_level(logging.ERROR, logger="tengo_lugar.errors"):
        main, handler = tester.run_until_idle()
    assert main.function_id == "unstable-operation" and main.status == "failed"
    assert tester.steps(main.id)[0].attempts == 5  # 1 + 4 default retries
    assert handler.function_id == "unstable-operation-failure" and handler.status == "completed"
    assert tester.steps(handler.id) == [] and tester.output(handler) is None
    error = tester.error(main)
    # logError({message: error.message, context: {eventData: event.data}})
    [row] = error_logs()
    assert row.message == error["message"] and "shouldFail=true" in row.message
    event_data = row.context_dict["eventData"]
    assert event_data["run_id"] == main.id and event_data["function_id"] == "unstable-operation"
    assert event_data["event"]["name"] == "unstable.operation"
    assert event_data["event"]["data"] == {"shouldFail": True} and event_data["error"] == error
    assert any(r.getMessage().startswith(error["message"]) for r in caplog.records)
    # sendSystemNotification(adminUserId, "Job Failed", `Job ${event.name} failed: ...`, ...)
    [note] = notifications(admin.id)
    assert (note.title, note.message, note.type, note.link) == (
        "Job Failed", f"Job inngest/function.failed failed: {error['message']}", "system_error",
        "/admin/jobs")
    assert main.event_id == event_id


def test_transient_failures_recover_without_alerting(make_tester):
    tester = make_tester()
    tester.send({"name": "unstable.operation", "data": {"failTimes": 2}})
    [run] = tester.run_until_idle()
    assert run.status == "completed"
    assert tester.output(run) == {"success": True, "attempts": 3}
    assert notifications() == [] and error_logs() == []


def test_without_admin_user_id_the_error_is_logged_and_the_handler_completes(make_tester, caplog):
    tester = make_tester()
    tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    main, handler = tester.run_until_idle()
    assert handler.status == "completed"
    assert len(error_logs()) == 1 and notifications() == []
    assert "the admin (ADMIN_USER_ID=None) was not notified" in caplog.text


def test_admin_user_id_naming_no_user_is_logged_not_raised(make_tester, caplog):
    tester = make_tester(admin_user_id="nobody")
    tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    main, handler = tester.run_until_idle()
    assert handler.status == "completed"
    assert "was not notified: User nobody not found" in caplog.text
