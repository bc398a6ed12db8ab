"""Race-free ``step.wait_for_event``: a wait matches the events received since the run's
previous durable point, not only those received after its wait row was written."""

from __future__ import annotations

import threading

import pytest

from tengo_jobs import RunStatus
from tengo_jobs.engine.invocation import Invocation
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step, WaitRow as Wait

ROUNDS = 200


def _declare_waiter(jobs, *, first_step: bool = False):
    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        if first_step:
            step.run("prepare", lambda: "ready")
        paid = step.wait_for_event("wait-payment", event="payment.completed", timeout="1h",
                                   if_exp="event.data.orderId == async.data.orderId")
        return {"paid": paid["data"] if paid else None}

    return await_payment


def _order(i: int) -> dict:
    return {"name": "order.created", "data": {"orderId": f"o{i}"}}


def _payment(i: int) -> dict:
    return {"name": "payment.completed", "data": {"orderId": f"o{i}", "amount": i}}


def _assert_every_run_paid(tester, n: int) -> None:
    runs = tester.runs("await-payment")
    assert len(runs) == n
    assert {r.status for r in runs} == {RunStatus.COMPLETED}
    paid = sorted(tester.output(r)["paid"]["amount"] for r in runs)
    assert paid == list(range(n))  # each run got its own payment; none timed out (None)
    assert Wait.select().count() == 0


def test_trigger_and_awaited_event_in_one_request_always_resolve(jobs, tester):
    _declare_waiter(jobs)
    for i in range(ROUNDS):
        tester.send([_order(i), _payment(i)])
    tester.run_until_idle(advance_time=False)
    _assert_every_run_paid(tester, ROUNDS)
    # resolved when the step was reached: no run was ever parked on its wait
    assert Step.select().where(Step.key == "wait-payment").count() == ROUNDS


def test_the_suspension_looks_back_too(jobs, tester, monkeypatch):
    """Without the look-back at the step, the one inside the suspension (which writes the
    wait row) still finds the event: the run is queued again and completes."""
    _declare_waiter(jobs)
    monkeypatch.setattr(Invocation, "received_event", lambda self, op: None)
    for i in range(50):
        tester.send([_order(i), _payment(i)])
    tester.run_until_idle(advance_time=False)
    _assert_every_run_paid(tester, 50)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_trigger_and_awaited_event_back_to_back_from_two_threads(backend, jobs, tester):
    """One thread sends the trigger and executes its run at once (as a worker would), the
    other sends the payment as soon as the trigger is accepted: whichever of the wait row
    and the payment is committed first, the run gets the payment."""
    _declare_waiter(jobs, first_step=True)
    errors: list[BaseException] = []

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                backend.store.close_thread_connection()
        return run

    for i in range(ROUNDS):
        accepted = threading.Event()

        def trigger_and_execute(i=i):
            backend.send(_order(i))
            accepted.set()
            for run_id in backend.store.timers.runnable(backend.clock.now()):
                backend.executor.execute(run_id)

        def pay(i=i):
            accepted.wait(10)
            backend.send(_payment(i))

        threads = [threading.Thread(target=guarded(trigger_and_execute)),
                   threading.Thread(target=guarded(pay))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
    tester.run_until_idle(advance_time=False)
    _assert_every_run_paid(tester, ROUNDS)


def test_an_event_consumed_by_one_wait_does_not_satisfy_the_next(jobs, tester):
    @jobs.function("two-waits", event="order.created")
    def two_waits(ctx, step):
        first = step.wait_for_event("first", event="payment.completed", timeout="1h")
        second = step.wait_for_event("second", event="payment.completed", timeout="1h")
        return [first["data"]["n"], second["data"]["n"]]

    tester.send([{"name": "order.created", "data": {}},
                 {"name": "payment.completed", "data": {"n": 1}}])
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.WAITING
    tester.send({"name": "payment.completed", "data": {"n": 2}})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == [1, 2]


def test_the_trigger_itself_never_satisfies_its_wait(jobs, tester):
    @jobs.function("ping-pong", event="ping")
    def ping_pong(ctx, step):
        return step.wait_for_event("next-ping", event="ping", timeout="1h")

    tester.send({"name": "ping", "data": {"n": 1}})
    runs = tester.run_until_idle(advance_time=False)
    assert [r.status for r in runs] == [RunStatus.WAITING]


def test_events_received_before_the_previous_step_ended_do_not_count(jobs, tester):
    _declare_waiter(jobs, first_step=True)
    tester.send(_order(0))
    tester.clock.advance(1_000)
    tester.send(_payment(0))  # after the trigger, before the run's first step ends
    tester.clock.advance(1_000)
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.WAITING


def test_events_received_after_the_trigger_count_for_a_first_wait(jobs, tester):
    _declare_waiter(jobs)
    tester.send(_order(0))
    tester.clock.advance(1_000)
    tester.send(_payment(0))
    tester.clock.advance(1_000)
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"paid": {"orderId": "o0", "amount": 0}}


def test_a_replay_does_not_see_events_from_before_it_started(backend, jobs, tester):
    _declare_waiter(jobs)
    tester.send([_order(0), _payment(0)])
    [original] = tester.run_until_idle(advance_time=False)
    assert original.status == RunStatus.COMPLETED
    tester.clock.advance(1_000)
    replayed = backend.control.replay(original.id)
    tester.run_until_idle(advance_time=False)
    assert Run.get_by_id(replayed["id"]).status == RunStatus.WAITING


def test_looking_back_narrows_by_the_conditions_key_of_any_type(jobs, tester):
    """The look-back reads only events holding the run's key (a number here) and still
    evaluates the rest of the condition on them."""
    @jobs.function("await-refund", event="refund.requested")
    def await_refund(ctx, step):
        got = step.wait_for_event(
            "refunded", event="refund.done", timeout="1h",
            if_exp="event.data.ticket == async.data.ticket && async.data.ok == true")
        return got["data"]

    tester.send([{"name": "refund.requested", "data": {"ticket": 7}},
                 {"name": "refund.done", "data": {"ticket": 8, "ok": True}},
                 {"name": "refund.done", "data": {"ticket": "7", "ok": True}},
                 {"name": "refund.done", "data": {"ticket": 7, "ok": False}},
                 {"name": "refund.done", "data": {"ticket": 7, "ok": True, "n": 4}}])
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"ticket": 7, "ok": True, "n": 4}
