"""The ``Jobs`` client and ``@jobs.function``: declaration-time validation and ``jobs.send`` shapes."""

from __future__ import annotations

import pytest

from tengo_jobs import ConfigurationError, Event, Jobs, RunStatus
from tengo_jobs.errors import DuplicateFunctionError
from tengo_jobs.core.functions import MAX_RETRIES
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run


def _noop(ctx, step):
    return None


@pytest.mark.parametrize("app_id", ["", "   ", None, 3])
def test_jobs_refuses_an_empty_or_non_string_app_id(tj_runtime, app_id):
    with pytest.raises(ConfigurationError, match="app_id"):
        Jobs(app_id=app_id)


@pytest.mark.parametrize("kwargs, fragment", [
    ({}, "give a trigger"),
    ({"event": ""}, "event trigger"),
    ({"event": "x" * 257}, "event trigger"),
    ({"event": "e", "retries": -1}, "retries must be an integer from 0 to 20"),
    ({"event": "e", "retries": MAX_RETRIES + 1}, "retries must be an integer from 0 to 20"),
    ({"event": "e", "retries": "3"}, "retries must be an integer"),
    ({"event": "e", "retries": True}, "retries must be an integer"),
    ({"event": "e", "misfire": "sometimes"}, "misfire"),
    ({"event": "e", "on_failure": "not callable"}, "on_failure"),
    ({"event": "e", "concurrency": 0}, "concurrency"),
    ({"event": "e", "colour": "blue"}, "unknown option 'colour'"),
    ({"cron": "61 * * * *"}, "cron"),
])
def test_function_decorator_rejects_bad_options_with_a_message_naming_them(tj_runtime, kwargs,
                                                                           fragment):
    jobs = Jobs(app_id="app", runtime=tj_runtime)
    with pytest.raises(ConfigurationError, match=fragment) as info:
        jobs.function("fn", **kwargs)(_noop)
    assert "'fn'" in str(info.value)


@pytest.mark.parametrize("fn_id", ["", "  ", None, "x" * 101])
def test_function_decorator_rejects_bad_ids(tj_runtime, fn_id):
    jobs = Jobs(app_id="app", runtime=tj_runtime)
    with pytest.raises(ConfigurationError, match="function id"):
        jobs.function(fn_id, event="e")(_noop)


def test_retries_accepts_zero_and_the_maximum(tj_runtime):
    jobs = Jobs(app_id="app", runtime=tj_runtime)
    assert jobs.function("r0", event="e", retries=0)(_noop).retries == 0
    assert jobs.function("r20", event="e", retries=20)(_noop).retries == 20
    assert jobs.function("rdefault", event="e")(_noop).retries == 4


def test_two_different_handlers_cannot_share_one_function_id(tj_runtime):
    jobs = Jobs(app_id="app", runtime=tj_runtime)
    jobs.function("same-id", event="e")(_noop)

    def other(ctx, step):
        return 1

    with pytest.raises(DuplicateFunctionError, match="same-id"):
        jobs.function("same-id", event="e")(other)


def test_on_failure_handler_is_registered_as_its_own_function(tj_runtime):
    jobs = Jobs(app_id="app", runtime=tj_runtime)
    fn = jobs.function("main", event="e", on_failure=_noop)(_noop)
    assert fn.on_failure.id == "main-failure"
    assert tj_runtime.registry.find("main-failure") is fn.on_failure
    assert fn.on_failure.is_failure_handler


@pytest.mark.parametrize("payload", [
    {"name": "order.created", "data": {"n": 1}},
    Event(name="order.created", data={"n": 1}),
    [{"name": "order.created", "data": {"n": 1}}, Event(name="order.created", data={"n": 2})],
])
def test_send_accepts_a_dict_an_event_or_a_list_and_starts_one_run_per_event(jobs, tester, payload):
    jobs.function("count", event="order.created")(lambda ctx, step: ctx.event.data["n"])
    ids = jobs.send(payload)
    expected = len(payload) if isinstance(payload, list) else 1
    assert len(ids) == expected and len(set(ids)) == expected
    assert EventRow.select().count() == expected
    runs = tester.run_until_idle()
    assert len(runs) == expected
    assert all(r.status == RunStatus.COMPLETED for r in runs)
    assert sorted(tester.output(r) for r in runs) == list(range(1, expected + 1))


def test_send_returns_ids_for_events_that_trigger_nothing(jobs):
    ids = jobs.send({"name": "nobody.listens", "data": {}})
    assert len(ids) == 1
    assert EventRow.get_by_id(ids[0]).name == "nobody.listens"
    assert Run.select().count() == 0


def test_one_event_starts_every_function_it_triggers(jobs, tester):
    jobs.function("a", event="shared")(lambda ctx, step: "a")
    jobs.function("b", event=["other", "shared"])(lambda ctx, step: "b")
    jobs.send({"name": "shared", "data": {}})
    runs = tester.run_until_idle()
    assert sorted((r.function_id, tester.output(r)) for r in runs) == [("a", "a"), ("b", "b")]
