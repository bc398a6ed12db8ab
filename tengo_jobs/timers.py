"""Due timers and the sweeper: how runs wake up after time passes or a message is lost.

``fire_due_timers`` claims timers that are due (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several schedulers share the work), marks their runs queued and
enqueues them. ``sweep`` re-enqueues runs the database says are due but that no
live executor holds and no recent message covers — losing every Redis message
loses no run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import peewee as pw

from .models import Run, RunStatus, Step, StepStatus, Timer, TimerKind

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


def fire_due_timers(runtime: "Runtime", *, now: int | None = None, limit: int = 1_000) -> list[str]:
    """Wake the runs whose timers are due at ``now``; returns their ids."""
    now = runtime.now() if now is None else now
    db = runtime.db
    with db.atomic():
        query = (Timer.select(Timer.id, Timer.run_id, Timer.kind).where(Timer.due_at <= now)
                 .order_by(Timer.due_at).limit(limit))
        if isinstance(db, pw.PostgresqlDatabase):
            query = query.for_update(skip_locked=True)
        due = list(query.tuples())
        if not due:
            return []
        timer_ids = [t[0] for t in due]
        run_ids = [t[1] for t in due]
        Timer.delete().where(Timer.id.in_(timer_ids)).execute()
        # A sleep that is over is a completed step: record it here, with the wake-up, so
        # the resumed run does not spend a checkpoint on it (nobody holds a sleeping run's
        # lease, and the claimed timer row makes this scheduler the only writer).
        slept = [t[1] for t in due if t[2] == TimerKind.SLEEP]
        if slept:
            (Step.update(status=StepStatus.COMPLETED, ended_at=now, attempts=1)
             .where(Step.run_id.in_(slept) & (Step.status == StepStatus.SLEEPING.value)
                    & (Step.wake_at <= now))
             .execute())
        (Run.update(status=RunStatus.QUEUED, enqueued_at=now)
         .where(Run.id.in_(run_ids)
                & Run.status.in_([RunStatus.SLEEPING.value, RunStatus.WAITING.value,
                                  RunStatus.QUEUED.value]))
         .execute())
    runtime.enqueue(run_ids)
    return run_ids


def next_timer_due(runtime: "Runtime") -> int | None:
    """When the earliest timer is due (epoch ms), or ``None``."""
    return Timer.select(pw.fn.MIN(Timer.due_at)).scalar()


def sweep(runtime: "Runtime", *, now: int | None = None, limit: int = 5_000) -> list[str]:
    """Re-enqueue due runs without a live lease whose last wake-up is older than the redelivery delay."""
    now = runtime.now() if now is None else now
    stale_before = now - runtime.settings.redeliver_after_ms
    run_ids = [r[0] for r in (
        Run.select(Run.id)
        .where(Run.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value])
               & (Run.wake_at <= now)
               & (Run.lease_expires_at.is_null() | (Run.lease_expires_at < now))
               & (Run.enqueued_at.is_null() | (Run.enqueued_at < stale_before)))
        .order_by(Run.wake_at).limit(limit).tuples())]
    if run_ids:
        runtime.mark_enqueued(run_ids, now)
        runtime.enqueue(run_ids)
        log.info("sweeper re-enqueued %d run(s)", len(run_ids))
    return run_ids
