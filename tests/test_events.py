"""The event contract: validation (field and batch index named), all-or-nothing batches, 24 h dedupe."""

from __future__ import annotations

import pytest

from tengo_jobs import EventValidationError, RunStatus
from tengo_jobs.core.events import (DEDUPE_WINDOW_MS, MAX_BATCH_EVENTS, MAX_EVENT_BYTES,
                               EventTooLargeError, validate_event)
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run


@pytest.fixture
def jobs(jobs):
    """The client, with a function that every order.created event starts."""
    jobs.function("on-order", event="order.created")(lambda ctx, step: ctx.event.data)
    return jobs


@pytest.mark.parametrize("event, field, fragment", [
    ({"data": {}}, "name", "'name' is required"),
    ({"name": "", "data": {}}, "name", "'name' is required"),
    ({"name": 5, "data": {}}, "name", "must be a string"),
    ({"name": "x" * 257, "data": {}}, "name", "257 characters; the limit is 256"),
    ({"name": "tengo/internal", "data": {}}, "name", "reserved prefix"),
    ({"name": "inngest/function.failed", "data": {}}, "name", "reserved prefix"),
    ({"name": "Inngest/Anything", "data": {}}, "name", "reserved prefix"),
    ({"name": "ok", "data": [1, 2]}, "data", "'data' must be an object"),
    ({"name": "ok", "data": "text"}, "data", "'data' must be an object"),
    ({"name": "ok", "data": {"when": object()}}, "data", "not JSON-serializable"),
    ({"name": "ok", "data": {}, "ts": "1700000000000"}, "ts", "integer number of milliseconds"),
    ({"name": "ok", "data": {}, "ts": 1.5}, "ts", "integer number of milliseconds"),
    ({"name": "ok", "data": {}, "ts": True}, "ts", "integer number of milliseconds"),
    ({"name": "ok", "data": {}, "ts": -1}, "ts", "must not be negative"),
    ({"name": "ok", "data": {}, "id": 42}, "id", "'id' must be a string"),
    ({"name": "ok", "data": {}, "user": "bob"}, "user", "'user' must be an object"),
    ("not an event", "event", "must be an object"),
])
def test_invalid_event_is_refused_with_an_error_naming_the_field(event, field, fragment):
    with pytest.raises(EventValidationError, match=fragment) as info:
        validate_event(event)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field


def test_name_of_exactly_256_characters_is_accepted():
    assert validate_event({"name": "n" * 256}).name == "n" * 256


def test_missing_data_defaults_to_an_empty_object_and_integral_float_ts_is_accepted():
    ev = validate_event({"name": "ok", "ts": 1_700_000_000_000.0})
    assert ev.data == {} and ev.ts == 1_700_000_000_000 and isinstance(ev.ts, int)


def test_event_over_512_kib_is_refused_as_too_large():
    big = {"name": "ok", "data": {"blob": "x" * MAX_EVENT_BYTES}}
    with pytest.raises(EventTooLargeError, match="512 KiB"):
        validate_event(big)
    just_under = {"name": "ok", "data": {"blob": "x" * (MAX_EVENT_BYTES - 100)}}
    validate_event(just_under)


def test_batch_error_names_the_index_of_the_bad_event(jobs):
    batch = [{"name": "order.created", "data": {}}] * 3 + [{"name": "order.created", "data": 7}]
    with pytest.raises(EventValidationError) as info:
        jobs.send(batch)
    assert info.value.index == 3 and info.value.field == "data"
    assert "event 3 in the batch" in str(info.value)
    assert info.value.to_dict() == {"error": str(info.value), "field": "data", "index": 3}


def test_a_bad_event_in_a_batch_stores_nothing(jobs):
    batch = [{"name": "order.created", "data": {"n": 1}, "id": "keep-me"},
             {"name": "order.created", "data": {"n": 2}},
             {"name": "tengo/sneaky", "data": {}}]
    with pytest.raises(EventValidationError, match="reserved"):
        jobs.send(batch)
    assert EventRow.select().count() == 0
    assert Run.select().count() == 0
    # the dedupe key of the refused batch was not consumed either
    ids = jobs.send(batch[:1])
    assert Run.select().count() == 1 and EventRow.get_by_id(ids[0]).external_id == "keep-me"


def test_batch_over_5000_events_is_refused(jobs):
    with pytest.raises(EventTooLargeError, match="5000"):
        jobs.send([{"name": "order.created"}] * (MAX_BATCH_EVENTS + 1))
    assert EventRow.select().count() == 0


def test_payload_that_is_neither_event_nor_list_is_refused(jobs):
    with pytest.raises(EventValidationError, match="list of events"):
        jobs.send("order.created")


def test_internal_senders_may_use_reserved_names(tester):
    ids = tester.runtime.intake.send({"name": "inngest/function.failed", "data": {}},
                                     internal=True)
    assert EventRow.get_by_id(ids[0]).name == "inngest/function.failed"


def test_repeated_event_id_returns_the_original_id_and_starts_nothing(jobs, tester):
    first = jobs.send({"name": "order.created", "data": {"n": 1}, "id": "order-1"})
    tester.clock.advance(60_000)
    again = jobs.send({"name": "order.created", "data": {"n": 999}, "id": "order-1"})
    assert again == first
    assert EventRow.select().count() == 1
    assert Run.select().count() == 1
    runs = tester.run_until_idle()
    assert [tester.output(r) for r in runs] == [{"n": 1}]


def test_repeated_event_id_inside_one_batch_is_stored_once(jobs):
    ids = jobs.send([{"name": "order.created", "data": {"n": 1}, "id": "dup"},
                     {"name": "order.created", "data": {"n": 2}, "id": "dup"},
                     {"name": "order.created", "data": {"n": 3}}])
    assert ids[0] == ids[1] != ids[2]
    assert Run.select().count() == 2


def test_event_id_starts_runs_again_after_24_hours(jobs, tester):
    first = jobs.send({"name": "order.created", "data": {"n": 1}, "id": "order-1"})
    tester.clock.advance(DEDUPE_WINDOW_MS - 1)
    assert jobs.send({"name": "order.created", "data": {"n": 2}, "id": "order-1"}) == first
    tester.clock.advance(1)
    later = jobs.send({"name": "order.created", "data": {"n": 3}, "id": "order-1"})
    assert later != first
    assert Run.select().count() == 2
    assert sorted(tester.output(r)["n"] for r in tester.run_until_idle()) == [1, 3]


def test_future_ts_delays_the_run_until_that_time(jobs, tester):
    now = tester.clock.now()
    jobs.send({"name": "order.created", "data": {"n": 1}, "ts": now + 3_600_000})
    runs = tester.run_until_idle(advance_time=False)
    assert runs[0].status == RunStatus.QUEUED
    runs = tester.run_until_idle()
    assert runs[0].status == RunStatus.COMPLETED
    assert runs[0].started_at >= now + 3_600_000
