"""Acting on runs from outside an execution: cancel, replay, and the functions overview.

The REST API, the dashboard and the CLI call these; the state changes themselves are
the store's (:meth:`~tengo_jobs.store.RunStore.cancel`; a replay is a run started through
:meth:`~tengo_jobs.store.RunStore.start`, like every other),
and the runs they wake are enqueued after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from ..core.cron import parse_cron
from ..core.registry import Registry
from ..core.ops import StepRecord
from ..durations import ms_to_iso
from ..errors import InvalidRunStateError, RunNotFoundError, ValidationError
from ..store import RunStart, RunStatus

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store


class Control:
    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 enqueue: Callable[[Iterable[str]], object]):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.enqueue = enqueue

    def cancel(self, run_id: str, *, now: int | None = None) -> dict:
        """Cancel a run: final status ``cancelled``, its timer and wait deleted, its lease
        revoked — a worker executing it right now is stopped at its next checkpoint, which
        the fence refuses. An invoked child's parent resumes, its invoke step failed.
        Cancelling a cancelled run is a no-op; a completed or failed run cannot be cancelled."""
        run, woken = self.store.runs.cancel(run_id, self.clock.now() if now is None else now)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        if run.status.is_final and run.status != RunStatus.CANCELLED:
            raise InvalidRunStateError(
                f"run {run_id} is already {run.status.value}; only unfinished runs can be cancelled")
        if woken:
            self.enqueue([woken])
        return self.store.queries.get_run(run_id)

    def replay(self, run_id: str, *, from_step: str | None = None, now: int | None = None) -> dict:
        """Start a new run of the same function on the same event; returns the new run.

        With ``from_step``, the steps stored before that step (by position) are copied into
        the new run, so they replay their stored outputs and execution resumes at
        ``from_step``. Without it the new run starts from the top."""
        if from_step is not None and (not isinstance(from_step, str) or not from_step):
            raise ValidationError("from_step must be a step key (a non-empty string)",
                                  field="from_step")
        now = self.clock.now() if now is None else now
        with self.store.atomic():
            run = self.store.queries.run(run_id)
            copies: tuple[StepRecord, ...] = ()
            if from_step is not None:
                steps = self.store.queries.steps(run_id)
                target = next((s for s in steps if s.key == from_step), None)
                if target is None:
                    keys = [s.key for s in steps[:20]]
                    raise ValidationError(
                        f"run {run_id} has no step {from_step!r} (its steps: "
                        f"{', '.join(keys) or 'none'})", field="from_step")
                copies = tuple(StepRecord(key=s.key, name=s.name, kind=s.kind,
                                          position=s.position, status=s.status,
                                          attempts=s.attempts, started_at=s.started_at,
                                          ended_at=s.ended_at, output=s.output, error=s.error,
                                          wake_at=s.wake_at)
                               for s in steps if s.position < target.position)
            [new_run_id] = self.store.runs.start([RunStart(
                function_id=run.function_id, app_id=run.app_id, event_id=run.event_id,
                steps=copies)], now)
        self.enqueue([new_run_id])
        return self.store.queries.get_run(new_run_id)

    def functions(self, *, now: int | None = None) -> list[dict]:
        """The registered functions with triggers, next cron fire and recent run statistics."""
        now = self.clock.now() if now is None else now
        out = []
        for fn in sorted(self.registry.all(), key=lambda f: f.id):
            body = fn.describe()
            next_fire = parse_cron(fn.cron, function_id=fn.id).next_fire(now) if fn.cron else None
            body["next_cron_fire"] = ms_to_iso(next_fire)
            body.update(self.store.queries.function_stats(fn.id, now=now))
            if fn.capacity is not None and fn.capacity.concurrency:
                body["limits"] = self.live_limits(fn, now=now)
            out.append(body)
        return out

    def live_limits(self, fn, *, now: int | None = None, top: int = 20) -> list[dict]:
        """Per concurrency limit of ``fn``: slots in use, runs waiting, and the key values
        at capacity or with a backlog (the ``top`` largest backlogs)."""
        now = self.clock.now() if now is None else now
        out = []
        for limit in fn.capacity.concurrency:
            if limit.key is None:
                prefix = f"c:fn:{fn.id}"
            elif limit.scope == "env":
                prefix = f"c:env:{limit.key}="
            else:
                prefix = f"c:fn:{fn.id}:{limit.key}="
            rows = [r for r in self.store.slots.usage(prefix, now)
                    if limit.key is not None or r[0] == prefix]
            busy = [r for r in rows if r[2] >= r[1] or r[3] > 0]
            busy.sort(key=lambda r: (-r[3], -r[2], r[0]))
            out.append({
                **limit.describe(),
                "slots_in_use": sum(r[2] for r in rows),
                "waiting": sum(r[3] for r in rows),
                "keys": [{"key": r[0][len(prefix):] if limit.key is not None else None,
                          "limit": r[1], "in_use": r[2], "waiting": r[3],
                          "at_capacity": r[2] >= r[1]} for r in busy[:top]],
            })
        return out
