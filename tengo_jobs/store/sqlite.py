"""The store contract on SQLite (the embedded default).

SQLite runs in-process, so a round trip costs little; it has no data-modifying CTEs,
and one writer at a time. Each transition is a few short statements inside one
``BEGIN IMMEDIATE`` transaction (or the caller's), which is what makes it atomic and
serializes it against every other writer: no row locks are needed.
"""

from __future__ import annotations

from typing import Any, Iterable, cast

from ..core.events import DEDUPE_WINDOW_MS, Event
from ..core.ops import PendingOp, StepRecord
from ..core.flow_capacity import FUNCTION_SCOPE
from . import slots, statements as sql
from .contract import (Accepted, Acquired, EventStore, RunStore, TimerStore, event_of,
                       event_params, run_from_row, step_from_row, timer_rows)
from .schema import RunRow, RunStatus
from .waits import KeyedLookback

_ACQUIRE = f"{sql.ACQUIRE} RETURNING {sql.RUN_LIST}"


# An event's index key at a data path (the text match_key gives): (path, path, key).
KEYED_LOOKBACK = KeyedLookback(
    sql=("(CASE json_type(\"data\", ?) WHEN 'text' THEN 'string:' "
         "WHEN 'integer' THEN 'number:' END || json_extract(\"data\", ?)) = ?"),
    params=lambda path: (_json_path(path),) * 2)


def _json_path(path: tuple[str, ...]) -> str:
    """``$."a"."b"``: a JSON path SQLite reads whatever the keys hold."""
    return "$" + "".join('."' + p.replace('"', '""') + '"' for p in path)


class SqliteRunStore(RunStore):
    """:class:`~.contract.RunStore` as short transactions."""

    def _acquire(self, run_id: str, params: tuple[Any, ...]) -> Acquired | None:
        with self.d.transaction():
            rows = self.d.execute(_ACQUIRE, params).fetchall()  # ends the statement
            if not rows:
                return None
            run = run_from_row(rows[0])
            steps = [step_from_row(r) for r in self.d.execute(sql.SELECT_STEPS, (run_id,))]
            event_row = (self.d.execute(sql.SELECT_EVENT, (run.event_id,)).fetchone()
                         if run.event_id is not None else None)
            slot = self._take_solo_slot(run)
        return Acquired(run=run, event=event_of(run, event_row), steps=steps,
                        unclean=max(0, run.inflight - 1), slot=slot)

    def _take_solo_slot(self, run: RunRow) -> tuple[str, int] | None:
        """The acquire's own slot (store/slots.py), in its transaction."""
        key = FUNCTION_SCOPE + run.function_id
        limit = self.d.execute(slots.ACQUIRE_SLOT, (key, key, run.id)).fetchall()
        if not limit:
            return None
        self.d.execute(slots.INSERT_SLOT, (key, run.id, run.lease_expires_at))
        self.d.execute(slots.UNWAIT, (run.id,))
        return key, limit[0][0]

    def _checkpoint(self, run_id: str, token: str, now: int, step: StepRecord,
                    progress: bool) -> str | None:
        fence = (run_id, token, now)
        with self.d.transaction():
            if progress and self.d.execute(sql.PROGRESS, fence).rowcount != 1:
                raise self._lost(run_id, token)
            if self.d.execute(sql.CHECKPOINT, step.params() + fence).rowcount != 1:
                raise self._lost(run_id, token)
            return cast("str | None", self.d.execute(sql.CANCEL_REQUESTED, fence).fetchone()[0])

    def _hold_event_arrivals(self, *, starts_runs: bool) -> None:
        """Nothing to do: the suspension's ``BEGIN IMMEDIATE`` transaction is the only
        writer until it commits, so every event is committed before it or stored after it."""

    def _park(self, run: RunRow, token: str, now: int, pending: list[PendingOp],
              status: RunStatus, attempt: int, record: StepRecord | None) -> bool:
        wake_at = min(op.wake_at for op in pending)
        park = (status.value, wake_at, attempt, run.id, token, now, run.signal)
        if self.d.execute(sql.PARK, park).rowcount != 1:
            return False
        records = ([record] if record is not None else []) + [
            op.record(now) for op in pending if op.writes_step]
        self.d.executemany(sql.UPSERT_STEP, [(run.id,) + r.params() for r in records])
        self.d.executemany(sql.UPSERT_TIMER, timer_rows(run.id, pending))
        return True

    def _finish(self, run_id: str, token: str | None, now: int, status: RunStatus,
                output: str | None, error: str | None, record: StepRecord | None) -> bool:
        end = (status.value, output, error, now)
        with self.d.transaction():
            if token is None:
                return cast(bool,
                            self.d.execute(sql.END_UNFINISHED, end + (run_id,)).rowcount == 1)
            if record is not None:
                # the last step first: the trigger that counts the run's end (migration
                # 0012) sums its steps' output bytes
                if self.d.execute(sql.CANCEL_REQUESTED, (run_id, token, now)).fetchone() is None:
                    return False  # the fence: this worker does not hold the lease
                self.d.execute(sql.UPSERT_STEP, (run_id,) + record.params())
            return cast(bool,
                        self.d.execute(sql.END_FENCED, end + (run_id, token, now)).rowcount == 1)


class SqliteEventStore(EventStore):
    """:class:`~.contract.EventStore` in one ``BEGIN IMMEDIATE`` transaction."""

    def accept(self, batch: Iterable[tuple[Event, list[Any]]], now: int) -> Accepted:
        plan = self.admission.plan_batch(batch, now)
        dups: dict[int, str] = {}
        with self.d.transaction():
            for i, event_id, event, _ in plan.events:
                if event.id is None:
                    continue
                if self.d.execute(sql.CLAIM_DEDUPE, (event.id, event_id, now + DEDUPE_WINDOW_MS,
                                                     now)).fetchall():
                    continue
                dups[i] = self.d.execute(sql.ORIGINAL_EVENT, (event.id,)).fetchone()[0]
            kept = [(i, event_id, e, ts) for i, event_id, e, ts in plan.events if i not in dups]
            self.d.executemany(sql.INSERT_EVENT, [event_params(event_id, e, now)
                                                  for _, event_id, e, _ in kept])
            kept_ids = {event_id for _, event_id, _, _ in kept}
            runs = [a for a in plan.admitted if a.event_id in kept_ids]
            self.d.executemany(sql.INSERT_RUN, [a.run_row() for a in runs])
            self.d.executemany(sql.INSERT_EVENT_TIMER,
                               [(a.run_id, a.due) for a in runs if a.enqueued_at is None])
            stored = {i: (e, event_id, ts) for i, event_id, e, ts in kept}
            woken = self.waits.resolve_events(stored, now) if kept else []
            # after the resolution, so that a run's own trigger never cancels it
            index_of = plan.index_of
            for a in runs:
                if a.lifecycle is not None:
                    self.waits.cancellation.register(
                        a.run_id, a.lifecycle,
                        stored[index_of[cast(str, a.event_id)]][0].to_dict(),
                        a.due, now)
            flow_due = self.admission.admit_flow(plan, dups, now)
        return plan.accepted(dups, woken, flow_due)


class SqliteTimerStore(TimerStore):
    def fire_due(self, now: int, limit: int = 1_000) -> list[str]:
        queued = []
        with self.d.transaction():
            for run_id, step_key, kind in self.d.execute(sql.TIMERS_DUE, (now, limit)).fetchall():
                self.d.execute(sql.DELETE_TIMER_DUE, (run_id, step_key, now))
                if kind == "sleep":
                    self.d.execute(sql.SLEPT, (now, run_id, step_key, now))
                rows = self.d.execute(sql.TIMER_FIRED, (now, run_id)).fetchall()
                if rows and rows[0][0] == "queued" and run_id not in queued:
                    queued.append(run_id)
        return queued


__all__ = ["SqliteRunStore", "SqliteEventStore", "SqliteTimerStore"]
