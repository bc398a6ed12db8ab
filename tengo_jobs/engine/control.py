"""Acting on runs from outside an execution: cancel, replay, and the functions overview.

The REST API, the dashboard and the CLI call these; the state changes themselves are
the store's (:meth:`tengo_jobs.store.RunStore.cancel`, :meth:`tengo_jobs.store.Queries.replay`),
and the runs they wake are enqueued after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from ..core.cron import parse_cron
from ..core.registry import Registry
from ..durations import ms_to_iso
from ..errors import InvalidRunStateError, RunNotFoundError
from ..store import RunStatus

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
        """Start a new run of the same function on the same event (from ``from_step``: the
        earlier steps' outputs are reused); returns the new run."""
        new_run_id = self.store.queries.replay(run_id, from_step=from_step,
                                               now=self.clock.now() if now is None else now)
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
            out.append(body)
        return out
