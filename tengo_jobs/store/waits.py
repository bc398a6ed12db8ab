"""Runs waiting for an event (``step.wait_for_event``): registering, matching, resolving.

A waiting run holds no worker: its wait row names the event, the CEL condition, and
the condition's index (:func:`tengo_jobs.core.expressions.match_plan`): the ``data``
path to read in incoming events and the key the waiting run's trigger holds there. The
intake finds candidates by (event name, path, key) — an index lookup, whatever the
number of waiting runs — plus the waits whose conditions have no indexable equality
(evaluated one by one, for that event name only). A wait is resolved once: deleting
its row is the claim, so two producers never both resolve it.

A ``cancel_on`` matcher is a row of the same table (``kind = 'cancel'``, key
``cancel:<n>``), found the same way; a match cancels its run (:mod:`.cancellation`).

**Looking back.** A wait also matches the events received *before* its row was written:
every event of its name received at or after the run's previous durable point (see
:meth:`WaitStore.lookback`), except the run's trigger and the events earlier waits of the
run consumed. The engine looks back when the step is reached (a match completes the step
at once) and again inside the suspension that writes the wait row, where no event can
slip between the two (the store contract's ``suspend``; ``docs/semantics.md``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Callable, Iterable, cast

from ..core.events import Event
from ..core.expressions import lookup, match_key, match_plan, matches
from .cancellation import Cancellation, cancelled_error
from .dialect import Dialect
from . import statements as sql
from .schema import EVENTS, RUNS, WAIT_KEYS, WAITS

log = logging.getLogger(__name__)

_REGISTER = (f'INSERT INTO "{WAITS}" ("run_id", "step_key", "event_name", "expression", '
             '"match_event", "expires_at", "created_at", "match_path", "match_key", "exact", '
             '"kind") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT ("run_id", "step_key") '
             'DO UPDATE SET "expires_at" = EXCLUDED."expires_at" RETURNING "id"')
_REGISTER_KEY = (f'INSERT INTO "{WAIT_KEYS}" ("event_name", "match_path") VALUES (?, ?) '
                 'ON CONFLICT DO NOTHING')
_PATHS = f'SELECT "match_path" FROM "{WAIT_KEYS}" WHERE "event_name" = ?'
_COLUMNS = '"id", "run_id", "step_key", "expression", "match_event", "exact", "kind"'
_BY_KEY = (f'SELECT {_COLUMNS} FROM "{WAITS}" WHERE "event_name" = ? AND "match_path" = ? '
           'AND "match_key" = ? AND "expires_at" > ?')
_UNINDEXED = (f'SELECT {_COLUMNS} FROM "{WAITS}" WHERE "event_name" = ? '
              'AND "match_path" IS NULL AND "expires_at" > ?')
_CLAIM = f'DELETE FROM "{WAITS}" WHERE "id" = ?'
# Where a run's look-back may start: when it was created, and when its trigger arrived.
_RUN_FLOOR = (f'SELECT r."created_at", r."event_id", e."received_at" FROM "{RUNS}" r '
              f'LEFT JOIN "{EVENTS}" e ON e."id" = r."event_id" WHERE r."id" = ?')
# Events of a name received since a point, a page at a time in arrival order:
# (name, received at, received at, after id, limit).
_RECEIVED_SINCE = (f'SELECT "id", "data", "external_id", "ts", "v", "user", "received_at" '
                   f'FROM "{EVENTS}" WHERE "name" = ? AND ("received_at" > ? OR '
                   '("received_at" = ? AND "id" > ?)){} ORDER BY "received_at", "id" LIMIT ?')


@dataclasses.dataclass(frozen=True)
class KeyedLookback:
    """How one database reads an event's index key (:func:`match_key`'s text) at a ``data``
    path in SQL, so a look-back evaluates the condition only on events with the waiting
    run's key: ``sql`` is a condition ending in ``= ?``; ``params(path)`` its parameters
    before the key."""

    sql: str
    params: Callable[[tuple[str, ...]], tuple[Any, ...]]
LOOKBACK_PAGE = 500


def wait_output(event: Event, event_id: str, ts: int) -> dict[str, Any]:
    """What ``step.wait_for_event`` returns for a matched event, and what its condition sees
    as ``async`` (the PostgreSQL intake statement builds the same object)."""
    out = {"name": event.name, "data": event.data, "id": event.id or event_id, "ts": ts}
    if event.v is not None:
        out["v"] = event.v
    if event.user is not None:
        out["user"] = event.user
    return out


@dataclasses.dataclass(frozen=True)
class Match:
    """An event that resolves a wait: the wait row, and the event as the step returns it."""

    wait_id: int
    run_id: str
    step_key: str
    output: str
    kind: str = "step"  # or "cancel": a cancel_on matcher
    event: str = ""  # the event's name and id, for a cancellation's reason


class WaitStore:
    def __init__(self, dialect: Dialect, keyed: KeyedLookback):
        self.d = dialect
        self.cancellation = Cancellation(dialect, self)
        self._since = _RECEIVED_SINCE.format("")
        self._since_keyed = _RECEIVED_SINCE.format(" AND " + keyed.sql)
        self._key_params = keyed.params

    def register(self, *, run_id: str, step_key: str, event_name: str, expression: str | None,
                 trigger: dict[str, Any], expires_at: int, now: int, kind: str = "step") -> int:
        """Record that ``run_id`` waits at ``step_key`` (inside the suspend transaction), or
        with ``kind='cancel'`` listens for an event that cancels it (inside the start's);
        returns the wait row's id."""
        plan = match_plan(expression)
        key = match_key(lookup(trigger.get("data"), plan.event_path)) if plan else None
        path = ".".join(plan.async_path) if plan and key is not None else None
        exact = bool(plan and plan.exact and key is not None)
        if path is not None:
            self.d.execute(_REGISTER_KEY, (event_name, path))
        return cast(int, self.d.execute(_REGISTER, (run_id, step_key, event_name, expression,
                                                    json.dumps(trigger, separators=(",", ":")),
                                                    expires_at, now, path, key, exact,
                                                    kind)).fetchone()[0])

    def clear(self, run_id: str, step_key: str) -> None:
        self.d.execute(f'DELETE FROM "{WAITS}" WHERE "run_id" = ? AND "step_key" = ?',
                       (run_id, step_key))

    # -- looking back ------------------------------------------------------------------------
    def lookback(self, run_id: str, *, event_name: str, expression: str | None,
                 trigger: dict[str, Any], since: int | None, seen: Iterable[str] = ()) -> str | None:
        """The first event (in arrival order) named ``event_name`` that satisfies
        ``expression`` among those received at or after the run's previous durable point —
        ``since`` (its latest step checkpoint), or its trigger's arrival when ``None``, and
        never before the run was created (a replay or a delayed start does not see what
        came before it) — except the run's trigger and the events whose ids are in ``seen``
        (consumed by earlier waits of the run). Returns the event as the step returns it
        (JSON), or ``None``."""
        floor = self.d.execute(_RUN_FLOOR, (run_id,)).fetchone()
        if floor is None:
            return None
        created_at, trigger_id, received_at = floor
        start = since if since is not None else received_at
        start = created_at if start is None else max(start, created_at)
        seen = set(seen)
        # the condition's indexable equality narrows the events read to the run's key
        plan = match_plan(expression)
        key = match_key(lookup(trigger.get("data"), plan.event_path)) if plan else None
        statement, keyed = ((self._since_keyed, self._key_params(plan.async_path) + (key,))
                            if key is not None and plan is not None else (self._since, ()))
        at, after = start, ""
        while True:
            rows = self.d.execute(statement, (event_name, at, at, after, *keyed,
                                              LOOKBACK_PAGE)).fetchall()
            for event_id, data, external_id, ts, v, user, received in rows:
                if event_id == trigger_id:
                    continue
                event = Event(name=event_name, data=json.loads(data), id=external_id, ts=ts,
                              v=v, user=json.loads(user) if user else None)
                output = wait_output(event, event_id, ts)
                if output["id"] not in seen and (plan is not None and plan.exact and key is not None
                                                 or matches(expression, trigger, output)):
                    return json.dumps(output, separators=(",", ":"))
            if len(rows) < LOOKBACK_PAGE:
                return None
            at, after = rows[-1][6], rows[-1][0]

    def resolve_registered(self, wait_id: int, run_id: str, step_key: str, output: str,
                           now: int) -> list[str]:
        """Resolve the wait row ``wait_id`` with ``output`` (an event the look-back found),
        claiming it as the intake does; returns the queued run."""
        return self._resolve([Match(wait_id=wait_id, run_id=run_id, step_key=step_key,
                                    output=output)], now)

    # -- matching -----------------------------------------------------------------------------
    def resolve_events(self, events: dict[int, tuple[Event, str, int]], now: int) -> list[str]:
        """Resolve the waits that newly stored ``events`` (``{index: (event, id, ts)}``, in
        batch order) match; call inside the intake's transaction. Returns the woken runs."""
        paths: dict[str, list[str]] = {}
        found: dict[int, tuple[Any, ...]] = {}  # wait id -> (first matching index, row)
        for idx in sorted(events):
            event = events[idx][0]
            if event.name not in paths:
                paths[event.name] = [p for (p,) in self.d.execute(_PATHS, (event.name,))]
            rows = []
            for path in paths[event.name]:
                key = match_key(lookup(event.data, tuple(path.split("."))))
                if key is not None:
                    rows += self.d.execute(_BY_KEY, (event.name, path, key, now)).fetchall()
            rows += self.d.execute(_UNINDEXED, (event.name, now)).fetchall()
            for row in rows:
                if row[0] not in found and self._satisfied(row, event, events[idx]):
                    found[row[0]] = (idx, row)
        return self._resolve([self._match(row, events[idx]) for idx, row in found.values()], now)

    def resolve_candidates(self, events: dict[int, tuple[Event, str, int]],
                           candidates: dict[int, list[int]], now: int) -> list[str]:
        """Evaluate the conditions of candidate waits (ids by event index) the PostgreSQL
        intake could not decide by key alone, and resolve the matches (own transaction)."""
        ids = sorted({w for ws in candidates.values() for w in ws})
        marks = ", ".join("?" * len(ids))
        rows = {r[0]: r for r in self.d.execute(
            f'SELECT {_COLUMNS} FROM "{WAITS}" WHERE "id" IN ({marks})', tuple(ids))}
        found: dict[int, Match] = {}
        for idx in sorted(candidates):
            for wait_id in candidates[idx]:
                row = rows.get(wait_id)
                if row is not None and wait_id not in found and self._satisfied(
                        row, events[idx][0], events[idx]):
                    found[wait_id] = self._match(row, events[idx])
        if not found:
            return []
        with self.d.transaction():
            return self._resolve(list(found.values()), now)

    @staticmethod
    def _satisfied(row: tuple[Any, ...], event: Event, stored: tuple[Event, str, int]) -> bool:
        _, _, _, expression, trigger, exact, _ = row
        if exact or not expression:
            return True
        return matches(expression, json.loads(trigger), wait_output(*stored))

    @staticmethod
    def _match(row: tuple[Any, ...], stored: tuple[Event, str, int]) -> Match:
        output = wait_output(*stored)
        return Match(wait_id=row[0], run_id=row[1], step_key=row[2],
                     output=json.dumps(output, separators=(",", ":")), kind=row[6],
                     event=f"{output['name']} {output['id']}")

    def _resolve(self, found: list[Match], now: int) -> list[str]:
        """Claim each wait (delete its row), then nudge its run (its signal moves; a parked
        run is queued), give its step the event and drop that step's timeout (waits, runs,
        steps, timers: the lock order of every transition). Returns the queued runs."""
        woken = []
        for match in found:
            if match.kind == "cancel":  # a cancel_on matcher: the run is cancelled
                done = self.cancellation.cancel(
                    match.run_id, now, cancelled_error(f"cancelled by event {match.event}"))
                if done.woken and done.woken not in woken:
                    woken.append(done.woken)
                continue
            if self.d.execute(_CLAIM, (match.wait_id,)).rowcount != 1:
                continue  # resolved by a concurrent producer
            rows = self.d.execute(sql.NUDGE_FOR_STEP, (now, now, match.run_id, match.run_id,
                                                       match.step_key)).fetchall()
            if not rows:
                continue  # the run ended, or the step no longer waits (timed out)
            self.d.execute(sql.RESOLVE_STEP, ("completed", match.output, None, now,
                                              match.run_id, match.step_key))
            self.d.execute(sql.DELETE_STEP_TIMER, (match.run_id, match.step_key))
            if rows[0][0] == "queued" and match.run_id not in woken:
                woken.append(match.run_id)
        return woken
