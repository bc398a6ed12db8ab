"""``wait_for_event(match=...)`` (Inngest's shorthand, indexed) and the limits: sleeps, waits
and invoke timeouts up to one year, the step output limit named in its error, and no cap on
the number of steps in a run."""

from __future__ import annotations

import datetime as dt

import pytest

from tengo_jobs import RunStatus
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step, WaitRow as Wait


def test_match_waits_for_the_event_with_the_same_field_and_is_indexed(jobs, tester):
    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        paid = step.wait_for_event("wait-payment", event="payment.completed", timeout="1h",
                                   match="data.paymentId")
        return {"amount": paid["data"]["amount"] if paid else None}

    tester.send({"name": "order.created", "data": {"paymentId": "p1"}})
    tester.run_until_idle(advance_time=False)
    [wait] = Wait.select()
    assert wait.expression == "event.data.paymentId == async.data.paymentId"
    assert (wait.match_path, wait.match_key, wait.exact) == ("paymentId", "string:p1", True)

    tester.send({"name": "payment.completed", "data": {"paymentId": "p2", "amount": 5}})
    tester.run_until_idle(advance_time=False)
    assert Run.get(Run.function_id == "await-payment").status == RunStatus.WAITING
    tester.send({"name": "payment.completed", "data": {"paymentId": "p1", "amount": 10}})
    tester.run_until_idle(advance_time=False)
    run = Run.get(Run.function_id == "await-payment")
    assert run.status == RunStatus.COMPLETED and run.output == '{"amount":10}'


@pytest.mark.parametrize("kwargs, message", [
    ({"match": "data.id", "if_exp": "true"}, "give match or if_exp, not both"),
    ({"match": "data.id == 1"}, "match must be a dotted field path"),
    ({"match": ""}, "match must be a dotted field path"),
])
def test_a_bad_match_fails_the_run_naming_the_step(jobs, tester, kwargs, message):
    @jobs.function("bad-match", event="go", retries=0)
    def bad_match(ctx, step):
        step.wait_for_event("w", event="x", timeout="1h", **kwargs)

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    assert "step.wait_for_event('w')" in run.error and message in run.error
    assert Wait.select().count() == 0


@pytest.mark.parametrize("call, name", [
    (lambda step: step.sleep("nap", "366d"), "step.sleep('nap')"),
    (lambda step: step.sleep_until("nap", dt.datetime(2027, 1, 2, tzinfo=dt.timezone.utc)),
     "step.sleep_until('nap')"),
    (lambda step: step.wait_for_event("nap", event="x", timeout="400d"),
     "step.wait_for_event('nap')"),
    (lambda step: step.invoke("nap", function="child", timeout="366d"), "step.invoke('nap')"),
])
def test_sleeps_and_waits_past_one_year_are_refused_at_the_call(jobs, tester, call, name):
    jobs.function("child", event="child.go")(lambda ctx, step: 1)

    @jobs.function("too-long", event="go", retries=0)
    def too_long(ctx, step):
        call(step)

    tester.send({"name": "go"})
    [run] = [r for r in tester.run_until_idle() if r.function_id == "too-long"]
    assert run.status == RunStatus.FAILED
    assert name in run.error and "longer than the limit of one year (365 days)" in run.error
    assert Step.select().where(Step.run_id == run.id).count() == 0  # nothing was parked


def test_one_year_exactly_is_accepted(jobs, tester):
    @jobs.function("a-year", event="go")
    def a_year(ctx, step):
        step.sleep("nap", "365d")
        step.wait_for_event("w", event="x", timeout="365d")
        return "done"

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED


@pytest.mark.runtime_settings(output_limit=1_000)
def test_the_output_limit_is_configurable_and_named_in_the_error(jobs, tester):
    @jobs.function("big", event="go", retries=0)
    def big(ctx, step):
        return step.run("blob", lambda: "x" * 2_000)

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    assert "the limit is 1000 bytes (TENGO_MAX_OUTPUT_BYTES)" in run.error


def test_there_is_no_cap_on_steps_per_run(jobs, tester):
    @jobs.function("many", event="go")
    def many(ctx, step):
        return sum(step.run("s", lambda i=i: i) for i in range(1_500))

    tester.send({"name": "go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and run.output == str(sum(range(1_500)))
    assert Step.select().where(Step.run_id == run.id).count() == 1_500
