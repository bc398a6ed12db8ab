"""The admission rules that need stored state: ``idempotency``, ``rate_limit``,
``singleton``, ``debounce`` and ``batch_events`` (declared in :mod:`tengo_jobs.core.flow`).

:class:`FlowAdmission` runs inside the intake's transaction, after the events are stored
and their duplicates dropped, for each (event, function) pair whose function declares a
rule. Each rule reads and writes one ``tj_flow_keys`` row per (function, kind, key value),
created if missing and then locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` serializes every writer already). Every decision is therefore taken
on the database's rows, never on a process's memory: it holds across any number of
intake processes and survives a broker flush. Lock order: flow keys are taken after the
intake's waits and runs rows and before the run rows they move (a debounced run, a batch
run, a singleton's holder), always one key at a time; a run they start goes through
:meth:`~.admission.Admission.admit` like every other start, so the function's ``throttle``
delays it (its ``tj_throttles`` row is locked after the flow key).

What each event came to is recorded in ``tj_skips`` when it started no run of its own:
``rate_limit``, ``idempotency``, ``singleton`` (skipped), or ``debounced`` / ``batched``
(folded into ``run_id``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, cast

from ..core.flow import IDEMPOTENCY_WINDOW_MS, condition_holds, key_of
from . import statements as sql
from .contract import Admitted, RunStart, admit_one
from .dialect import Dialect
from .schema import BATCH_EVENTS, FINAL_RUN_STATUSES, FLOW_KEYS, RUNS, SKIPS

if TYPE_CHECKING:
    from ..core.events import Event
    from ..core.flow import Debounce
    from ..core.functions import FunctionDef

_ENSURE_KEY = (f'INSERT INTO "{FLOW_KEYS}" ("function_id", "kind", "key", "value") '
               'VALUES (?, ?, ?, 0) ON CONFLICT DO NOTHING')
_LOCK_KEY = (f'SELECT "run_id", "value", "first_at", "expires_at" FROM "{FLOW_KEYS}" '
             'WHERE "function_id" = ? AND "kind" = ? AND "key" = ?')
_SET_KEY = (f'UPDATE "{FLOW_KEYS}" SET "run_id" = ?, "value" = ?, "first_at" = ?, '
            '"expires_at" = ? WHERE "function_id" = ? AND "kind" = ? AND "key" = ?')
_SKIP = (f'INSERT INTO "{SKIPS}" ("event_id", "function_id", "reason", "run_id", "at") '
         'VALUES (?, ?, ?, ?, ?)')
_RUN_STATUS = f'SELECT "status", "event_id" FROM "{RUNS}" WHERE "id" = ?'
# A pending run not yet started may be moved (debounce) or grown (batch): (…, run id).
_NOT_STARTED = '"id" = ? AND "status" = \'queued\' AND "started_at" IS NULL'
_REDEBOUNCE = (f'UPDATE "{RUNS}" SET "event_id" = ?, "wake_at" = ?, "enqueued_at" = ? '
               f'WHERE {_NOT_STARTED}')
_HOLD_BATCH = f'UPDATE "{RUNS}" SET "signal" = "signal" WHERE {_NOT_STARTED}'
_BATCH_DUE = f'UPDATE "{RUNS}" SET "wake_at" = ?, "enqueued_at" = ? WHERE "id" = ?'
_ADD_TO_BATCH = (f'INSERT INTO "{BATCH_EVENTS}" ("run_id", "position", "event_id") '
                 'VALUES (?, ?, ?)')


@dataclasses.dataclass(frozen=True)
class FlowItem:
    """One stored event and one function of it that declares admission rules."""

    event_id: str
    event: Event
    ts: int
    function: FunctionDef[..., Any]


class FlowAdmission:
    """Decides, on the database's rows, what each :class:`FlowItem` starts (see the module
    docstring). ``cancel(run_id, now)`` is :meth:`~.contract.RunStore.cancel` (a singleton
    in ``cancel`` mode)."""

    def __init__(self, dialect: Dialect, cancel: Callable[[str, int], object],
                 admit: Callable[..., list[Admitted]] | None = None,
                 lifecycle: Callable[[str, object, dict[str, Any], int, int], None] | None = None):
        self.d = dialect
        self.cancel = cancel
        # :meth:`~.cancellation.Cancellation.register`: the run's cancel_on matchers and its
        # start deadline, as for every other start
        self.register_lifecycle = lifecycle
        # :meth:`~.admission.Admission.admit`: the function's throttle delays the start
        self.admit_starts = admit or (lambda starts, now, events=None:
                                      [admit_one(s, now) for s in starts])

    def admit(self, items: list[FlowItem], now: int) -> list[str]:
        """Apply the rules inside the caller's transaction; returns the runs due now (to
        wake after commit)."""
        due: list[str] = []
        for item in items:
            run_id = self._admit_one(item, now)
            if run_id is not None:
                due.append(run_id)
        return due

    # -- one pair ------------------------------------------------------------------------------
    def _admit_one(self, item: FlowItem, now: int) -> str | None:
        flow = item.function.flow
        event = item.event.to_dict()
        if flow.batch_events is not None and condition_holds(flow.batch_events.if_exp, event):
            return self._batch(item, key_of(flow.batch_events.key, event), now)
        if flow.idempotency is not None and not self._claim_once(item, event, now):
            self._skipped(item, "idempotency", None, now)
            return None
        if flow.rate_limit is not None and not self._within_rate(item, event, now):
            self._skipped(item, "rate_limit", None, now)
            return None
        if flow.debounce is not None:
            return self._debounce(item, event, now)
        if flow.singleton is not None:
            return self._singleton(item, event, now, due=self._due(item, now))[1]
        return self._start(item, self._due(item, now), now)[1]

    @staticmethod
    def _due(item: FlowItem, now: int) -> int:
        return max(item.ts, now)

    def _start(self, item: FlowItem, due: int, now: int) -> tuple[str, str | None]:
        """A run row for ``item`` due at ``due`` (with a timer when later; later still when
        the function's ``throttle`` says so: the start goes through the same admission as
        every other start): its id, and its id again when it is due now (to wake)."""
        fn = item.function
        [admitted] = self.admit_starts([RunStart(
            function_id=fn.id, app_id=fn.app_id, event_id=item.event_id, due=due,
            traceparent=getattr(item.event, "traceparent", None))], now,
            events={item.event_id: item.event})
        self.d.execute(sql.INSERT_RUN, admitted.run_row())  # the row every start writes
        if admitted.enqueued_at is None:
            self.d.execute(sql.INSERT_EVENT_TIMER, (admitted.run_id, admitted.due))
        if admitted.lifecycle is not None and self.register_lifecycle is not None:
            event = item.event
            trigger = event.to_dict() if hasattr(event, "to_dict") else {}
            self.register_lifecycle(admitted.run_id, admitted.lifecycle, trigger, admitted.due,
                                    now)
        return admitted.run_id, (admitted.run_id if admitted.enqueued_at is not None else None)

    def _skipped(self, item: FlowItem, reason: str, run_id: str | None, now: int) -> None:
        self.d.execute(_SKIP, (item.event_id, item.function.id, reason, run_id, now))
        return None

    def _lock(self, item: FlowItem, kind: str, key: str) -> tuple[Any, ...]:
        """The key row of (function, kind, key), created if missing, locked until commit."""
        ident = (item.function.id, kind, key)
        self.d.execute(_ENSURE_KEY, ident)
        return cast("tuple[Any, ...]",
                    self.d.execute(_LOCK_KEY + self.d.for_update, ident).fetchone())

    def _set(self, item: FlowItem, kind: str, key: str, *, run_id: str | None = None,
             value: int = 0, first_at: int | None = None, expires_at: int | None = None) -> None:
        self.d.execute(_SET_KEY, (run_id, value, first_at, expires_at, item.function.id, kind,
                                  key))

    def _holder_unfinished(self, run_id: str | None) -> tuple[Any, ...] | None:
        if run_id is None:
            return None
        row = self.d.execute(_RUN_STATUS + self.d.for_update, (run_id,)).fetchone()
        return row if row is not None and row[0] not in FINAL_RUN_STATUSES else None

    # -- the rules -----------------------------------------------------------------------------
    def _claim_once(self, item: FlowItem, event: dict[str, Any], now: int) -> bool:
        """``idempotency``: the first event of a key value in 24 h claims it."""
        key = key_of(item.function.flow.idempotency, event)
        _, _, _, expires_at = self._lock(item, "idempotency", key)
        if expires_at is not None and expires_at > now:
            return False
        self._set(item, "idempotency", key, first_at=now, expires_at=now + IDEMPOTENCY_WINDOW_MS)
        return True

    def _within_rate(self, item: FlowItem, event: dict[str, Any], now: int) -> bool:
        """``rate_limit`` as a GCRA: ``limit`` starts per ``period``, refilled evenly (one
        every ``period / limit``); ``value`` is the theoretical arrival time."""
        rule = item.function.flow.rate_limit
        assert rule is not None  # called only for a function that declares it
        key = key_of(rule.key, event)
        _, tat, _, _ = self._lock(item, "rate_limit", key)
        interval = rule.period_ms / rule.limit
        tat = max(tat or 0, now)
        if tat - now > rule.period_ms - interval:
            return False
        new_tat = int(tat + interval)
        self._set(item, "rate_limit", key, value=new_tat, expires_at=new_tat)
        return True

    def _singleton(self, item: FlowItem, event: dict[str, Any], now: int, *,
                   due: int) -> tuple[str | None, str | None]:
        """``singleton``: one unfinished run per key; ``skip`` drops the newcomer, ``cancel``
        cancels the holder (its executing step runs to its end; the fence refuses what it
        writes after) and starts the newcomer."""
        rule = item.function.flow.singleton
        assert rule is not None  # called only for a function that declares it
        key = key_of(rule.key, event)
        holder, _, _, _ = self._lock(item, "singleton", key)
        if self._holder_unfinished(holder) is not None:
            if rule.mode == "skip":
                self._skipped(item, "singleton", holder, now)
                return None, None
            self.cancel(holder, now)
        run_id, woken = self._start(item, due, now)
        self._set(item, "singleton", key, run_id=run_id, first_at=now)
        return run_id, woken

    def _debounce(self, item: FlowItem, event: dict[str, Any], now: int) -> str | None:
        """``debounce``: one pending run per key, due ``period`` after the latest event (at
        most ``timeout`` after the first), carrying the latest event; the events it
        replaced are recorded as ``debounced`` into it."""
        rule = item.function.flow.debounce
        assert rule is not None  # called only for a function that declares it
        key = key_of(rule.key, event)
        pending, _, first_at, _ = self._lock(item, "debounce", key)
        if pending is not None:
            row = self.d.execute(_RUN_STATUS, (pending,)).fetchone()
            due = self._debounce_due(item, rule, first_at, now)
            enqueued = now if due <= now else None
            moved = self.d.execute(_REDEBOUNCE, (item.event_id, max(due, now), enqueued,
                                                 pending)).rowcount == 1
            if moved:
                self.d.execute(sql.DELETE_STEP_TIMER, (pending, ""))
                if enqueued is None:
                    self.d.execute(sql.INSERT_EVENT_TIMER, (pending, due))
                self.d.execute(_SKIP, (row[1], item.function.id, "debounced", pending, now))
                return pending if enqueued is not None else None
        due = self._debounce_due(item, rule, now, now)
        if item.function.flow.singleton is not None:
            run_id, woken = self._singleton(item, event, now, due=due)
        else:
            run_id, woken = self._start(item, due, now)
        if run_id is not None:
            self._set(item, "debounce", key, run_id=run_id, first_at=now)
        return woken

    def _debounce_due(self, item: FlowItem, rule: Debounce, first_at: int, now: int) -> int:
        due = self._due(item, now) + rule.period_ms
        if rule.timeout_ms is not None:
            due = min(due, first_at + rule.timeout_ms)
        return due

    def _batch(self, item: FlowItem, key: str, now: int) -> str | None:
        """``batch_events``: events join the open batch run of their key (recorded as
        ``batched`` into it) until it holds ``max_size`` (then it is due now) or
        ``timeout`` after its first event (its timer)."""
        rule = item.function.flow.batch_events
        assert rule is not None  # called only for a function that declares it
        open_run, size, _, _ = self._lock(item, "batch", key)
        if open_run is not None and size < rule.max_size and self.d.execute(
                _HOLD_BATCH, (open_run,)).rowcount == 1:
            self.d.execute(_ADD_TO_BATCH, (open_run, size, item.event_id))
            self._skipped(item, "batched", open_run, now)
            if size + 1 < rule.max_size:
                self._set(item, "batch", key, run_id=open_run, value=size + 1, first_at=now)
                return None
            self.d.execute(_BATCH_DUE, (now, now, open_run))
            self.d.execute(sql.DELETE_STEP_TIMER, (open_run, ""))
            self._set(item, "batch", key)
            return cast(str, open_run)
        full = rule.max_size == 1
        run_id, woken = self._start(item, now if full else now + rule.timeout_ms, now)
        self.d.execute(_ADD_TO_BATCH, (run_id, 0, item.event_id))
        if full:
            self._set(item, "batch", key)
        else:
            self._set(item, "batch", key, run_id=run_id, value=1, first_at=now)
        return woken


__all__ = ["FlowAdmission", "FlowItem"]
