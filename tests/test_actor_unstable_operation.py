"""unstable-operation: retried; when it fails for good the admin is notified by on_failure."""

import logging

import actors  # noqa: F401
from tengo_lugar import settings as app_settings
from tengo_lugar.factories import make_user
from tengo_lugar.testing import make_app_runtime, notifications, outbox  # noqa: F401
from tengo_jobs.runtime import set_runtime
from tengo_jobs.testing import JobsTester

import pytest


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
    set_runtime(None)


def test_failure_notifies_the_admin_and_logs_the_error(make_tester, caplog):
    tester = make_tester()
    admin = make_user("Admin", "admin@tengolugar.com", is_admin=True)
    app_settings.configure(app_settings.AppSettings(admin_user_id=admin.id))
    tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    with caplog.at_level(logging.ERROR, logger="tengo_jobs.run"):
        runs = tester.run_until_idle()
    main, handler = runs
    assert main.function_id == "unstable-operation" and main.status == "failed"
    assert tester.steps(main.id)[0].attempts == 3  # 1 + retries=2
    assert handler.function_id == "unstable-operation-failure" and handler.status == "completed"
    [note] = notifications(admin.id)
    assert note.type == "SYSTEM_ALERT" and main.id in note.message
    assert note.metadata_dict["runId"] == main.id
    assert "shouldFail=true" in note.metadata_dict["error"]["message"]
    assert any(main.id in r.getMessage() and "failed" in r.getMessage() for r in caplog.records)


def test_transient_failures_recover_without_alerting(make_tester):
    tester = make_tester()
    tester.send({"name": "unstable.operation", "data": {"failTimes": 2}})
    [run] = tester.run_until_idle()
    assert run.status == "completed"
    assert tester.output(run) == {"ok": True, "attempts": 3}
    assert notifications() == []


def test_without_admin_user_id_the_handler_says_nobody_was_notified(make_tester):
    tester = make_tester()
    tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    main, handler = tester.run_until_idle()
    assert handler.status == "completed"
    assert tester.output(handler) == {"notified": False, "reason": "ADMIN_USER_ID is not set"}


def test_admin_user_id_naming_no_user_fails_the_handler_clearly(make_tester):
    tester = make_tester(admin_user_id="nobody")
    tester.send({"name": "unstable.operation", "data": {"shouldFail": True}})
    main, handler = tester.run_until_idle()
    assert handler.status == "failed"
    assert "user 'nobody' not found" in tester.error(handler)["message"]
