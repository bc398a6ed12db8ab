"""step.transaction: a step's own writes commit with its checkpoint, exactly once, or not at all."""

from __future__ import annotations

import peewee as pw
import pytest

from tengo_jobs import Jobs, RunStatus
from tengo_jobs.store.schema import AppModel, RunRow as Run
from tengo_jobs.testing import JobsTester


class Ledger(AppModel):
    """A side-effect table in the jobs database."""

    run_id = pw.CharField()
    entry = pw.CharField()

    class Meta:
        table_name = "test_ledger"


def _declare(runtime, *, fail_first: bool = False, steal_lease: bool = False):
    jobs = Jobs("tx-test", runtime=runtime)
    attempts = []

    def book(run_id, entry):
        attempts.append(entry)
        Ledger.create(run_id=run_id, entry=entry)
        if steal_lease:
            Run.update(lease_owner="someone-else").where(Run.id == run_id).execute()
        if fail_first and len(attempts) == 1:
            raise RuntimeError("gateway hiccup after the row was written")
        return {"booked": entry}

    @jobs.function("tx-book", event="tx.book", retries=2)
    def handler(ctx, step):
        return step.transaction("book", book, ctx.run_id, ctx.event.data["entry"])

    return attempts


@pytest.fixture
def runtime(backend):
    """``backend`` with the side-effect table."""
    backend.db.create_tables([Ledger])
    return backend


def test_the_steps_writes_and_its_checkpoint_commit_together(runtime):
    _declare(runtime)
    tester = JobsTester(runtime)
    tester.send({"name": "tx.book", "data": {"entry": "fare-1"}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert [(r.run_id, r.entry) for r in Ledger.select()] == [(run.id, "fare-1")]
    assert [s.key for s in tester.steps(run.id)] == ["book"]


def test_a_failed_attempt_rolls_its_writes_back_so_the_retry_books_once(runtime):
    attempts = _declare(runtime, fail_first=True)
    tester = JobsTester(runtime)
    tester.send({"name": "tx.book", "data": {"entry": "fare-2"}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert attempts == ["fare-2", "fare-2"]  # the step ran twice...
    assert Ledger.select().count() == 1  # ...and its row exists once
    [step] = tester.steps(run.id)
    assert step.attempts == 2


def test_a_lost_lease_rolls_back_the_steps_writes(runtime):
    _declare(runtime, steal_lease=True)
    tester = JobsTester(runtime)
    tester.send({"name": "tx.book", "data": {"entry": "fare-3"}})
    [run_id] = [r.id for r in Run.select(Run.id)]
    assert runtime.executor.execute(run_id) == "lease-lost"
    assert Ledger.select().count() == 0
    assert tester.steps(run_id) == []
