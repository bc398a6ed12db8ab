"""Cancelling runs from outside an execution: ``cancel_on`` matchers and ``timeouts``.

**Registering.** When a run of a function with ``cancel_on`` starts (the intake on both
databases, and :meth:`~.contract.RunStore.start`), each entry becomes a row of
``tj_waits`` with ``kind = 'cancel'`` and the reserved step key ``cancel:<n>``, indexed
like any wait (event name, match path, match key), so an incoming event finds the runs it
cancels without scanning them. ``timeouts.start`` is a ``deadline`` timer
(``timeout:start``) at the run's due time plus ``start``; ``timeouts.finish`` one
(``timeout:finish``) at its first start plus ``finish``, set by the executor.

**Cancelling** (:meth:`Cancellation.cancel`). A run that no step is executing in (queued,
sleeping, waiting, backing off, or running under an expired lease) is cancelled at once:
final status ``cancelled`` with the reason as its error, its waits and timers deleted, an
invoked child's parent resumed with the error. A run whose worker holds a live lease is
only *asked*: ``cancel_requested`` holds the error and its signal moves. The worker's
next checkpoint reads the request (the step it ran is kept) and the execution stops
before the next step; a suspension fenced on the old signal is refused and ends the run
cancelled instead; an acquire that finds the request cancels at once. Lock order as
everywhere: waits → runs → steps → timers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ..core.lifecycle import FINISH_DEADLINE, START_DEADLINE, cancel_key
from ..core.events import Event
from ..core.states import FINAL_RUN_STATUSES, RunStatus
from .contract import Parent, resolve_parent
from .dialect import Dialect
from . import statements as sql
from .schema import RUNS, TIMERS, RunRow

if TYPE_CHECKING:
    from .waits import WaitStore

# Matchers without a timeout listen for as long as the run lives.
FOREVER = 2 ** 62

_LIVE_LEASE = '"status" = \'running\' AND "lease_expires_at" > ?'
# (status, output, error, now, run id, now): any unfinished run that no live lease holds.
_CANCEL_NOW = (sql.END + f'WHERE "id" = ? AND "status" NOT IN ({sql.FINAL}) '
               'AND NOT ("status" = \'running\' AND "lease_expires_at" IS NOT NULL '
               'AND "lease_expires_at" > ?)')
# (error, run id, now): ask the worker holding the run to stop at its next step boundary.
_REQUEST = (f'UPDATE "{RUNS}" SET "cancel_requested" = ?, "signal" = "signal" + 1 '
            f'WHERE "id" = ? AND {_LIVE_LEASE} AND "cancel_requested" IS NULL')
_READ = (f'SELECT "status", "started_at", "parent_run_id", "unique_key" FROM "{RUNS}" '
         'WHERE "id" = ?')
_SET_DEADLINE = (f'INSERT INTO "{TIMERS}" ("run_id", "step_key", "due_at", "kind") '
                 "VALUES (?, ?, ?, 'deadline') ON CONFLICT (\"run_id\", \"step_key\") DO NOTHING")
# (now, limit): due deadlines with their run's function.
_DUE_DEADLINES = (f'SELECT t."run_id", t."step_key", r."function_id" FROM "{TIMERS}" t '
                  f'JOIN "{RUNS}" r ON r."id" = t."run_id" '
                  "WHERE t.\"kind\" = 'deadline' AND t.\"due_at\" <= ? "
                  'ORDER BY t."due_at" LIMIT ?')


def cancelled_error(message: str) -> dict[str, Any]:
    """The error a cancelled run records (and the API shows)."""
    return {"name": "RunCancelled", "message": message}


@dataclasses.dataclass(frozen=True)
class Cancelled:
    """What :meth:`Cancellation.cancel` did: ``"cancelled"``, ``"requested"`` (the worker
    stops at its next step boundary) or ``None`` (nothing to cancel), and the parent run
    to wake (an invoked child)."""

    outcome: str | None
    woken: str | None = None


class Cancellation:
    """``cancel_on`` matchers, deadlines, and the cancellation they lead to (module docstring)."""

    def __init__(self, dialect: Dialect, waits: WaitStore) -> None:
        self.d = dialect
        self.waits = waits

    # -- registering -------------------------------------------------------------------------
    def register(self, run_id: str, function: Any, trigger: dict[str, Any], due: int,
                 now: int) -> None:
        """A new run of ``function``: its cancel matchers and its start deadline (inside
        the transaction that stores the run)."""
        for i, entry in enumerate(function.cancel_on):
            expires = now + entry.timeout_ms if entry.timeout_ms is not None else FOREVER
            self.waits.register(run_id=run_id, step_key=cancel_key(i), event_name=entry.event,
                                expression=entry.if_exp, trigger=trigger, expires_at=expires,
                                now=now, kind="cancel")
        timeouts = function.timeouts
        if timeouts is not None and timeouts.start_ms is not None:
            self.d.execute(_SET_DEADLINE, (run_id, START_DEADLINE, due + timeouts.start_ms))

    def register_started(self, run_id: str, started_at: int, function: Any) -> None:
        """A run of ``function`` has started: its start deadline is moot, its finish
        deadline is set (once: a later execution keeps the first)."""
        timeouts = function.timeouts
        with self.d.transaction():
            self.d.execute(sql.DELETE_STEP_TIMER, (run_id, START_DEADLINE))
            if timeouts.finish_ms is not None:
                self.d.execute(_SET_DEADLINE, (run_id, FINISH_DEADLINE,
                                                 started_at + timeouts.finish_ms))

    def due_deadlines(self, now: int, limit: int) -> list[tuple[str, str, str]]:
        """``(run id, deadline key, function id)`` of the deadlines due at ``now``."""
        return [tuple(r) for r in self.d.execute(_DUE_DEADLINES, (now, limit))]

    # -- cancelling --------------------------------------------------------------------------
    def cancel(self, run_id: str, now: int, error: dict[str, Any], *, unstarted_only: bool = False,
               deadline: str | None = None) -> Cancelled:
        """Cancel ``run_id`` with ``error`` (at once, or by request to the worker holding
        it: see the module docstring); ``unstarted_only`` leaves a run that has started
        alone; ``deadline`` names the timer that fired (deleted here, last)."""
        text = json.dumps(error)
        with self.d.transaction():
            result = self._cancel(run_id, now, text, unstarted_only)
            if deadline is not None:
                self.d.execute(sql.DELETE_STEP_TIMER, (run_id, deadline))
        return result

    def _cancel(self, run_id: str, now: int, text: str, unstarted_only: bool) -> Cancelled:
        row = self.d.execute(_READ, (run_id,)).fetchone()
        if row is None or row[0] in FINAL_RUN_STATUSES:
            return Cancelled(None)
        status, started_at, parent_run_id, unique_key = row
        if unstarted_only and started_at is not None:
            return Cancelled(None)
        if status == RunStatus.RUNNING.value and self.d.execute(
                _REQUEST, (text, run_id, now)).rowcount == 1:
            return Cancelled("requested")
        # waits before runs (the lock order)
        self.d.execute(sql.DELETE_WAITS, (run_id,))
        ended = self.d.execute(_CANCEL_NOW, (RunStatus.CANCELLED.value, None, text, now,
                                             run_id, now)).rowcount == 1
        if not ended:  # taken by a worker meanwhile: ask it
            asked = self.d.execute(_REQUEST, (text, run_id, now)).rowcount == 1
            return Cancelled("requested" if asked else None)
        parent = Parent.of(RunRow(id=run_id, parent_run_id=parent_run_id, unique_key=unique_key))
        woken = (resolve_parent(self.d, parent, RunStatus.CANCELLED, None, text, now)
                 if parent is not None else None)
        self.d.execute(sql.DELETE_TIMERS, (run_id,))
        return Cancelled("cancelled", woken)


def trigger_of(event: Event | None) -> dict[str, Any]:
    """The triggering event as cancel conditions see it (``event``)."""
    return event.to_dict() if event is not None else {"name": "", "data": {}}


__all__ = ["Cancellation", "Cancelled", "cancelled_error", "trigger_of", "FOREVER"]
