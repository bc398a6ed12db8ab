"""One executor per run: the database lease, fencing of checkpoints, the outbox and the sweeper."""

from __future__ import annotations

from dramatiq import Worker

from backends import second_connection
from tengo_jobs import RunStatus
from tengo_jobs.engine.executor import Executor
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step


def _queue(runtime):
    return runtime.broker.queues[runtime.settings.queue_name]


def test_a_second_executor_cannot_execute_a_leased_run(jobs, tester):
    runtime = tester.runtime
    second = Executor(store=runtime.store, registry=runtime.registry, clock=runtime.clock, settings=runtime.settings, enqueue=runtime.enqueue, send=runtime.send)
    seen = []

    @jobs.function("leased", event="go")
    def fn(ctx, step):
        # while this executor holds the lease, another one is told "skipped"
        seen.append(step.run("try-second", lambda: second.execute(ctx.run_id)))
        return "first"

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert seen == ["skipped"]
    assert run.status == RunStatus.COMPLETED and tester.output(run) == "first"
    assert second.execute(run.id) == "skipped"  # a finished run is not executed again either


def test_a_checkpoint_after_the_lease_expired_is_rejected_and_writes_nothing(jobs, tester):
    runtime = tester.runtime
    ttl = runtime.settings.lease_ttl_ms
    takeover = Executor(store=runtime.store, registry=runtime.registry, clock=runtime.clock, settings=runtime.settings, enqueue=runtime.enqueue, send=runtime.send)
    state = {"stalled": False, "takeover": None}

    def slow_step(run_id):
        if not state["stalled"]:
            state["stalled"] = True
            tester.clock.advance(ttl + 1)  # this executor stalls past its lease...
            state["takeover"] = takeover.execute(run_id)  # ...and another one takes the run over
            return "from the stalled executor"
        return "from the new owner"

    @jobs.function("fenced", event="go")
    def fn(ctx, step):
        return step.run("slow", slow_step, ctx.run_id)

    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    outcome = runtime.executor.execute(run_id)
    assert state["takeover"] == "completed"
    assert outcome == "lease-lost"
    run = tester.run(run_id)
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == "from the new owner"
    (step,) = tester.steps(run_id)
    # the stalled execution never recorded its attempt: the new owner's is the second
    assert step.output == '"from the new owner"' and step.attempts == 2


def test_a_lost_lease_writes_no_step_row(jobs, tester):
    runtime = tester.runtime

    @jobs.function("stalled", event="go")
    def fn(ctx, step):
        step.run("stall", lambda: tester.clock.advance(runtime.settings.lease_ttl_ms + 1))
        return "unreachable"

    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    assert runtime.executor.execute(run_id) == "lease-lost"
    assert Step.select().count() == 0
    run = tester.run(run_id)
    assert run.status == RunStatus.RUNNING and run.output is None


def test_a_completion_after_the_lease_was_taken_writes_nothing(jobs, tester):
    runtime = tester.runtime

    @jobs.function("stolen", event="go")
    def stolen(ctx, step):
        # another executor takes the lease while this one runs (simulated)
        Run.update(lease_owner="someone-else").where(Run.id == ctx.run_id).execute()
        return {"done": True}

    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    assert runtime.executor.execute(run_id) == "lease-lost"
    run = Run.get_by_id(run_id)
    assert run.status == RunStatus.RUNNING and run.output is None and run.ended_at is None


def test_a_run_whose_executor_died_is_taken_over_after_the_lease_expires(jobs, tester):
    runtime = tester.runtime
    jobs.function("orphan", event="go")(lambda ctx, step: step.run("s", lambda: "done"))
    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    now = tester.clock.now()
    # a worker took the lease and was killed: nothing renews it
    Run.update(status=RunStatus.RUNNING, lease_owner="dead-worker",
               lease_expires_at=now + 5_000).where(Run.id == run_id).execute()
    assert runtime.executor.execute(run_id) == "skipped"
    tester.clock.advance(5_001)
    assert runtime.executor.execute(run_id) == "completed"


def test_event_and_runs_are_committed_before_the_broker_is_called(jobs, tester, monkeypatch):
    runtime = tester.runtime
    jobs.function("outboxed", event="go")(lambda ctx, step: "ran")
    seen_at_send = []

    def observing_send(run_id):
        # another connection sees the rows only if they were committed
        with second_connection(runtime) as other:
            seen_at_send.append((
                other.scalar("SELECT count(*) FROM tj_events"),
                other.scalar("SELECT status FROM tj_runs WHERE id = ?", (run_id,)),
                runtime.db.in_transaction()))
        return original(run_id)

    original = runtime.actor.send
    monkeypatch.setattr(runtime.actor, "send", observing_send)
    jobs.send({"name": "go", "data": {}})
    assert seen_at_send == [(1, "queued", False)]


def test_when_the_broker_fails_the_rows_stay_and_the_sweeper_enqueues_them(jobs, tester,
                                                                           monkeypatch):
    runtime = tester.runtime
    jobs.function("outboxed", event="go")(lambda ctx, step: "ran")

    def broken_send(run_id):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(runtime.actor, "send", broken_send)
    ids = jobs.send({"name": "go", "data": {}})  # accepted: the caller must not resend it
    assert EventRow.select().count() == 1
    run = Run.get()
    assert run.status == RunStatus.QUEUED and ids == [run.event_id]
    monkeypatch.undo()
    now = tester.clock.now()
    assert runtime.timekeeper.sweep(now=now) == []  # a wake-up may still be in flight: not yet
    later = now + runtime.settings.redeliver_after_ms + 1
    assert runtime.timekeeper.sweep(now=later) == [run.id]
    assert _queue(runtime).qsize() == 1
    tester.clock.set(later)
    assert tester.run_until_idle()[0].status == RunStatus.COMPLETED


def test_losing_every_message_loses_no_run(jobs, tester):
    runtime = tester.runtime
    jobs.function("many", event="go")(lambda ctx, step: ctx.event.data["i"])
    jobs.send([{"name": "go", "data": {"i": i}} for i in range(20)])
    assert _queue(runtime).qsize() == 20
    runtime.broker.flush_all()  # Redis restarted without persistence
    later = tester.clock.now() + runtime.settings.redeliver_after_ms + 1
    assert len(runtime.timekeeper.sweep(now=later)) == 20
    assert _queue(runtime).qsize() == 20
    assert runtime.timekeeper.sweep(now=later) == []  # just re-enqueued: not again until redelivery is due


def test_sweep_ignores_runs_with_a_live_lease_and_resends_stale_ones(jobs, tester):
    runtime = tester.runtime
    jobs.function("swept", event="go")(lambda ctx, step: 1)
    jobs.send([{"name": "go", "data": {}}, {"name": "go", "data": {}}])
    live, stale = [r.id for r in Run.select().order_by(Run.id)]
    now = tester.clock.now()
    long_ago = now - 10 * runtime.settings.redeliver_after_ms
    Run.update(status=RunStatus.RUNNING, lease_owner="alive", lease_expires_at=now + 20_000,
               enqueued_at=long_ago).where(Run.id == live).execute()
    Run.update(status=RunStatus.RUNNING, lease_owner="dead", lease_expires_at=now - 1,
               enqueued_at=long_ago).where(Run.id == stale).execute()
    runtime.broker.flush_all()
    assert runtime.timekeeper.sweep(now=now) == [stale]
    # once the live lease has expired too, both are due (the stale one's redelivery as well)
    assert set(runtime.timekeeper.sweep(now=now + 20_001)) == {live, stale}


def test_sweep_leaves_sleeping_and_finished_runs_alone(jobs, tester):
    runtime = tester.runtime

    @jobs.function("sleeper", event="sleep")
    def sleeper(ctx, step):
        step.sleep("nap", "1h")

    jobs.function("quick", event="quick")(lambda ctx, step: 1)
    jobs.send([{"name": "sleep", "data": {}}, {"name": "quick", "data": {}}])
    tester.run_until_idle(advance_time=False)
    assert sorted(r.status.value for r in Run.select()) == ["completed", "sleeping"]
    assert runtime.timekeeper.sweep(now=tester.clock.now() + 59 * 60_000) == []


def test_fire_due_timers_wakes_each_due_run_once(jobs, tester):
    runtime = tester.runtime

    @jobs.function("sleeper", event="go")
    def sleeper(ctx, step):
        step.sleep("nap", "10s")

    jobs.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    runtime.broker.flush_all()
    now = tester.clock.now()
    assert runtime.timekeeper.fire_timers(now=now + 9_999) == []
    woken = runtime.timekeeper.fire_timers(now=now + 10_000)
    assert woken == [Run.get().id] and Run.get().status == RunStatus.QUEUED
    assert runtime.timekeeper.fire_timers(now=now + 20_000) == []
    assert _queue(runtime).qsize() == 1


def test_runs_execute_through_the_stub_broker_and_a_dramatiq_worker(jobs, tester):
    runtime = tester.runtime
    broker, queue = runtime.broker, runtime.settings.queue_name
    calls = []

    @jobs.function("via-worker", event="go")
    def fn(ctx, step):
        a = step.run("a", lambda: calls.append("a") or ctx.event.data["n"] * 2)
        step.sleep("gap", "45s")
        b = step.run("b", lambda: calls.append("b") or a + 1)
        return b

    worker = Worker(broker, worker_timeout=100, worker_threads=4)
    worker.start()
    try:
        jobs.send([{"name": "go", "data": {"n": n}} for n in range(5)])
        broker.join(queue, fail_fast=True)
        worker.join()
        assert {r.status for r in Run.select()} == {RunStatus.SLEEPING}
        runtime.clock.advance(45_000)
        assert len(runtime.timekeeper.fire_timers()) == 5
        broker.join(queue, fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    runs = list(Run.select())
    assert {r.status for r in runs} == {RunStatus.COMPLETED}
    assert sorted(tester.output(r) for r in runs) == [1, 3, 5, 7, 9]
    assert sorted(calls) == ["a"] * 5 + ["b"] * 5
