"""The PostgreSQL fast paths (tengo_jobs.fastpath) behave as the generic ones: replay, events, fencing."""

from __future__ import annotations

import pytest

from tengo_jobs import Jobs, RunStatus
from tengo_jobs.store.schema import RunRow as Run
from tengo_jobs.runtime import set_runtime
from tengo_jobs.testing import JobsTester, make_test_runtime

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_runtime(postgres_url):
    runtime = make_test_runtime(postgres_url)
    yield runtime
    runtime.close()
    set_runtime(None)


def test_a_resumed_run_replays_its_stored_steps_and_event_on_postgres(pg_runtime):
    jobs = Jobs("fastpath", runtime=pg_runtime)
    calls = []

    @jobs.function("resume-me", event="pg.go")
    def resume_me(ctx, step):
        first = step.run("first", lambda: calls.append("first") or {"n": ctx.event.data["n"]})
        step.sleep("nap", "10m")
        second = step.run("second", lambda: calls.append("second") or first["n"] + 1)
        return {"first": first, "second": second, "user": ctx.event.user, "id": ctx.event.id}

    tester = JobsTester(pg_runtime)
    tester.send({"name": "pg.go", "data": {"n": 41}, "id": "evt-1", "user": {"u": 1}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"first": {"n": 41}, "second": 42, "user": {"u": 1}, "id": "evt-1"}
    assert calls == ["first", "second"]  # the resume replayed "first" from its checkpoint
    assert [s.key for s in tester.steps(run.id)] == ["first", "nap", "second"]


def test_completion_after_losing_the_lease_writes_nothing_on_postgres(pg_runtime):
    jobs = Jobs("fastpath", runtime=pg_runtime)

    @jobs.function("stolen", event="pg.steal")
    def stolen(ctx, step):
        # another executor takes the lease while this one runs (simulated)
        Run.update(lease_owner="someone-else").where(Run.id == ctx.run_id).execute()
        return {"done": True}

    tester = JobsTester(pg_runtime)
    tester.send({"name": "pg.steal", "data": {}})
    [run_id] = [r.id for r in Run.select(Run.id)]
    assert pg_runtime.executor.execute(run_id) == "lease-lost"
    run = Run.get_by_id(run_id)
    assert run.status == RunStatus.RUNNING and run.output is None
