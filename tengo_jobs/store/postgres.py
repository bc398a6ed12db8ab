"""The store contract on PostgreSQL (psycopg 3).

PostgreSQL is a network round trip per statement, so each hot transition is one
statement: data-modifying CTEs fed by arrays (``unnest``), autocommitted. Acquire takes
the lease and reads the run, its event and its steps at once; a checkpoint is one
fenced ``INSERT … SELECT`` that does not touch the run row; a suspension parks the run
and writes its steps and timers together; a completion folds in the last step; the
intake stores a batch of events, their runs and the waits they resolve in one
statement. Timers are claimed with ``FOR UPDATE SKIP LOCKED``, so several schedulers
share them.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, cast

from ..core.events import DEDUPE_WINDOW_MS, Event
from ..core.ops import PendingOp, StepRecord
from . import slots, statements as sql
from .admission import BatchPlan
from .contract import (Accepted, Acquired, EventStore, RunStore, TimerStore, event_of,
                       run_from_row, step_from_row)
from .waits import KeyedLookback
from .schema import (DEDUPE, EVENTS, RUN_COLUMNS, RUNS, SLOT_KEYS, SLOT_WAITERS, SLOTS as SLOTS_TABLE,
                     STEP_COLUMNS, STEPS, TIMERS, WAIT_KEYS, WAITS, RunRow, RunStatus)

# The run, its event, the slot it took (store/slots.py: its function's solo function-wide
# key, when under its limit) and its steps.
_ACQUIRE_AND_LOAD = (
    f'WITH r AS ({sql.ACQUIRE} RETURNING *), '
    f'sk AS (UPDATE "{SLOT_KEYS}" k SET "used" = k."used" + 1 FROM r '
    f'WHERE {slots.ACQUIRE_SLOT_WHERE} RETURNING k."scope_key", k."capacity"), '
    f'si AS (INSERT INTO "{SLOTS_TABLE}" ("scope_key", "run_id", "lease_expires_at") '
    'SELECT sk."scope_key", r."id", r."lease_expires_at" FROM sk, r ON CONFLICT DO NOTHING '
    'RETURNING "scope_key", "run_id"), '
    f'sw AS (DELETE FROM "{SLOT_WAITERS}" WHERE "run_id" = (SELECT "run_id" FROM si)) '
    'SELECT ' + ", ".join(f'r."{c}"' for c in RUN_COLUMNS) + ', '
    'e."name", e."data", e."external_id", e."ts", e."v", e."user", '
    'si."scope_key", sk."capacity", '
    + ", ".join(f's."{c}"' for c in STEP_COLUMNS)
    + f' FROM r LEFT JOIN "{EVENTS}" e ON e."id" = r."event_id" '
    'LEFT JOIN si ON true LEFT JOIN sk ON true '
    f'LEFT JOIN "{STEPS}" s ON s."run_id" = r."id"')

_STEP_ARRAYS = ('unnest(?::text[], ?::text[], ?::text[], ?::int[], ?::text[], ?::int[], '
                '?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[]) AS t("key", '
                '"name", "kind", "position", "status", "attempts", "output", "error", '
                '"started_at", "ended_at", "wake_at")')
# Checkpoints answer the run's ``cancel_requested`` (no row: the fence refused).
# (run id, token, now, step values…)
_CHECKPOINT_PROGRESS = (f'WITH fence AS ({sql.PROGRESS} RETURNING "id", "cancel_requested"), '
                        f'w AS ({sql.STEP_INSERT}'
                        'SELECT "id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM fence'
                        + sql.UPSERT_STEP_TAIL + ') SELECT "cancel_requested" FROM fence')
_CHECKPOINT = (f'WITH fence AS (SELECT "id", "cancel_requested" FROM "{RUNS}" {sql.FENCE}), '
               f'w AS ({sql.STEP_INSERT}SELECT "id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM fence'
               + sql.UPSERT_STEP_TAIL + ') SELECT "cancel_requested" FROM fence')
# (park…, step arrays…, timer arrays…)
_PARK = (
    f'WITH fence AS ({sql.PARK} RETURNING "id"), '
    f'st AS ({sql.STEP_INSERT}SELECT fence."id", t.* FROM fence, {_STEP_ARRAYS}'
    f'{sql.UPSERT_STEP_TAIL}), '
    f'tm AS (INSERT INTO "{TIMERS}" ("run_id", "step_key", "due_at", "kind") '
    'SELECT fence."id", t.k, t.d, t.kind FROM fence, '
    'unnest(?::text[], ?::bigint[], ?::text[]) AS t(k, d, kind) '
    'ON CONFLICT ("run_id", "step_key") DO UPDATE SET "due_at" = EXCLUDED."due_at", '
    '"kind" = EXCLUDED."kind") '
    'SELECT count(*) FROM fence')
# (end…, fence…, step values…)
_FINISH_WITH_STEP = (
    f'WITH r AS ({sql.END_FENCED} RETURNING "id"), '
    f'st AS ({sql.STEP_INSERT}SELECT r."id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM r'
    f'{sql.UPSERT_STEP_TAIL}) SELECT count(*) FROM r')


def _step_arrays(records: list[StepRecord]) -> list[list[Any]]:
    columns = list(zip(*[r.params() for r in records])) or [()] * 11
    return [list(c) for c in columns]


# An event's index key at a data path (the text match_key gives): (path, path, key).
KEYED_LOOKBACK = KeyedLookback(
    sql=("(CASE jsonb_typeof(\"data\"::jsonb #> ?::text[]) "
         "WHEN 'string' THEN 'string:' WHEN 'number' THEN 'number:' END "
         "|| (\"data\"::jsonb #>> ?::text[])) = ?"),
    params=lambda path: (list(path), list(path)))


class PgRunStore(RunStore):
    """:class:`~.contract.RunStore` in single statements."""

    def _acquire(self, run_id: str, params: tuple[Any, ...]) -> Acquired | None:
        n = len(RUN_COLUMNS)
        rows = self.d.execute(_ACQUIRE_AND_LOAD, params).fetchall()
        if not rows:
            return None
        run = run_from_row(rows[0][:n])
        event = event_of(run, rows[0][n:n + 6])
        slot_key, limit = rows[0][n + 6:n + 8]
        steps = [step_from_row(r[n + 8:]) for r in rows if r[n + 8] is not None]
        return Acquired(run=run, event=event, steps=steps, unclean=max(0, run.inflight - 1),
                        slot=(slot_key, limit) if slot_key is not None else None)

    def _checkpoint(self, run_id: str, token: str, now: int, step: StepRecord,
                    progress: bool) -> str | None:
        fence = (run_id, token, now)
        row = self.d.execute(_CHECKPOINT_PROGRESS if progress else _CHECKPOINT,
                             fence + step.params()).fetchone()
        if row is None:
            raise self._lost(run_id, token)
        return cast("str | None", row[0])

    def _hold_event_arrivals(self, *, starts_runs: bool) -> None:
        """``LOCK TABLE tj_events IN SHARE MODE``: waits for every transaction inserting
        events (ROW EXCLUSIVE) to commit, and makes the next ones wait for this one. Under
        READ COMMITTED a statement takes its snapshot after its table locks, so an intake
        statement that waited here sees the wait row, and the look-back (a statement after
        the lock) sees every event stored before. SHARE mode does not conflict with
        itself, so suspensions do not wait on each other — except one that also stores
        events (an invoked child's): it takes SHARE ROW EXCLUSIVE, which conflicts with
        itself, since two SHARE holders that both wanted ROW EXCLUSIVE would deadlock.
        Taken before the run row, so the order is events → runs → steps → timers → waits
        here, and events → waits → runs → steps → timers in the intake: never a cycle."""
        mode = "SHARE ROW EXCLUSIVE" if starts_runs else "SHARE"
        self.d.execute(f'LOCK TABLE "{EVENTS}" IN {mode} MODE')

    def _park(self, run: RunRow, token: str, now: int, pending: list[PendingOp],
              status: RunStatus, attempt: int, record: StepRecord | None) -> bool:
        records = ([record] if record is not None else []) + [
            op.record(now) for op in pending if op.writes_step]
        timers = [(op.key, op.wake_at, op.timer.value) for op in pending]
        wake_at = min(op.wake_at for op in pending)
        park = (status.value, wake_at, attempt, run.id, token, now, run.signal)
        params = park + tuple(_step_arrays(records)) + tuple(
            [list(c) for c in zip(*timers)] if timers else [[], [], []])
        return cast(bool, self.d.execute(_PARK, params).fetchone()[0] == 1)

    def _finish(self, run_id: str, token: str | None, now: int, status: RunStatus,
                output: str | None, error: str | None, record: StepRecord | None) -> bool:
        end = (status.value, output, error, now)
        if token is None:
            return cast(bool, self.d.execute(sql.END_UNFINISHED, end + (run_id,)).rowcount == 1)
        if record is None:
            return cast(bool,
                        self.d.execute(sql.END_FENCED, end + (run_id, token, now)).rowcount == 1)
        return cast(bool, self.d.execute(_FINISH_WITH_STEP,
                                         end + (run_id, token, now) + record.params()
                                         ).fetchone()[0] == 1)


_KEY_OF = ("(SELECT CASE jsonb_typeof(x.v) WHEN 'string' THEN 'string:' || (x.v #>> '{}') "
           "WHEN 'number' THEN 'number:' || (x.v #>> '{}') END "
           "FROM (SELECT kept.data::jsonb #> string_to_array(k.match_path, '.') AS v) x)")
_WAIT_OUTPUT = ("jsonb_build_object('name', kept.name, 'data', kept.data::jsonb, "
                "'id', COALESCE(kept.external_id, kept.id), 'ts', kept.ts) "
                "|| CASE WHEN kept.v IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('v', kept.v) END "
                "|| CASE WHEN kept.\"user\" IS NULL THEN '{}'::jsonb "
                "ELSE jsonb_build_object('user', kept.\"user\"::jsonb) END")
_PARKED = "r.status IN ('sleeping', 'waiting')"
# Parameters: event arrays (9), dedupe expiry, now, received at, run arrays (6), created at,
# now, now (wait expiry, twice), now (wake at), now (enqueued at), now (step ended at).
_ACCEPT = f"""
WITH ev AS (
  SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
                       ?::bigint[], ?::text[], ?::text[])
    AS t(idx, id, name, data, "user", external_id, ts, v, traceparent)),
claim AS (
  INSERT INTO "{DEDUPE}" ("key", "event_id", "expires_at")
  SELECT external_id, id, ? FROM ev WHERE external_id IS NOT NULL
  ON CONFLICT ("key") DO UPDATE SET "event_id" = EXCLUDED."event_id",
    "expires_at" = EXCLUDED."expires_at" WHERE "{DEDUPE}"."expires_at" <= ?
  RETURNING "event_id"),
kept AS (SELECT ev.* FROM ev WHERE ev.external_id IS NULL OR ev.id IN (SELECT "event_id" FROM claim)),
ins_e AS (
  INSERT INTO "{EVENTS}" ("id", "name", "data", "user", "external_id", "ts", "v", "received_at",
                          "traceparent")
  SELECT id, name, data, "user", external_id, ts, v, ?, traceparent FROM kept),
rn AS (
  SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[])
    AS t(event_idx, id, app_id, function_id, wake_at, enqueued_at)),
ins_r AS (
  INSERT INTO "{RUNS}" ("id", "app_id", "function_id", "event_id", "status", "attempt",
                        "created_at", "wake_at", "enqueued_at", "inflight", "traceparent")
  SELECT rn.id, rn.app_id, rn.function_id, kept.id, 'queued', 0, ?, rn.wake_at, rn.enqueued_at, 0,
    kept.traceparent
  FROM rn JOIN kept ON kept.idx = rn.event_idx
  RETURNING "id", "wake_at", "enqueued_at"),
ins_t AS (
  INSERT INTO "{TIMERS}" ("run_id", "step_key", "due_at", "kind")
  SELECT "id", '', "wake_at", 'event' FROM ins_r WHERE "enqueued_at" IS NULL),
keys AS (
  SELECT kept.idx, kept.name, k.match_path, {_KEY_OF} AS match_key
  FROM kept JOIN "{WAIT_KEYS}" k ON k.event_name = kept.name),
cand AS (
  SELECT w.id, w.run_id, w.step_key, w.exact AND w.kind = 'step' AS exact, keys.idx
  FROM keys JOIN "{WAITS}" w ON w.event_name = keys.name AND w.match_path = keys.match_path
    AND w.match_key = keys.match_key AND w.expires_at > ?
  UNION ALL
  SELECT w.id, w.run_id, w.step_key, FALSE, kept.idx
  FROM kept JOIN "{WAITS}" w ON w.event_name = kept.name AND w.match_path IS NULL
    AND w.expires_at > ?),
pick AS (SELECT DISTINCT ON (id) * FROM cand WHERE exact ORDER BY id, idx),
del_w AS (
  DELETE FROM "{WAITS}" w USING pick WHERE w.id = pick.id
  RETURNING w.run_id, w.step_key, pick.idx),
wr AS (
  UPDATE "{RUNS}" r SET "signal" = r."signal" + 1,
    "status" = CASE WHEN {_PARKED} THEN 'queued' ELSE r.status END,
    "wake_at" = CASE WHEN {_PARKED} THEN ? ELSE r.wake_at END,
    "enqueued_at" = CASE WHEN {_PARKED} THEN ? ELSE r.enqueued_at END
  FROM del_w WHERE r.id = del_w.run_id AND r.status NOT IN ({sql.FINAL})
  RETURNING r.id, r.status),
ws AS (
  UPDATE "{STEPS}" s SET "status" = 'completed', "output" = ({_WAIT_OUTPUT})::text,
    "ended_at" = ?, "attempts" = 1
  FROM del_w JOIN kept ON kept.idx = del_w.idx
  WHERE s.run_id = del_w.run_id AND s.key = del_w.step_key AND s.status = 'waiting'
    AND del_w.run_id IN (SELECT id FROM wr)),
wt AS (DELETE FROM "{TIMERS}" t USING del_w
       WHERE t.run_id = del_w.run_id AND t.step_key = del_w.step_key
         AND del_w.run_id IN (SELECT id FROM wr))
SELECT 'dup', ev.idx, d.event_id FROM ev LEFT JOIN "{DEDUPE}" d ON d."key" = ev.external_id
  WHERE ev.external_id IS NOT NULL AND ev.id NOT IN (SELECT "event_id" FROM claim)
UNION ALL SELECT 'woken', 0, wr.id FROM wr WHERE wr.status = 'queued'
UNION ALL SELECT 'candidate', cand.idx, cand.id::text FROM cand WHERE NOT cand.exact
"""


class PgEventStore(EventStore):
    """:class:`~.contract.EventStore`: a batch in one autocommitted statement. Waits whose
    condition is more than the indexed equality come back as candidates, are evaluated with
    CEL, and the matches are resolved by a second, short transaction — right after the
    events are committed, so a crash between the two leaves those waits to their timeout."""

    def accept(self, batch: Iterable[tuple[Event, list[Any]]], now: int) -> Accepted:
        plan = self.admission.plan_batch(batch, now)
        if not plan.lifecycle and not plan.flow:
            return self._accept(plan, now)
        # Runs with cancel matchers or deadlines, or functions with admission rules: more
        # statements in one transaction with the first (the common path pays nothing).
        with self.db.atomic():
            return self._accept(plan, now)

    def _accept(self, plan: BatchPlan, now: int) -> Accepted:
        events, admitted = plan.events, plan.admitted
        columns: list[Any] = list(zip(*[
            (i, event_id, e.name, json.dumps(e.data, separators=(",", ":")),
             json.dumps(e.user) if e.user is not None else None, e.id, ts, e.v, e.traceparent)
            for i, event_id, e, ts in events])) or [[]] * 9
        runs = [(plan.index_of[cast(str, a.event_id)], a.run_id, a.start.app_id,
                 a.start.function_id, a.due, a.enqueued_at) for a in admitted]
        run_columns: list[Any] = list(zip(*runs)) or [[]] * 6
        params = (*[list(c) for c in columns], now + DEDUPE_WINDOW_MS, now, now,
                  *[list(c) for c in run_columns], now, now, now, now, now, now)
        rows = self.d.execute(_ACCEPT, params).fetchall()
        dups: dict[int, str] = {}
        woken: list[str] = []
        candidates: dict[int, list[int]] = {}
        for kind, idx, value in rows:
            if kind == "dup":
                dups[idx] = value
            elif kind == "woken":
                woken.append(value)
            else:
                candidates.setdefault(idx, []).append(int(value))
        stored = {i: (e, event_id, ts) for i, event_id, e, ts in events}
        for idx, original in dups.items():
            if original is None:  # a concurrent producer's claim committed after this
                # statement's snapshot (the claim waited for it): it is there now
                dups[idx] = self.d.execute(sql.ORIGINAL_EVENT, (stored[idx][0].id,)).fetchone()[0]
        for a in admitted:
            idx = plan.index_of[cast(str, a.event_id)]
            if a.lifecycle is not None and idx not in dups:
                self.waits.cancellation.register(a.run_id, a.lifecycle, stored[idx][0].to_dict(),
                                                 a.due, now)
        if candidates:
            woken += self.waits.resolve_candidates(
                {idx: stored[idx] for idx in candidates}, candidates, now)
        flow_due = self.admission.admit_flow(plan, dups, now) if plan.flow else []
        return plan.accepted(dups, woken, flow_due)


_FIRE = f"""
WITH due AS (SELECT "run_id" FROM "{TIMERS}" WHERE "due_at" <= ? AND "kind" <> 'deadline'
             ORDER BY "due_at" LIMIT ?),
locked AS (
  SELECT r."id" FROM "{RUNS}" r WHERE r."id" IN (SELECT "run_id" FROM due)
  FOR UPDATE OF r SKIP LOCKED),
t AS (DELETE FROM "{TIMERS}" WHERE "run_id" IN (SELECT "id" FROM locked) AND "due_at" <= ?
        AND "kind" <> 'deadline'
      RETURNING "run_id", "step_key", "kind"),
s AS (UPDATE "{STEPS}" st SET "status" = 'completed', "ended_at" = ?, "attempts" = 1
      FROM t WHERE st."run_id" = t."run_id" AND st."key" = t."step_key" AND t."kind" = 'sleep'
        AND st."status" = 'sleeping' AND st."wake_at" <= ?),
q AS (UPDATE "{RUNS}" SET "signal" = "signal" + 1, "enqueued_at" = ?,
        "status" = CASE WHEN "status" IN ('sleeping', 'waiting') THEN 'queued' ELSE "status" END
      WHERE "id" IN (SELECT "run_id" FROM t) AND "status" NOT IN ({sql.FINAL})
      RETURNING "id", "status")
SELECT "id" FROM q WHERE "status" = 'queued'
"""


class PgTimerStore(TimerStore):
    def fire_due(self, now: int, limit: int = 1_000) -> list[str]:
        return [r for (r,) in self.d.execute(_FIRE, (now, limit, now, now, now, now))]


__all__ = ["PgRunStore", "PgEventStore", "PgTimerStore"]


# -- concurrency slot counters, one statement each (see store/slots.py) ----------------------------
# (cap, key, cap, key, holder, holder, expires, holder): the counter goes up when under the
# limit, the slot row is written and the holder's waiter row goes, or nothing happens.
_COUNT_IN = (f'WITH k AS ({slots.COUNT_IN} RETURNING "scope_key"), '
             f'ins AS (INSERT INTO "{SLOTS_TABLE}" ("scope_key", "run_id", "lease_expires_at") '
             'SELECT "scope_key", ?, ? FROM k ON CONFLICT DO NOTHING RETURNING 1), '
             f'w AS ({slots.UNWAIT} AND EXISTS (SELECT 1 FROM ins)) '
             'SELECT count(*) FROM ins')
# (key, holder, cap): the slot row goes and its key's counter down with it; the key's flag.
# Committed without waiting for the WAL flush (``synchronous_commit`` off for this statement's
# transaction only), so the key row's lock is not held through an fsync: a give-back lost in
# a server crash leaves a slot that expires with its lease (the sweeper frees it), and any
# later synchronous commit (the next take) flushes it first: the counter never undercounts.
# Inside a caller's transaction the setting would hold for all of it: there, the plain one.
_COUNT_OUT_SYNC = (f'WITH d AS ({slots.DROP_SLOT} RETURNING "scope_key") '
                   f'UPDATE "{SLOT_KEYS}" k SET {slots.COUNT_DOWN} FROM d '
                   'WHERE k."scope_key" = d."scope_key" RETURNING k."waiting"')
_COUNT_OUT = _COUNT_OUT_SYNC.replace(
    'RETURNING "scope_key")',
    'AND set_config(\'synchronous_commit\', \'off\', true) IS NOT NULL RETURNING "scope_key")', 1)


class PgSlotStore(slots.SlotStore):
    """:class:`~.slots.SlotStore` whose counter transitions are single autocommitted
    statements: the key row is locked only while the statement runs."""

    def _count_in(self, scope_key: str, capacity: int, holder: str, expires_at: int) -> bool:
        return cast(bool, self.d.execute(_COUNT_IN, (capacity, scope_key, capacity, scope_key,
                                                     holder, holder, expires_at, holder)
                                         ).fetchone()[0] == 1)

    def _count_out(self, scope_key: str, capacity: int, holder: str) -> int | None:
        statement = _COUNT_OUT_SYNC if self.db.in_transaction() else _COUNT_OUT
        row = self.d.execute(statement, (scope_key, holder, capacity)).fetchone()
        return row[0] if row else None
