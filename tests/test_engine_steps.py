"""Steps: memoization, repeated ids, durable sleeps under a fake clock, per-step retries."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from tengo_jobs import NonRetriableError, RetryAfterError, RunStatus, StepError
from tengo_jobs.store.schema import StepStatus, TimerRow as Timer, TimerKind


def _run_one(jobs, tester, event="go", data=None):
    jobs.send({"name": event, "data": data or {}})
    runs = tester.run_until_idle()
    assert len(runs) >= 1
    return runs[0]


def test_completed_steps_are_replayed_not_rerun_after_a_sleep(jobs, tester):
    calls = []

    @jobs.function("memo", event="go")
    def memo(ctx, step):
        a = step.run("a", lambda: calls.append("a") or {"a": 1})
        step.sleep("pause", "1s")
        b = step.run("b", lambda: calls.append("b") or [a["a"], 2])
        return {"a": a, "b": b}

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"a": {"a": 1}, "b": [1, 2]}
    assert calls == ["a", "b"]  # the handler ran twice; step "a" only once


def test_a_run_resumed_after_a_sleep_sees_the_same_event_id_and_user(jobs, tester):
    calls = []

    @jobs.function("resume-me", event="go")
    def resume_me(ctx, step):
        first = step.run("first", lambda: calls.append("first") or {"n": ctx.event.data["n"]})
        step.sleep("nap", "10m")
        second = step.run("second", lambda: calls.append("second") or first["n"] + 1)
        return {"first": first, "second": second, "user": ctx.event.user, "id": ctx.event.id}

    tester.send({"name": "go", "data": {"n": 41}, "id": "evt-1", "user": {"u": 1}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"first": {"n": 41}, "second": 42, "user": {"u": 1}, "id": "evt-1"}
    assert calls == ["first", "second"]  # the resume replayed "first" from its checkpoint
    assert [s.key for s in tester.steps(run.id)] == ["first", "nap", "second"]


def test_a_succeeded_step_is_not_run_again_when_a_later_step_is_retried(jobs, tester):
    calls = {"first": 0, "second": 0}

    def first():
        calls["first"] += 1
        return "ok"

    def second():
        calls["second"] += 1
        if calls["second"] <= 3:
            raise ConnectionError("gateway down")
        return "paid"

    @jobs.function("retry-later", event="go", retries=4)
    def fn(ctx, step):
        return [step.run("first", first), step.run("second", second)]

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED and tester.output(run) == ["ok", "paid"]
    assert calls == {"first": 1, "second": 4}
    steps = {s.key: s for s in tester.steps(run.id)}
    assert steps["first"].attempts == 1 and steps["second"].attempts == 4
    # the retried step's row was updated in place: one row, completed, with its output
    assert steps["second"].status == StepStatus.COMPLETED and steps["second"].output == '"paid"'


def test_a_loop_of_1000_steps_with_one_id_gets_1000_distinct_keys(jobs, tester):
    @jobs.function("loop", event="go")
    def loop(ctx, step):
        return sum(step.run("item", lambda i=i: i) for i in range(1_000))

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == sum(range(1_000))
    steps = tester.steps(run.id)
    keys = [s.key for s in steps]
    assert keys == ["item"] + [f"item:{i}" for i in range(1, 1_000)]
    assert len(set(keys)) == 1_000
    assert [s.position for s in steps] == list(range(1_000))  # stored in call order
    assert [s.output for s in steps[-2:]] == ["998", "999"]  # each step its own output


def test_a_45_second_sleep_completes_under_a_fake_clock_without_real_waiting(jobs, tester):
    import time

    @jobs.function("sleepy", event="go")
    def sleepy(ctx, step):
        step.sleep("welcome-gap", "45s")
        return "awake"

    t0_fake = tester.clock.now()
    jobs.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    timer = Timer.get()
    assert timer.kind == TimerKind.SLEEP and timer.due_at == t0_fake + 45_000
    started = time.monotonic()
    run = tester.run_until_idle()[0]
    assert time.monotonic() - started < 5
    assert run.status == RunStatus.COMPLETED and tester.output(run) == "awake"
    assert run.ended_at - t0_fake >= 45_000
    sleep_step = tester.steps(run.id)[0]
    assert sleep_step.status == StepStatus.COMPLETED and sleep_step.wake_at == t0_fake + 45_000


def test_sleep_accepts_a_timedelta(jobs, tester):
    @jobs.function("td", event="go")
    def td(ctx, step):
        step.sleep("gap", dt.timedelta(minutes=2))
        return "done"

    t0 = tester.clock.now()
    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED and run.ended_at >= t0 + 120_000


def test_a_sleeping_run_is_not_executed_before_its_timer_is_due(jobs, tester):
    calls = []

    @jobs.function("sleepy", event="go")
    def sleepy(ctx, step):
        step.sleep("gap", "10m")
        step.run("after", lambda: calls.append(1))

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle(advance_time=False)[0]
    assert run.status == RunStatus.SLEEPING
    tester.clock.advance(10 * 60_000 - 1)
    tester.run_until_idle(advance_time=False)
    assert calls == [] and tester.run(run.id).status == RunStatus.SLEEPING
    tester.clock.advance(1)
    assert tester.run_until_idle(advance_time=False)[0].status == RunStatus.COMPLETED
    assert calls == [1]


def test_sleep_until_wakes_at_the_given_aware_datetime(jobs, tester):
    now = tester.clock.now()
    due = dt.datetime.fromtimestamp((now + 3 * 86_400_000) / 1000, tz=dt.timezone.utc)

    @jobs.function("until", event="go")
    def until(ctx, step):
        step.sleep_until("due-date", due)
        return "reminded"

    jobs.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    assert Timer.get().due_at == now + 3 * 86_400_000
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.COMPLETED and run.ended_at == now + 3 * 86_400_000


def test_sleep_until_a_past_datetime_does_not_suspend(jobs, tester):
    @jobs.function("past", event="go")
    def past(ctx, step):
        step.sleep_until("long-ago", dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
        return "done"

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle(advance_time=False)[0]
    assert run.status == RunStatus.COMPLETED and Timer.select().count() == 0


@pytest.mark.parametrize("call, fragment", [
    (lambda step: step.sleep("s", "forever"), "not a duration"),
    (lambda step: step.sleep("s", -5), "negative"),
    (lambda step: step.sleep_until("s", dt.datetime(2030, 1, 1)), "naive datetime"),
    (lambda step: step.sleep_until("s", "tomorrow"), "not ISO 8601"),
    (lambda step: step.run("", lambda: 1), "non-empty string"),
])
def test_bad_step_arguments_fail_the_run_with_a_clear_error(jobs, tester, call, fragment):
    @jobs.function("bad", event="go", retries=0)
    def bad(ctx, step):
        call(step)

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.FAILED
    assert fragment in tester.error(run)["message"]


def test_except_exception_around_a_sleep_does_not_swallow_it(jobs, tester):
    swallowed = []

    @jobs.function("careless", event="go")
    def careless(ctx, step):
        try:
            step.sleep("gap", "45s")
        except Exception as exc:  # noqa: BLE001 - the point of the test
            swallowed.append(exc)
            return "swallowed"
        return "slept"

    jobs.send({"name": "go", "data": {}})
    assert tester.run_until_idle(advance_time=False)[0].status == RunStatus.SLEEPING
    run = tester.run_until_idle()[0]
    assert swallowed == [] and tester.output(run) == "slept"


def test_except_exception_around_a_retrying_step_does_not_swallow_the_retry(jobs, tester):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("slow")
        return "ok"

    @jobs.function("careless-retry", event="go")
    def fn(ctx, step):
        try:
            return step.run("flaky", flaky)
        except Exception:  # noqa: BLE001 - must only see StepError, never the retry interrupt
            return "swallowed"

    run = _run_one(jobs, tester)
    assert tester.output(run) == "ok" and len(calls) == 2


def test_retries_default_to_4_so_a_step_runs_5_times_before_failing(jobs, tester):
    calls = []

    @jobs.function("always-fails", event="go")
    def fn(ctx, step):
        step.run("doomed", lambda: calls.append(1) or 1 / 0)

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.FAILED and len(calls) == 5
    err = tester.error(run)
    assert err == {"name": "ZeroDivisionError", "message": "division by zero", "step": "doomed"}
    step = tester.steps(run.id)[0]
    assert step.status == StepStatus.FAILED and step.attempts == 5


@pytest.mark.parametrize("retries, expected_calls", [(0, 1), (2, 3), (20, 21)])
def test_retries_option_bounds_the_attempts_of_each_step(jobs, tester, retries, expected_calls):
    calls = []

    @jobs.function("bounded", event="go", retries=retries)
    def fn(ctx, step):
        step.run("doomed", lambda: calls.append(1) or 1 / 0)

    assert _run_one(jobs, tester).status == RunStatus.FAILED
    assert len(calls) == expected_calls


def test_retries_are_counted_per_step(jobs, tester):
    counts = {"a": 0, "b": 0}

    def flaky(name):
        counts[name] += 1
        if counts[name] <= 2:
            raise RuntimeError(f"{name} flaked")
        return name

    @jobs.function("per-step", event="go", retries=2)
    def fn(ctx, step):
        return [step.run("a", flaky, "a"), step.run("b", flaky, "b")]

    run = _run_one(jobs, tester)
    # 2 failures each would exhaust a shared budget of 2 retries; per step it is fine
    assert run.status == RunStatus.COMPLETED and tester.output(run) == ["a", "b"]
    assert counts == {"a": 3, "b": 3}


def test_non_retriable_error_fails_the_step_at_once(jobs, tester):
    calls = []

    def reject():
        calls.append(1)
        raise NonRetriableError("card declined")

    @jobs.function("no-retry", event="go", retries=10)
    def fn(ctx, step):
        step.run("charge", reject)

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.FAILED and len(calls) == 1
    assert "card declined" in tester.error(run)["message"]
    assert Timer.select().count() == 0


@pytest.mark.parametrize("delay, expected_ms", [
    (30, 30_000), ("2m", 120_000), (dt.timedelta(hours=1), 3_600_000)])
def test_retry_after_error_sets_the_next_wake_time(jobs, tester, delay, expected_ms):
    calls = []

    def rate_limited():
        calls.append(1)
        if len(calls) == 1:
            raise RetryAfterError("429 from gateway", delay=delay)
        return "ok"

    @jobs.function("retry-after", event="go")
    def fn(ctx, step):
        return step.run("call", rate_limited)

    t0 = tester.clock.now()
    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle(advance_time=False)[0]
    assert run.status == RunStatus.SLEEPING
    timer = Timer.get()
    assert timer.kind == TimerKind.RETRY and timer.due_at == t0 + expected_ms
    step = tester.steps(run.id)[0]
    assert step.status == StepStatus.RETRYING and "429" in step.error
    tester.clock.advance(expected_ms - 1)
    tester.run_until_idle(advance_time=False)
    assert len(calls) == 1
    tester.clock.advance(1)
    assert tester.run_until_idle(advance_time=False)[0].status == RunStatus.COMPLETED
    assert len(calls) == 2


def test_retry_after_an_aware_datetime_waits_until_then(jobs, tester):
    t0 = tester.clock.now()
    when = dt.datetime.fromtimestamp((t0 + 90_000) / 1000, tz=dt.timezone.utc)

    def once():
        raise RetryAfterError("later", delay=when)

    @jobs.function("retry-at", event="go", retries=1)
    def fn(ctx, step):
        step.run("call", once)

    jobs.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    assert Timer.get().due_at == t0 + 90_000


def test_backoff_grows_exponentially_with_jitter(backend):
    from tengo_jobs.core.retry import backoff_ms

    import random

    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = min(60_000, 1_000 * 2 ** (attempt - 1))
        delays = [backoff_ms(attempt, base_ms=1_000, max_ms=60_000, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_exhausted_retries_raise_a_catchable_step_error_in_the_handler(jobs, tester):
    @jobs.function("fallback", event="go", retries=1)
    def fn(ctx, step):
        try:
            step.run("primary", lambda: 1 / 0)
        except StepError as exc:
            fallback = step.run("secondary", lambda: "fallback used")
            return {"step": exc.step_id, "attempts": exc.attempts, "name": exc.error_name,
                    "result": fallback}

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"step": "primary", "attempts": 2,
                                  "name": "ZeroDivisionError", "result": "fallback used"}


def test_a_failed_step_replays_as_the_same_step_error_on_later_executions(jobs, tester):
    calls = []

    @jobs.function("caught-then-sleep", event="go", retries=0)
    def fn(ctx, step):
        try:
            step.run("broken", lambda: calls.append(1) or 1 / 0)
        except StepError:
            pass
        step.sleep("gap", "1s")  # forces a replay of the failed step
        return "done"

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED and len(calls) == 1


def test_ctx_carries_the_event_run_id_and_function_id(jobs, tester):
    @jobs.function("ctx", event="go")
    def fn(ctx, step):
        return {"data": ctx.event.data, "name": ctx.event.name, "run_id": ctx.run_id,
                "function_id": ctx.function_id, "events": len(ctx.events)}

    run = _run_one(jobs, tester, data={"userId": "u1"})
    assert tester.output(run) == {"data": {"userId": "u1"}, "name": "go", "run_id": run.id,
                                  "function_id": "ctx", "events": 1}


def test_ctx_logger_is_silent_while_stored_steps_replay(jobs, tester, caplog):
    @jobs.function("chatty", event="go")
    def fn(ctx, step):
        ctx.logger.info("before-a")
        step.run("a", lambda: 1)
        ctx.logger.info("after-a")
        step.sleep("gap", "1s")
        ctx.logger.info("after-gap")
        return "done"

    with caplog.at_level(logging.INFO, logger="tengo_jobs.run"):
        run = _run_one(jobs, tester)
    assert run.status == RunStatus.COMPLETED
    lines = [r.getMessage() for r in caplog.records if r.name == "tengo_jobs.run"]
    assert lines == ["before-a", "after-a", "after-gap"]


def test_changing_a_step_kind_between_deploys_is_reported_as_non_determinism(jobs, tester):
    version = {"v": 1}

    @jobs.function("evolving", event="go", retries=0)
    def fn(ctx, step):
        if version["v"] == 1:
            step.sleep("x", "1s")
        else:
            step.run("x", lambda: 1)

    jobs.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    version["v"] = 2
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED
    assert "deterministic" in tester.error(run)["message"]


def test_nested_steps_are_refused(jobs, tester):
    @jobs.function("nested", event="go", retries=0)
    def fn(ctx, step):
        step.run("outer", lambda: step.run("inner", lambda: 1))

    run = _run_one(jobs, tester)
    assert run.status == RunStatus.FAILED and "nested" in tester.error(run)["message"]
