"""Checkpoints on PostgreSQL, where fence and upsert are one statement: same contract as SQLite."""

from __future__ import annotations

import pytest

from tengo_jobs import Jobs, RunStatus
from tengo_jobs.engine.executor import Executor
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step, StepStatus
from tengo_jobs.runtime import set_runtime
from tengo_jobs.testing import JobsTester, make_test_runtime


@pytest.fixture
def pg_tester(postgres_url):
    runtime = make_test_runtime(postgres_url)
    try:
        yield JobsTester(runtime)
    finally:
        runtime.broker.flush_all()
        runtime.close()
        set_runtime(None)


def test_steps_retries_and_memoization_checkpoint_on_postgresql(pg_tester):
    jobs = Jobs(app_id="app", runtime=pg_tester.runtime)
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1
        return {"a": 1}

    def b():
        calls["b"] += 1
        if calls["b"] < 3:
            raise RuntimeError("flaky")
        return "b"

    @jobs.function("pg-steps", event="go")
    def fn(ctx, step):
        items = [step.run("item", lambda i=i: i) for i in range(50)]
        return [step.run("a", a), step.run("b", b), sum(items)]

    jobs.send({"name": "go", "data": {}})
    run = pg_tester.run_until_idle()[0]
    assert run.status == RunStatus.COMPLETED
    assert pg_tester.output(run) == [{"a": 1}, "b", sum(range(50))]
    assert calls == {"a": 1, "b": 3}
    steps = {s.key: s for s in pg_tester.steps(run.id)}
    assert len(steps) == 52 and steps["item:49"].output == "49"
    assert steps["b"].status == StepStatus.COMPLETED and steps["b"].attempts == 3  # upserted
    assert [s.position for s in pg_tester.steps(run.id)] == list(range(52))


def test_a_checkpoint_after_the_lease_expired_writes_nothing_on_postgresql(pg_tester):
    runtime = pg_tester.runtime
    jobs = Jobs(app_id="app", runtime=runtime)
    takeover = Executor(store=runtime.store, registry=runtime.registry, clock=runtime.clock, settings=runtime.settings, enqueue=runtime.enqueue, send=runtime.send)
    state = {"stalled": False, "takeover": None}

    def slow_step(run_id):
        if not state["stalled"]:
            state["stalled"] = True
            pg_tester.clock.advance(runtime.settings.lease_ttl_ms + 1)
            state["takeover"] = takeover.execute(run_id)
            return "from the stalled executor"
        return "from the new owner"

    @jobs.function("pg-fenced", event="go")
    def fn(ctx, step):
        return step.run("slow", slow_step, ctx.run_id)

    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    assert runtime.executor.execute(run_id) == "lease-lost"
    assert state["takeover"] == "completed"
    assert pg_tester.output(pg_tester.run(run_id)) == "from the new owner"
    (step,) = Step.select().where(Step.run_id == run_id)
    assert step.output == '"from the new owner"'


def test_a_lost_lease_writes_no_step_row_on_postgresql(pg_tester):
    runtime = pg_tester.runtime
    jobs = Jobs(app_id="app", runtime=runtime)

    @jobs.function("pg-stalled", event="go")
    def fn(ctx, step):
        step.run("stall", lambda: pg_tester.clock.advance(runtime.settings.lease_ttl_ms + 1))

    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    assert runtime.executor.execute(run_id) == "lease-lost"
    assert Step.select().count() == 0
