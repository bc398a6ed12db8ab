"""``event_schema=Model``: the event's data is validated at intake, before any run starts;
an event that fails is refused (HTTP 400) naming the field and nothing is stored."""

from __future__ import annotations

import pydantic
import pytest

from tengo_jobs import ConfigurationError, EventValidationError, Jobs, RunStatus
from tengo_jobs.store.schema import EventRow, RunRow

from webhelpers import EVENT_KEY, make_app


class Address(pydantic.BaseModel):
    city: str


class UserRegistered(pydantic.BaseModel):
    user_id: str
    age: int
    address: Address


GOOD = {"user_id": "u1", "age": 30, "address": {"city": "Rosario"}}


def _declare(jobs, seen=None):
    @jobs.function("welcome", event="schema.user.registered", event_schema=UserRegistered, retries=0)
    def welcome(ctx, step):
        if seen is not None:
            seen.append((ctx.event.data, ctx.event_model))
        return ctx.event_model.address.city

    return welcome


def test_a_valid_event_runs_and_the_handler_gets_the_dict_and_the_model(jobs, tester):
    seen: list = []
    _declare(jobs, seen)
    jobs.send({"name": "schema.user.registered", "data": GOOD})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == "Rosario"
    [(data, model)] = seen
    assert data == GOOD and model == UserRegistered(**GOOD)


def test_an_event_that_fails_the_schema_is_refused_naming_the_field_and_nothing_is_stored(jobs, tester):
    _declare(jobs)
    with pytest.raises(EventValidationError, match=r"data\.address\.city") as caught:
        jobs.send([{"name": "schema.user.registered", "data": GOOD},
                   {"name": "schema.user.registered", "data": {**GOOD, "address": {}}}])
    assert caught.value.field == "data.address.city" and caught.value.index == 1
    assert "UserRegistered" in str(caught.value) and "'welcome'" in str(caught.value)
    with pytest.raises(EventValidationError) as caught:
        jobs.send({"name": "schema.user.registered", "data": {**GOOD, "age": "old"}})
    assert caught.value.field == "data.age"
    assert EventRow.select().count() == 0 and RunRow.select().count() == 0
    # an event no schema'd function is triggered by is not checked
    jobs.send({"name": "other.event", "data": {"anything": 1}})
    assert EventRow.select().count() == 1


def test_over_http_a_bad_event_is_a_400_naming_the_field(tmp_path):
    runtime, app = make_app(tmp_path)
    try:
        _declare(Jobs("schema-web", runtime=runtime))
        client = app.test_client()
        r = client.post(f"/e/{EVENT_KEY}", json={"name": "schema.user.registered",
                                                  "data": {**GOOD, "age": "old"}})
        assert r.status_code == 400, r.get_json()
        assert r.get_json()["field"] == "data.age"
        r = client.post(f"/e/{EVENT_KEY}", json={"name": "schema.user.registered", "data": GOOD})
        assert r.status_code == 200
    finally:
        runtime.close()


def test_event_schema_is_checked_when_declared(jobs):
    with pytest.raises(ConfigurationError, match="event_schema must be a pydantic model"):
        jobs.function("x", event="e", event_schema=dict)(lambda ctx, step: None)
    with pytest.raises(ConfigurationError, match="event_schema applies to event triggers"):
        jobs.function("y", cron="0 9 * * *", event_schema=UserRegistered)(lambda ctx, step: None)
