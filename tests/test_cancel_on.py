"""cancel_on and timeouts: runs cancelled by an event or a deadline, on both databases."""

from __future__ import annotations

import pytest

from tengo_jobs import ConfigurationError, RunStatus
from tengo_jobs.store.schema import TimerRow, WaitRow

MINUTE = 60_000


def _trip_function(jobs, calls, **cancel):
    """A run per booked trip: a step, a 1 h sleep, a wait, a last step."""
    entry = {"event": "trip.cancelled", **cancel}

    @jobs.function("remind-driver", event="trip.booked", cancel_on=[entry])
    def remind_driver(ctx, step):
        step.run("notify", lambda: calls.append(("notify", ctx.event.data["tripId"])))
        step.sleep("until-departure", "1h")
        step.wait_for_event("wait-checkin", event="trip.checkin", timeout="1h",
                            if_exp="async.data.tripId == event.data.tripId")
        step.run("thank", lambda: calls.append(("thank", ctx.event.data["tripId"])))
        return "done"

    return remind_driver


def _only(tester, function_id="remind-driver"):
    return [r for r in tester.run_until_idle(advance_time=False) if r.function_id == function_id]


@pytest.mark.parametrize("cancel", [
    {"if_exp": "async.data.tripId == event.data.tripId"},
    {"match": "data.tripId"},
    {"if_exp": "event.data.tripId == async.data.tripId && async.data.reason != 'test'"},
], ids=["if_exp", "match", "if_exp-not-exact"])
def test_a_matching_event_cancels_a_sleeping_run_and_no_other(jobs, tester, cancel):
    calls = []
    _trip_function(jobs, calls, **cancel)
    tester.send([{"name": "trip.booked", "data": {"tripId": "t1"}},
                 {"name": "trip.booked", "data": {"tripId": "t2"}}])
    runs = _only(tester)
    assert {r.status for r in runs} == {RunStatus.SLEEPING}
    # the matcher is indexed like a wait: event name, data path, the run's key
    keys = {(w.step_key, w.kind, w.match_path, w.match_key) for w in WaitRow.select()}
    assert ("cancel:0", "cancel", "tripId", "string:t1") in keys

    ids = tester.send({"name": "trip.cancelled", "data": {"tripId": "t1", "reason": "rain"}})
    by_trip = {tester.run(r.id).id: r for r in runs}
    cancelled = [tester.run(r) for r in by_trip if tester.run(r).status == RunStatus.CANCELLED]
    assert len(cancelled) == 1  # at once: before any worker ran
    [run] = cancelled
    assert tester.error(run) == {"name": "RunCancelled",
                                 "message": f"cancelled by event trip.cancelled {ids[0]}"}
    assert not WaitRow.select().where(WaitRow.run_id == run.id).exists()
    assert not TimerRow.select().where(TimerRow.run_id == run.id).exists()

    final = {r.id: r for r in tester.run_until_idle()}
    assert final[run.id].status == RunStatus.CANCELLED
    other = [r for r in final.values() if r.function_id == "remind-driver" and r.id != run.id]
    assert [r.status for r in other] == [RunStatus.COMPLETED]
    assert calls.count(("thank", "t2")) == 1 and ("thank", "t1") not in calls
    # the finished run left no matcher behind
    assert WaitRow.select().count() == 0


def test_a_waiting_run_is_cancelled_and_a_later_wait_event_changes_nothing(jobs, tester):
    calls = []
    _trip_function(jobs, calls, match="data.tripId")
    tester.send({"name": "trip.booked", "data": {"tripId": "t3"}})
    tester.run_until_idle(advance_time=False)
    tester.clock.advance(61 * MINUTE)
    tester.runtime.timekeeper.fire_timers()
    [run] = _only(tester)
    assert run.status == RunStatus.WAITING
    tester.send({"name": "trip.cancelled", "data": {"tripId": "t3"}})
    assert tester.run(run.id).status == RunStatus.CANCELLED
    tester.send({"name": "trip.checkin", "data": {"tripId": "t3"}})
    tester.run_until_idle()
    run = tester.run(run.id)
    assert run.status == RunStatus.CANCELLED and tester.error(run)["name"] == "RunCancelled"
    assert [s.key for s in tester.steps(run.id)] == ["notify", "until-departure", "wait-checkin"]


def test_an_event_that_does_not_match_or_comes_after_the_matcher_timeout_cancels_nothing(
        jobs, tester):
    calls = []
    _trip_function(jobs, calls, match="data.tripId", timeout="30m")
    tester.send({"name": "trip.booked", "data": {"tripId": "t4"}})
    [run] = _only(tester)
    tester.send({"name": "trip.cancelled", "data": {"tripId": "other"}})
    tester.send({"name": "trip.cancelled", "data": {}})
    tester.send({"name": "trip.other", "data": {"tripId": "t4"}})
    assert tester.run(run.id).status == RunStatus.SLEEPING
    tester.clock.advance(31 * MINUTE)
    tester.send({"name": "trip.cancelled", "data": {"tripId": "t4"}})
    assert tester.run(run.id).status == RunStatus.SLEEPING
    tester.send({"name": "trip.checkin", "data": {"tripId": "t4"}})
    tester.run_until_idle()
    assert tester.run(run.id).status == RunStatus.COMPLETED
    assert calls == [("notify", "t4"), ("thank", "t4")]


def test_a_run_triggered_by_its_cancel_event_is_not_cancelled_by_its_own_trigger(jobs, tester):
    @jobs.function("latest-price", event="price.changed",
                   cancel_on=[{"event": "price.changed", "match": "data.sku"}])
    def latest_price(ctx, step):
        step.sleep("settle", "5m")
        return ctx.event.data["price"]

    tester.send({"name": "price.changed", "data": {"sku": "a", "price": 1}})
    [first] = _only(tester, "latest-price")
    assert first.status == RunStatus.SLEEPING
    tester.send({"name": "price.changed", "data": {"sku": "a", "price": 2}})
    runs = {r.id: r for r in tester.run_until_idle()}
    assert runs[first.id].status == RunStatus.CANCELLED
    [second] = [r for r in runs.values() if r.id != first.id]
    assert second.status == RunStatus.COMPLETED and tester.output(second) == 2


def test_a_run_executing_a_step_finishes_it_keeps_its_checkpoint_then_stops(jobs, tester):
    calls = []

    @jobs.function("pay-driver", event="trip.finished",
                   cancel_on=[{"event": "trip.cancelled", "match": "data.tripId"}])
    def pay_driver(ctx, step):
        def charge():
            calls.append("charge")
            # the cancellation arrives while this step executes
            jobs.send({"name": "trip.cancelled", "data": {"tripId": ctx.event.data["tripId"]}})
            assert tester.run(ctx.run_id).status == RunStatus.RUNNING
            return {"charged": 100}

        step.run("charge", charge)
        step.run("payout", lambda: calls.append("payout"))
        return "paid"

    tester.send({"name": "trip.finished", "data": {"tripId": "t5"}})
    [run] = _only(tester, "pay-driver")
    assert calls == ["charge"]
    assert run.status == RunStatus.CANCELLED
    assert tester.error(run)["message"].startswith("cancelled by event trip.cancelled ")
    steps = tester.steps(run.id)
    assert [(s.key, s.output) for s in steps] == [("charge", '{"charged":100}')]


def test_a_cancellation_while_executing_the_step_before_a_sleep_ends_the_run_not_parks_it(
        jobs, tester):
    @jobs.function("nap", event="nap.start",
                   cancel_on=[{"event": "nap.stop", "if_exp": "async.data.id == event.data.id"}])
    def nap(ctx, step):
        def work():
            jobs.send({"name": "nap.stop", "data": {"id": ctx.event.data["id"]}})
            return 1

        step.run("work", work)
        step.sleep("rest", "1h")
        return "rested"

    tester.send({"name": "nap.start", "data": {"id": 7}})
    [run] = _only(tester, "nap")
    assert run.status == RunStatus.CANCELLED
    assert [(s.key, s.output) for s in tester.steps(run.id)] == [("work", "1")]
    assert not TimerRow.select().where(TimerRow.run_id == run.id).exists()


def test_a_run_not_started_within_timeouts_start_is_cancelled_with_the_reason(jobs, tester):
    @jobs.function("quick", event="quick.go", timeouts={"start": "10m"})
    def quick(ctx, step):
        return "ran"

    tester.send({"name": "quick.go", "data": {}})
    tester.clock.advance(11 * MINUTE)
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.CANCELLED
    assert tester.error(run) == {"name": "RunCancelled", "message": "did not start within 10m"}
    assert run.started_at is None

    # one that starts in time completes and leaves no deadline behind
    tester.send({"name": "quick.go", "data": {}})
    runs = tester.run_until_idle(advance_time=False)
    assert sorted(r.status.value for r in runs) == ["cancelled", "completed"]
    assert TimerRow.select().count() == 0


def test_a_run_not_finished_within_timeouts_finish_is_cancelled_and_keeps_its_steps(jobs, tester):
    @jobs.function("slow", event="slow.go", timeouts={"start": "1h", "finish": "10m"})
    def slow(ctx, step):
        step.run("first", lambda: "a")
        step.sleep("long", "30m")
        step.run("second", lambda: "b")
        return "finished"

    start = tester.clock.now()
    tester.send({"name": "slow.go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.CANCELLED
    assert tester.error(run) == {"name": "RunCancelled", "message": "did not finish within 10m"}
    assert run.ended_at == start + 10 * MINUTE
    assert [s.key for s in tester.steps(run.id)] == ["first", "long"]
    assert TimerRow.select().count() == 0 and WaitRow.select().count() == 0


def test_a_finish_deadline_passing_during_a_step_lets_that_step_finish(jobs, tester, backend):
    calls = []

    @jobs.function("long-step", event="long.go", timeouts={"finish": "5s"})
    def long_step(ctx, step):
        def crunch():
            # the step takes longer than the run may (its worker's lease is still live)
            tester.clock.advance(6_000)
            backend.timekeeper.fire_timers()
            calls.append("crunched")
            return 42

        step.run("crunch", crunch)
        step.run("publish", lambda: calls.append("published"))
        return "ok"

    tester.send({"name": "long.go", "data": {}})
    [run] = tester.run_until_idle(advance_time=False)
    assert calls == ["crunched"]
    assert run.status == RunStatus.CANCELLED
    assert tester.error(run)["message"] == "did not finish within 5s"
    assert [(s.key, s.output) for s in tester.steps(run.id)] == [("crunch", "42")]


def test_a_run_that_finishes_in_time_is_left_alone(jobs, tester):
    @jobs.function("fine", event="fine.go", timeouts={"finish": "1h"},
                   cancel_on=[{"event": "fine.stop", "match": "data.id"}])
    def fine(ctx, step):
        step.sleep("a-bit", "10m")
        return "ok"

    tester.send({"name": "fine.go", "data": {"id": 1}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert TimerRow.select().count() == 0 and WaitRow.select().count() == 0
    tester.send({"name": "fine.stop", "data": {"id": 1}})
    assert tester.run(run.id).status == RunStatus.COMPLETED


@pytest.mark.parametrize("options, words", [
    ({"cancel_on": [{"event": "x", "when": "y"}]}, ["'f'", "cancel_on[0]", "unknown field 'when'"]),
    ({"cancel_on": [{"if_exp": "true"}]}, ["'f'", "cancel_on[0]", "'event'"]),
    ({"cancel_on": [{"event": "x", "if_exp": "async.data.id =="}]},
     ["'f'", "cancel_on[0]", "'if_exp'", "^"]),
    ({"cancel_on": [{"event": "x", "match": "data.id", "if_exp": "true"}]},
     ["cancel_on[0]", "not both"]),
    ({"cancel_on": [{"event": "x", "match": "id; drop"}]}, ["cancel_on[0]", "'match'"]),
    ({"cancel_on": [{"event": "x", "timeout": "400d"}]}, ["cancel_on[0]", "'timeout'", "year"]),
    ({"cancel_on": "x"}, ["'f'", "'cancel_on'"]),
    ({"timeouts": {"start": "2y"}}, ["'timeouts'", "'start'"]),
    ({"timeouts": {"finish": "367d"}}, ["'timeouts'", "'finish'", "year"]),
    ({"timeouts": {"begin": "1m"}}, ["'timeouts'", "unknown field 'begin'"]),
    ({"timeouts": {"start": "soon"}}, ["'timeouts'", "'start'", "not a duration"]),
    ({"timeouts": "1h"}, ["'f'", "'timeouts'"]),
])
def test_bad_options_are_refused_naming_the_function_option_and_field(jobs, options, words):
    with pytest.raises(ConfigurationError) as info:
        jobs.function("f", event="e", **options)(lambda ctx, step: None)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("rule", [
    {"idempotency": "event.data.tripId"},
    {"rate_limit": {"limit": 5, "period": "1h"}},
    {"debounce": {"period": "1s"}},
], ids=["idempotency", "rate_limit", "debounce"])
def test_runs_started_by_an_admission_rule_are_cancelled_by_their_cancel_on_event(
        jobs, tester, rule):
    # A run that an admission rule starts is a start like any other: its cancel_on
    # matchers are registered with it.
    calls = []

    @jobs.function("remind-ruled", event="trip.booked.ruled",
                   cancel_on=[{"event": "trip.cancelled.ruled",
                               "if_exp": "async.data.tripId == event.data.tripId"}], **rule)
    def remind_ruled(ctx, step):
        step.sleep("until-departure", "1h")
        step.run("thank", lambda: calls.append(ctx.event.data["tripId"]))

    tester.send({"name": "trip.booked.ruled", "data": {"tripId": "t9"}})
    if "debounce" in rule:
        tester.clock.advance(2_000)  # the debounced run starts 1 s after the last event
    runs = tester.run_until_idle(advance_time=False)
    [run] = [r for r in runs if r.function_id == "remind-ruled"]
    assert run.status == RunStatus.SLEEPING
    tester.send({"name": "trip.cancelled.ruled", "data": {"tripId": "t9"}})
    assert tester.run(run.id).status == RunStatus.CANCELLED
    tester.run_until_idle()
    assert calls == []
