"""Transitions that touch several tables take their rows in one order (waits → runs → steps →
timers, docs/architecture.md), so two of them never wait on each other in a cycle. Run
concurrently on PostgreSQL (row locks; SQLite has one writer at a time), many times: a
deadlock would be reported by the server (``deadlock detected``) as an error here."""

from __future__ import annotations

import threading

import pytest

from tengo_jobs import RunStatus
from tengo_jobs.store.schema import RunRow as Run, TimerRow as Timer, WaitRow as Wait

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

RUNS_PER_ROUND = 12


def _race(runtime, *calls) -> list[BaseException]:
    """Call each of ``calls`` in its own thread (own connection), started together."""
    start = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def worker(call):
        try:
            start.wait()
            call()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            runtime.db.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def _cancel_all(runtime, run_ids):
    return lambda: [runtime.control.cancel(r) for r in reversed(run_ids)]


def test_cancel_and_fire_due_timers_concurrently_never_deadlock(backend, jobs, tester):
    @jobs.function("napper", event="nap")
    def napper(ctx, step):
        step.sleep("nap", "1s")
        return "awake"

    for _ in range(20):
        tester.send([{"name": "nap", "data": {}} for _ in range(RUNS_PER_ROUND)])
        run_ids = [r.id for r in tester.run_until_idle(advance_time=False)
                   if r.status == RunStatus.SLEEPING]
        assert len(run_ids) == RUNS_PER_ROUND
        backend.clock.advance(1_000)  # every timer is due
        errors = _race(backend, lambda: backend.timekeeper.fire_timers(),
                       _cancel_all(backend, run_ids))
        assert errors == []
        assert {Run.get_by_id(r).status for r in run_ids} == {RunStatus.CANCELLED}
        assert Timer.select().where(Timer.run_id.in_(run_ids)).count() == 0


def test_cancel_and_an_event_resolving_the_same_waits_never_deadlock(backend, jobs, tester):
    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        return step.wait_for_event("paid", event="payment.completed", timeout="1h",
                                   if_exp="event.data.orderId == async.data.orderId")

    for round_ in range(40):  # before the fix, a deadlock within ~10 rounds
        orders = [f"r{round_}-o{i}" for i in range(RUNS_PER_ROUND)]
        tester.send([{"name": "order.created", "data": {"orderId": o}} for o in orders])
        run_ids = [r.id for r in tester.run_until_idle(advance_time=False)
                   if r.status == RunStatus.WAITING]
        assert len(run_ids) == RUNS_PER_ROUND
        payments = [{"name": "payment.completed", "data": {"orderId": o}} for o in orders]
        errors = _race(backend, lambda: backend.send(payments), _cancel_all(backend, run_ids))
        assert errors == []
        # each run was either cancelled, or resumed by its payment first (then cancelled
        # while queued): cancelled either way, its wait gone
        assert {Run.get_by_id(r).status for r in run_ids} == {RunStatus.CANCELLED}
        assert Wait.select().where(Wait.run_id.in_(run_ids)).count() == 0
