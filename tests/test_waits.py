"""step.wait_for_event and step.invoke: runs that wait hold no worker and resume on their trigger."""

from __future__ import annotations

import json

import pytest

from tengo_jobs import RunStatus, StepError
from tengo_jobs.core.expressions import MatchPlan, match_plan
from tengo_jobs.store import waits as store_waits
from tengo_jobs.store.schema import EventRow, StepStatus, WaitKeyRow as WaitKey, WaitRow as Wait


def _declare_payment_waiter(jobs, timeout="1h"):
    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        paid = step.wait_for_event("wait-payment", event="payment.completed", timeout=timeout,
                                   if_exp="event.data.orderId == async.data.orderId")
        return {"paid": paid["data"] if paid else None}

    return await_payment


def test_wait_for_event_resumes_only_on_a_matching_event(jobs, tester):
    _declare_payment_waiter(jobs)
    tester.send({"name": "order.created", "data": {"orderId": "o1"}})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.WAITING
    assert Wait.select().count() == 1

    tester.send({"name": "payment.completed", "data": {"orderId": "other"}})
    [run] = [r for r in tester.run_until_idle(advance_time=False)
             if r.function_id == "await-payment"]
    assert run.status == RunStatus.WAITING

    tester.send({"name": "payment.completed", "data": {"orderId": "o1", "amount": 10}})
    [run] = [r for r in tester.run_until_idle(advance_time=False)
             if r.function_id == "await-payment"]
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"paid": {"orderId": "o1", "amount": 10}}
    assert Wait.select().count() == 0


def test_wait_for_event_returns_none_when_the_timeout_passes_first(jobs, tester):
    _declare_payment_waiter(jobs, timeout="30m")
    start = tester.clock.now()
    tester.send({"name": "order.created", "data": {"orderId": "o2"}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"paid": None}
    assert tester.clock.now() - start == 30 * 60_000
    [step] = tester.steps(run.id)
    assert step.key == "wait-payment" and step.output == "null"
    # a late event finds no waiter and changes nothing
    tester.send({"name": "payment.completed", "data": {"orderId": "o2"}})
    assert tester.run(run.id).output == run.output


def test_wait_for_event_with_an_invalid_condition_fails_the_run_naming_the_expression(jobs, tester):
    @jobs.function("bad-wait", event="go")
    def bad_wait(ctx, step):
        step.wait_for_event("w", event="x", timeout="1m", if_exp="event.data.id ==")

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    error = tester.error(run)
    assert error["name"] == "ExpressionError" and "event.data.id ==" in error["message"]


def test_invoke_returns_the_child_output_and_raises_its_failure(jobs, tester):
    @jobs.function("double", event="double.requested")
    def double(ctx, step):
        value = step.run("compute", lambda: ctx.event.data["x"] * 2)
        if value > 100:
            raise ValueError("too big")
        return {"value": value}

    @jobs.function("caller", event="call")
    def caller(ctx, step):
        ok = step.invoke("small", function=double, data={"x": 21})
        try:
            step.invoke("large", function="double", data={"x": 99})
        except Exception as exc:  # StepError
            return {"ok": ok, "failed": type(exc).__name__}
        return {"ok": ok, "failed": None}

    tester.send({"name": "call", "data": {}})
    runs = tester.run_until_idle()
    by_function = {}
    for r in runs:
        by_function.setdefault(r.function_id, []).append(r)
    [parent] = by_function["caller"]
    assert parent.status == RunStatus.COMPLETED
    assert tester.output(parent) == {"ok": {"value": 42}, "failed": "StepError"}
    children = by_function["double"]
    assert sorted(c.status.value for c in children) == ["completed", "failed"]
    assert all(c.parent_run_id == parent.id for c in children)


def test_cancelling_a_waiting_run_removes_its_wait(jobs, tester, backend):
    _declare_payment_waiter(jobs)
    tester.send({"name": "order.created", "data": {"orderId": "o3"}})
    [run] = tester.run_until_idle(advance_time=False)
    assert backend.control.cancel(run.id)["status"] == "cancelled"
    assert Wait.select().count() == 0
    tester.send({"name": "payment.completed", "data": {"orderId": "o3"}})
    tester.run_until_idle()
    assert tester.run(run.id).status == RunStatus.CANCELLED


def test_cancelling_an_invoked_child_resumes_its_parent_with_a_run_cancelled_error(jobs, tester,
                                                                                  backend):
    @jobs.function("slow-child", event="child.requested")
    def slow_child(ctx, step):
        step.sleep("forever-ish", "30d")
        return "too late"

    @jobs.function("parent", event="go")
    def parent(ctx, step):
        try:
            return step.invoke("child", function=slow_child, data={})
        except StepError as exc:
            return {"name": exc.error_name, "message": str(exc)}

    tester.send({"name": "go", "data": {}})
    runs = {r.function_id: r for r in tester.run_until_idle(advance_time=False)}
    assert runs["parent"].status == RunStatus.WAITING
    assert runs["slow-child"].status == RunStatus.SLEEPING
    child_id = runs["slow-child"].id

    assert backend.control.cancel(child_id)["status"] == "cancelled"
    runs = {r.function_id: r for r in tester.run_until_idle(advance_time=False)}
    assert runs["slow-child"].status == RunStatus.CANCELLED
    parent_run = runs["parent"]
    assert parent_run.status == RunStatus.COMPLETED  # resumed now, not at the invoke's timeout
    out = tester.output(parent_run)
    assert out["name"] == "RunCancelled" and f"run {child_id} was cancelled" in out["message"]
    step = {s.key: s for s in tester.steps(parent_run.id)}["child"]
    assert step.status == StepStatus.FAILED



@pytest.fixture
def evaluations(monkeypatch):
    """The wait conditions the intake evaluates one by one (the index decides the others)."""
    seen = []
    original = store_waits.matches

    def counting(expression, event, incoming):
        seen.append(event["data"])
        return original(expression, event, incoming)

    monkeypatch.setattr(store_waits, "matches", counting)
    return seen


def _waiters(jobs, tester, condition, keys):
    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        paid = step.wait_for_event("wait-payment", event="payment.completed", timeout="1h",
                                   if_exp=condition)
        return paid["data"] if paid else None

    tester.send([{"name": "order.created", "data": {"orderId": k}} for k in keys])
    runs = tester.run_until_idle(advance_time=False)
    assert {r.status for r in runs} == {RunStatus.WAITING}
    return {json.loads(EventRow.get_by_id(r.event_id).data)["orderId"]: r.id for r in runs}


def _statuses(tester, by_key):
    return {k: tester.run(run_id).status.value for k, run_id in by_key.items()}


def test_an_exact_condition_is_matched_through_the_index_without_evaluating_any(
        jobs, tester, evaluations):
    by_key = _waiters(jobs, tester, "event.data.orderId == async.data.orderId",
                      [f"o{i}" for i in range(20)] + [7])
    wait = Wait.get(Wait.run_id == by_key["o3"])
    assert (wait.match_path, wait.match_key, wait.exact) == ("orderId", "string:o3", True)
    assert [(k.event_name, k.match_path) for k in WaitKey.select()] == [
        ("payment.completed", "orderId")]

    tester.send([{"name": "payment.completed", "data": {"orderId": "o3"}},
                 {"name": "payment.completed", "data": {"orderId": 7}},
                 {"name": "payment.completed", "data": {"orderId": "7"}}])  # a string: not 7
    tester.run_until_idle(advance_time=False)
    statuses = _statuses(tester, by_key)
    assert statuses.pop("o3") == statuses.pop(7) == "completed"
    assert set(statuses.values()) == {"waiting"}
    assert evaluations == []


def test_an_inexact_condition_evaluates_only_the_waits_with_the_events_key(jobs, tester,
                                                                           evaluations):
    by_key = _waiters(jobs, tester,
                      "async.data.orderId == event.data.orderId && async.data.amount >= 10",
                      [f"o{i}" for i in range(20)])
    wait = Wait.get(Wait.run_id == by_key["o7"])
    assert (wait.match_path, wait.match_key, wait.exact) == ("orderId", "string:o7", False)

    tester.send({"name": "payment.completed", "data": {"orderId": "o7", "amount": 5}})
    tester.run_until_idle(advance_time=False)
    assert set(_statuses(tester, by_key).values()) == {"waiting"}  # the key matched, not the rest
    assert evaluations == [{"orderId": "o7"}]  # one condition evaluated, not twenty

    tester.send({"name": "payment.completed", "data": {"orderId": "o7", "amount": 12}})
    [run] = [r for r in tester.run_until_idle(advance_time=False) if r.id == by_key["o7"]]
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"orderId": "o7", "amount": 12}
    assert evaluations == [{"orderId": "o7"}] * 2
    assert list(_statuses(tester, by_key).values()).count("waiting") == 19


@pytest.mark.parametrize("condition, plan", [
    ("event.data.orderId == async.data.orderId", MatchPlan(("orderId",), ("orderId",), True)),
    ("async.data.user.id == event.data.userId", MatchPlan(("userId",), ("user", "id"), True)),
    ("async.data.amount > 5 && async.data.orderId == event.data.orderId",
     MatchPlan(("orderId",), ("orderId",), False)),
    ("event.data.orderId == async.data.orderId || async.data.vip", None),
    ("async.data.orderId == 'o1'", None),
    ("event.data.a == event.data.b", None),
])
def test_the_index_plan_of_a_condition(condition, plan):
    assert match_plan(condition) == plan
