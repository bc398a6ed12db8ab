"""Storing events: the batch, its dedupe claims, the runs it starts, and the waits it resolves.

:meth:`EventStore.accept` is the intake's write, all or nothing:

- each event with an ``id`` claims it in ``tj_event_dedupe`` for 24 h; a repeat stores
  nothing and answers with the original event's id;
- the event rows, and one run per triggered function (due now, or at a future ``ts``
  with a timer);
- the waits the events resolve (``step.wait_for_event``), looked up through their index
  (event name, ``data`` path, key: see :mod:`tengo_jobs.core.expressions`), so the cost
  does not grow with the number of waiting runs: a waiting run's step gets the event,
  and the run is queued.

On PostgreSQL all of it is **one statement** (data-modifying CTEs over arrays, the same
text for any batch size, autocommitted): one round trip. Waits whose condition is more
than the indexed equality come back as candidates, are evaluated with CEL, and the
matches are resolved by a second, short transaction — right after the event is
committed, so a crash between the two leaves those waits to their timeout. SQLite does
the same work as a few in-process statements in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable


from ..core.events import DEDUPE_WINDOW_MS, Event
from ..ids import new_id
from .dialect import Dialect
from .schema import DEDUPE, EVENTS, RUNS, STEPS, TIMERS, WAIT_KEYS, WAITS, RunStatus
from .waits import WaitStore

_EVENT_ROW = ("id", "name", "data", "user", "external_id", "ts", "v", "received_at")
_RUN_ROW = ("id", "app_id", "function_id", "event_id", "status", "attempt", "created_at",
            "wake_at", "enqueued_at", "unique_key", "parent_run_id", "inflight")
_INSERT_EVENT = (f'INSERT INTO "{EVENTS}" (' + ", ".join(f'"{c}"' for c in _EVENT_ROW)
                 + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_RUN = (f'INSERT INTO "{RUNS}" (' + ", ".join(f'"{c}"' for c in _RUN_ROW)
               + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_RUN_ONCE = _INSERT_RUN + ' ON CONFLICT ("unique_key") DO NOTHING'
_INSERT_TIMER = f'INSERT INTO "{TIMERS}" ("run_id", "due_at", "kind") VALUES (?, ?, \'event\')'
_CLAIM = (f'INSERT INTO "{DEDUPE}" ("key", "event_id", "expires_at") VALUES (?, ?, ?) '
          'ON CONFLICT ("key") DO UPDATE SET "event_id" = EXCLUDED."event_id", '
          f'"expires_at" = EXCLUDED."expires_at" WHERE "{DEDUPE}"."expires_at" <= ? '
          'RETURNING "event_id"')
_ORIGINAL = f'SELECT "event_id" FROM "{DEDUPE}" WHERE "key" = ?'

_KEY_OF = ("(SELECT CASE jsonb_typeof(x.v) WHEN 'string' THEN 'string:' || (x.v #>> '{}') "
           "WHEN 'number' THEN 'number:' || (x.v #>> '{}') END "
           "FROM (SELECT kept.data::jsonb #> string_to_array(k.match_path, '.') AS v) x)")
_WAIT_OUTPUT = ("jsonb_build_object('name', kept.name, 'data', kept.data::jsonb, "
                "'id', COALESCE(kept.external_id, kept.id), 'ts', kept.ts) "
                "|| CASE WHEN kept.v IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('v', kept.v) END "
                "|| CASE WHEN kept.\"user\" IS NULL THEN '{}'::jsonb "
                "ELSE jsonb_build_object('user', kept.\"user\"::jsonb) END")
_PG_ACCEPT = f"""
WITH ev AS (
  SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
                       ?::bigint[], ?::text[]) AS t(idx, id, name, data, "user", external_id, ts, v)),
claim AS (
  INSERT INTO "{DEDUPE}" ("key", "event_id", "expires_at")
  SELECT external_id, id, ? FROM ev WHERE external_id IS NOT NULL
  ON CONFLICT ("key") DO UPDATE SET "event_id" = EXCLUDED."event_id",
    "expires_at" = EXCLUDED."expires_at" WHERE "{DEDUPE}"."expires_at" <= ?
  RETURNING "event_id"),
kept AS (SELECT ev.* FROM ev WHERE ev.external_id IS NULL OR ev.id IN (SELECT "event_id" FROM claim)),
ins_e AS (
  INSERT INTO "{EVENTS}" ("id", "name", "data", "user", "external_id", "ts", "v", "received_at")
  SELECT id, name, data, "user", external_id, ts, v, ? FROM kept),
rn AS (
  SELECT * FROM unnest(?::int[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[])
    AS t(event_idx, id, app_id, function_id, wake_at, enqueued_at)),
ins_r AS (
  INSERT INTO "{RUNS}" ("id", "app_id", "function_id", "event_id", "status", "attempt",
                        "created_at", "wake_at", "enqueued_at", "inflight")
  SELECT rn.id, rn.app_id, rn.function_id, kept.id, 'queued', 0, ?, rn.wake_at, rn.enqueued_at, 0
  FROM rn JOIN kept ON kept.idx = rn.event_idx
  RETURNING "id", "wake_at", "enqueued_at"),
ins_t AS (
  INSERT INTO "{TIMERS}" ("run_id", "due_at", "kind")
  SELECT "id", "wake_at", 'event' FROM ins_r WHERE "enqueued_at" IS NULL),
keys AS (
  SELECT kept.idx, kept.name, k.match_path, {_KEY_OF} AS match_key
  FROM kept JOIN "{WAIT_KEYS}" k ON k.event_name = kept.name),
cand AS (
  SELECT w.id, w.run_id, w.step_key, w.exact, keys.idx
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
  UPDATE "{RUNS}" r SET "status" = 'queued', "wake_at" = ?, "enqueued_at" = ?
  FROM del_w WHERE r.id = del_w.run_id AND r.status = 'waiting'
  RETURNING r.id, del_w.step_key, del_w.idx),
ws AS (
  UPDATE "{STEPS}" s SET "status" = 'completed', "output" = ({_WAIT_OUTPUT})::text,
    "ended_at" = ?, "attempts" = 1
  FROM wr JOIN kept ON kept.idx = wr.idx
  WHERE s.run_id = wr.id AND s.key = wr.step_key AND s.status = 'waiting'),
wt AS (DELETE FROM "{TIMERS}" t USING wr WHERE t.run_id = wr.id)
SELECT 'dup', ev.idx, d.event_id FROM ev LEFT JOIN "{DEDUPE}" d ON d."key" = ev.external_id
  WHERE ev.external_id IS NOT NULL AND ev.id NOT IN (SELECT "event_id" FROM claim)
UNION ALL SELECT 'woken', wr.idx, wr.id FROM wr
UNION ALL SELECT 'candidate', cand.idx, cand.id::text FROM cand WHERE NOT cand.exact
"""


@dataclasses.dataclass
class Accepted:
    """What :meth:`EventStore.accept` did: one id per input event (the original id for a
    duplicate), and the runs to wake after commit (due now, and resolved waits)."""

    ids: list[str]
    due_run_ids: list[str]
    woken_run_ids: list[str]


@dataclasses.dataclass
class _Stored:
    event: Event
    event_id: str
    ts: int


class EventStore:
    """Events, their dedupe claims and the runs they start (see the module docstring)."""

    def __init__(self, dialect: Dialect, waits: WaitStore):
        self.d = dialect
        self.db = dialect.db
        self.waits = waits

    # -- the intake ---------------------------------------------------------------------------
    def accept(self, batch: Iterable[tuple[Event, list]], now: int) -> Accepted:
        """Store ``batch`` (each event with the functions it triggers), all or nothing; a
        concurrent producer of the same event id makes one of the two a duplicate."""
        batch = list(batch)
        first_of: dict[str, int] = {}  # a repeated id inside the batch: the first one counts
        same_as: dict[int, int] = {}
        events, runs = [], []
        for i, (event, functions) in enumerate(batch):
            if event.id is not None:
                if event.id in first_of:
                    same_as[i] = first_of[event.id]
                    continue
                first_of[event.id] = i
            event_id = new_id(now)
            ts = event.ts if event.ts is not None else now
            events.append((i, _Stored(event, event_id, ts)))
            due = ts if ts > now else now
            for fn in functions:
                runs.append((i, new_id(now), fn.app_id, fn.id, due, now if due <= now else None))
        if self.d.postgres:
            ids, dups, woken = self._accept_pg(events, runs, now)
        else:
            ids, dups, woken = self._accept_sqlite(events, runs, now)
        for i, original in dups.items():
            ids[i] = original
        out = [ids.get(i) or ids.get(same_as.get(i, -1)) for i in range(len(batch))]
        due_run_ids = [r[1] for r in runs if r[5] is not None and r[0] not in dups]
        return Accepted(ids=out, due_run_ids=due_run_ids, woken_run_ids=woken)

    def _accept_pg(self, events, runs, now):
        columns = list(zip(*[(i, s.event_id, s.event.name,
                              json.dumps(s.event.data, separators=(",", ":")),
                              json.dumps(s.event.user) if s.event.user is not None else None,
                              s.event.id, s.ts, s.event.v) for i, s in events])) or [[]] * 8
        run_columns = list(zip(*runs)) or [[]] * 6
        params = (*[list(c) for c in columns], now + DEDUPE_WINDOW_MS, now, now,
                  *[list(c) for c in run_columns], now, now, now, now, now, now)
        rows = self.d.execute(_PG_ACCEPT, params).fetchall()
        ids = {i: s.event_id for i, s in events}
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
        for idx, original in dups.items():
            if original is None:  # a concurrent producer's claim committed after this
                # statement's snapshot (the claim waited for it): it is there now
                stored = dict(events)[idx]
                dups[idx] = self.d.execute(_ORIGINAL, (stored.event.id,)).fetchone()[0]
        if candidates:
            stored = dict(events)
            woken += self.waits.resolve_candidates(
                {idx: (stored[idx].event, stored[idx].event_id, stored[idx].ts)
                 for idx in candidates}, candidates, now)
        return ids, dups, woken

    def _accept_sqlite(self, events, runs, now):
        ids = {i: s.event_id for i, s in events}
        dups: dict[int, str] = {}
        with self.d.transaction():
            for i, s in events:
                if s.event.id is None:
                    continue
                if self.d.execute(_CLAIM, (s.event.id, s.event_id, now + DEDUPE_WINDOW_MS,
                                           now)).fetchall():
                    continue
                dups[i] = self.d.execute(_ORIGINAL, (s.event.id,)).fetchone()[0]
            kept = [(i, s) for i, s in events if i not in dups]
            self.d.executemany(_INSERT_EVENT, [
                (s.event_id, s.event.name, json.dumps(s.event.data, separators=(",", ":")),
                 json.dumps(s.event.user) if s.event.user is not None else None, s.event.id,
                 s.ts, s.event.v, now) for _, s in kept])
            event_ids = dict(kept)
            run_rows = [(run_id, app_id, fn_id, event_ids[i].event_id, RunStatus.QUEUED.value, 0,
                         now, due, enqueued, None, None, 0)
                        for i, run_id, app_id, fn_id, due, enqueued in runs if i in event_ids]
            self.d.executemany(_INSERT_RUN, run_rows)
            self.d.executemany(_INSERT_TIMER, [(r[0], r[7]) for r in run_rows if r[8] is None])
            woken = self.waits.resolve_events(
                {i: (s.event, s.event_id, s.ts) for i, s in kept}, now) if kept else []
        return ids, dups, woken

    # -- internal runs ------------------------------------------------------------------------
    def start_run(self, fn, event: Event, *, now: int, unique_key: str | None = None,
                  parent_run_id: str | None = None) -> str | None:
        """Store an internal event and one run of ``fn`` for it (cron ticks, failure handlers,
        invoked children); ``None`` when a run with ``unique_key`` exists. Joins the caller's
        transaction, so it commits with the transition that starts it."""
        event_id, run_id = new_id(now), new_id(now)
        with self.d.transaction():
            inserted = self.d.execute(
                _INSERT_RUN_ONCE, (run_id, fn.app_id, fn.id, event_id, RunStatus.QUEUED.value, 0,
                                   now, now, now, unique_key, parent_run_id, 0)).rowcount
            if inserted != 1:
                return None
            self.d.execute(_INSERT_EVENT, (
                event_id, event.name, json.dumps(event.data, separators=(",", ":")),
                json.dumps(event.user) if event.user is not None else None, event.id,
                event.ts if event.ts is not None else now, event.v, now))
        return run_id


__all__ = ["EventStore", "Accepted"]
