"""JobsTester: ``send(..., step_stubs=...)`` returns a stubbed step's value without running
it; ``run_until_idle(stop_at_waits=True)`` stops before a pending wait times out."""

from __future__ import annotations

import json

from tengo_jobs import RunStatus
from tengo_jobs.store.schema import StepStatus

CHARGES: list = []


def charge_card(amount):
    CHARGES.append(amount)
    return {"charged": amount, "real": True}


def _declare(jobs, seen):
    @jobs.function("checkout", event="order.placed", retries=1)
    def checkout(ctx, step):
        receipt = step.run("charge-card", charge_card, ctx.event.data["amount"])
        seen.append(receipt)
        step.sleep("settle", "1m")  # replayed on the second execution
        return receipt

    return checkout


def test_a_stubbed_step_is_not_run_and_its_value_is_stored_and_replayed(jobs, tester):
    CHARGES.clear()
    seen: list = []
    _declare(jobs, seen)
    tester.send({"name": "order.placed", "data": {"amount": 10}},
                step_stubs={"charge-card": {"charged": 10, "real": False}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert CHARGES == []
    assert seen == [{"charged": 10, "real": False}] * 2
    [step] = [s for s in tester.steps(run.id) if s.key == "charge-card"]
    assert step.status == StepStatus.COMPLETED and json.loads(step.output) == {"charged": 10, "real": False}

    # a run started by another send is not stubbed
    tester.send({"name": "order.placed", "data": {"amount": 5}})
    tester.run_until_idle()
    assert CHARGES == [5]


def test_an_exception_as_a_stub_fails_the_step_as_its_function_would(jobs, tester):
    CHARGES.clear()
    _declare(jobs, [])
    tester.send({"name": "order.placed", "data": {"amount": 1}},
                step_stubs={"charge-card": RuntimeError("card declined")})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED and CHARGES == []
    assert json.loads(run.error)["message"] == "card declined"
    [step] = [s for s in tester.steps(run.id) if s.key == "charge-card"]
    assert step.attempts == 2  # retries=1: tried twice, as a real failure


def test_async_steps_are_stubbed_too(jobs, tester):
    async def fetch():
        raise AssertionError("must not run")

    @jobs.function("fetcher", event="fetch.go", retries=0)
    async def fetcher(ctx, step):
        return await step.run("fetch", fetch)

    tester.send({"name": "fetch.go"}, step_stubs={"fetch": [1, 2]})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and tester.output(run) == [1, 2]


def test_stop_at_waits_returns_before_a_wait_times_out(jobs, tester):
    @jobs.function("approval", event="doc.sent", retries=0)
    def approval(ctx, step):
        step.sleep("first", "1h")  # sleeps are still moved past
        ok = step.wait_for_event("approved", event="doc.approved", timeout="1d",
                                 match="data.doc")
        return ok is not None

    start = tester.clock.now()
    tester.send({"name": "doc.sent", "data": {"doc": "d1"}})
    [run] = tester.run_until_idle(stop_at_waits=True)
    assert run.status == RunStatus.WAITING
    assert tester.clock.now() - start == 3_600_000
    tester.send({"name": "doc.approved", "data": {"doc": "d1"}})
    [run] = tester.run_until_idle(stop_at_waits=True)
    assert run.status == RunStatus.COMPLETED and tester.output(run) is True

    # without the flag the clock moves past the timeout: the wait returns None
    tester.send({"name": "doc.sent", "data": {"doc": "d2"}})
    runs = tester.run_until_idle()
    assert [tester.output(r) for r in runs if r.id != run.id] == [False]
