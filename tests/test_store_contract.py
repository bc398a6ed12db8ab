"""The store contract's promises about pending operations, on both databases: a run parks
on several pending operations at once (a timer per step), each resolved on its own, and a
suspension is refused when a pending operation moved while the run executed (the signal)."""

from __future__ import annotations

from tengo_jobs.core.ops import RetryStep, Sleep, StepRun, WaitForEvent
from tengo_jobs.core.states import RunStatus, StepStatus
from tengo_jobs.store import RunStart
from tengo_jobs.store.schema import StepRow as Step, TimerRow as Timer, WaitRow as Wait

NOW = 1_767_225_600_000


def _running_run(backend, token="t1"):
    [run_id] = backend.store.runs.start([RunStart(function_id="f", app_id="app",
                                                  event_id=None)], NOW)
    acquired = backend.store.runs.acquire(run_id, token, NOW)
    assert acquired is not None
    return acquired.run


def _park_on_two_sleeps(backend, run, token="t1"):
    return backend.store.runs.suspend(
        run, token, NOW, [Sleep(key="a", name="a", wake_at=NOW + 1_000, position=0),
                          Sleep(key="b", name="b", wake_at=NOW + 5_000, position=1)],
        status=RunStatus.SLEEPING, attempt=0, trigger={})


def test_a_run_parks_on_several_pending_operations_with_a_timer_each(backend):
    run = _running_run(backend)
    parked = _park_on_two_sleeps(backend, run)
    assert parked.requeued is False
    timers = sorted((t.step_key, t.due_at) for t in Timer.select().where(Timer.run_id == run.id))
    assert timers == [("a", NOW + 1_000), ("b", NOW + 5_000)]
    row = backend.store.queries.run(run.id)
    assert row.status == RunStatus.SLEEPING and row.wake_at == NOW + 1_000


def test_each_timer_resolves_only_its_own_step(backend):
    run = _running_run(backend)
    _park_on_two_sleeps(backend, run)
    assert backend.store.timers.fire_due(NOW + 1_000) == [run.id]
    steps = {s.key: s.status for s in Step.select().where(Step.run_id == run.id)}
    assert steps == {"a": StepStatus.COMPLETED, "b": StepStatus.SLEEPING}
    assert [t.step_key for t in Timer.select().where(Timer.run_id == run.id)] == ["b"]
    assert backend.store.queries.run(run.id).status == RunStatus.QUEUED


def test_a_suspension_is_refused_when_a_pending_operation_moved_meanwhile(backend):
    run = _running_run(backend)
    _park_on_two_sleeps(backend, run)
    backend.store.timers.fire_due(NOW + 1_000)
    again = backend.store.runs.acquire(run.id, "t2", NOW + 1_000)
    # while it executes, the second sleep's timer fires too
    assert backend.store.timers.fire_due(NOW + 5_000) == []  # running: not queued, nudged
    parked = backend.store.runs.suspend(
        again.run, "t2", NOW + 1_000,
        [Sleep(key="b", name="b", wake_at=NOW + 5_000, position=1)],
        status=RunStatus.SLEEPING, attempt=0, trigger={})
    assert parked.requeued is True
    row = backend.store.queries.run(run.id)
    assert row.status == RunStatus.QUEUED and row.lease_owner is None
    steps = {s.key: s.status for s in Step.select().where(Step.run_id == run.id)}
    assert steps["b"] == StepStatus.COMPLETED  # not put back to sleeping


def test_a_suspension_writes_the_step_held_back_and_its_pending_operations_together(backend):
    run = _running_run(backend)
    backend.store.runs.suspend(
        run, "t1", NOW,
        [RetryStep(key="b", name="b", wake_at=NOW + 10, attempts=1, error={"name": "E",
                                                                          "message": "m"}),
         WaitForEvent(key="c", name="c", wake_at=NOW + 60_000, event="x.y")],
        status=RunStatus.WAITING, attempt=1, trigger={"name": "t", "data": {}},
        record=StepRun(key="a", name="a", output='{"ok": 1}').record(NOW))
    steps = {s.key: (s.status, s.output) for s in Step.select().where(Step.run_id == run.id)}
    assert steps == {"a": (StepStatus.COMPLETED, '{"ok": 1}'), "b": (StepStatus.RETRYING, None),
                     "c": (StepStatus.WAITING, None)}
    assert [w.step_key for w in Wait.select().where(Wait.run_id == run.id)] == ["c"]
    assert backend.store.queries.run(run.id).status == RunStatus.WAITING


def test_a_checkpoint_from_a_worker_that_lost_its_lease_writes_nothing(backend):
    run = _running_run(backend)
    backend.control.cancel(run.id, now=NOW)
    try:
        backend.store.runs.checkpoint(run.id, "t1", NOW,
                                      StepRun(key="a", name="a", output="1").record(NOW))
    except BaseException as exc:  # LeaseLost is an engine interrupt
        assert type(exc).__name__ == "LeaseLost"
    else:
        raise AssertionError("the checkpoint was not refused")
    assert Step.select().where(Step.run_id == run.id).count() == 0
