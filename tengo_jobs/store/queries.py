"""Named reads for the REST API, the dashboard, the CLI and /metrics.

Everything returns plain dicts in the shapes DESIGN.md gives for the HTTP API (times
as ISO 8601 UTC, JSON columns decoded). Every aggregate is bounded: lists are pages of
at most :data:`MAX_LIMIT` rows on an index, run counts look at a window of recent runs
(:data:`STATS_WINDOW_MS`) and stop counting at :data:`COUNT_CAP`, durations are a
sample of the latest finished runs — so a page or a scrape costs the same with ten
million runs in the table as with ten thousand.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator, cast

import peewee as pw

from ..core.events import Event
from ..durations import ms_to_iso
from ..errors import EventNotFoundError, RunNotFoundError, ValidationError
from .contract import FAILURE_PREFIX, INVOKE_PREFIX, event_of
from .dialect import Dialect
from .statements import PAUSED_ROWS, RUNNABLE, SELECT_EVENT
from .schema import (COUNTERS, EVENTS, FINAL_RUN_STATUSES, RUN_STATUSES, RUNS, SKIPS, SLOT_KEYS,
                     SLOT_WAITERS, SLOTS, STEP_ATTEMPTS, STEPS, THROTTLES, WAITS, EventRow,
                     RunRow, RunStatus, SkipRow, StepRow)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_REPLAYS_LISTED = 100  # an original's replays shown in its detail
DURATION_SAMPLE = 1_000  # finished runs per function behind the p50/p95 durations
STATS_WINDOW_MS = 24 * 3_600_000  # run counts cover runs created in the last 24 hours
COUNT_CAP = 100_000  # a count stops here (reported as at least this many)


# -- serialization ------------------------------------------------------------------------
def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def step_dict(step: StepRow) -> dict[str, Any]:
    return {
        "key": step.key,
        "name": step.name,
        "kind": step.kind.value,
        "status": step.status.value,
        "attempts": step.attempts,
        "output": _json(step.output),
        "error": _json(step.error),
        "started_at": ms_to_iso(step.started_at),
        "ended_at": ms_to_iso(step.ended_at),
    }


def run_dict(run: RunRow, steps: list[StepRow] | None = None) -> dict[str, Any]:
    body = {
        "id": run.id,
        "function_id": run.function_id,
        "app_id": run.app_id,
        "event_id": run.event_id,
        "status": run.status.value,
        "output": _json(run.output),
        "error": _json(run.error),
        "attempt": run.attempt,
        "created_at": ms_to_iso(run.created_at),
        "started_at": ms_to_iso(run.started_at),
        "ended_at": ms_to_iso(run.ended_at),
        "replay_of": run.replay_of,
        "replay_note": _json(run.replay_note),
    }
    if steps is not None:
        body["steps"] = [step_dict(s) for s in steps]
    return body


def event_dict(row: EventRow, runs: list[RunRow] | None = None) -> dict[str, Any]:
    body = {
        "id": row.id,
        "name": row.name,
        "data": _json(row.data),
        "user": _json(row.user),
        "external_id": row.external_id,
        "ts": row.ts,
        "v": row.v,
        "received_at": ms_to_iso(row.received_at),
    }
    if runs is not None:
        body["runs"] = [run_dict(r) for r in runs]
    return body


FOLDED = {"debounced", "batched"}


def _skip_dict(row: Any) -> dict[str, Any]:
    folded = row.reason in FOLDED
    return {"function_id": row.function_id, "status": row.reason if folded else "skipped",
            "reason": None if folded else row.reason, "run_id": row.run_id,
            "at": ms_to_iso(row.at)}


# -- argument checks ----------------------------------------------------------------------
def check_limit(limit: Any) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}",
                              field="limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {value}",
                              field="limit")
    return value


def check_status(status: Any) -> str | None:
    if status is None:
        return None
    if status not in RUN_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}",
                              field="status")
    return cast(str, status)


def check_cursor(cursor: Any) -> str | None:
    if cursor in (None, ""):
        return None
    if not isinstance(cursor, str) or len(cursor) != 26 or not cursor.isalnum():
        raise ValidationError("cursor must be the next_cursor of a previous page", field="cursor")
    return cursor.upper()


def _percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Queries:
    """The reads of the module docstring, on one database."""

    def __init__(self, dialect: Dialect):
        self.d = dialect
        self.db = dialect.db

    @staticmethod
    def _page(query: Any, model: Any, limit: int,
              cursor: str | None) -> tuple[list[Any], str | None]:
        """Newest first, keyed on the sortable id; ``next_cursor`` is the last id when more remain."""
        if cursor:
            query = query.where(model.id < cursor)
        rows = list(query.order_by(model.id.desc()).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    # -- runs ---------------------------------------------------------------------------------
    def list_runs(self, *, status: str | None = None, function_id: str | None = None,
                  since: int | None = None, until: int | None = None,
                  event_id: str | None = None, limit: int = DEFAULT_LIMIT,
                  cursor: str | None = None) -> dict[str, Any]:
        """Runs newest first, filtered by status, function, event and creation time ``[since, until)``."""
        query = RunRow.select()
        if check_status(status) is not None:
            query = query.where(RunRow.status == status)
        if function_id:
            query = query.where(RunRow.function_id == function_id)
        if event_id:
            query = query.where(RunRow.event_id == event_id)
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if until is not None:
            query = query.where(RunRow.created_at < until)
        rows, next_cursor = self._page(query, RunRow, check_limit(limit), check_cursor(cursor))
        return {"data": [run_dict(r) for r in rows], "next_cursor": next_cursor}

    def run(self, run_id: str) -> RunRow:
        run = RunRow.get_or_none(RunRow.id == run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        return run

    def steps(self, run_id: str) -> list[StepRow]:
        """A run's steps in execution order."""
        return list(StepRow.select().where(StepRow.run_id == run_id).order_by(StepRow.position))

    def attempts_log(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """A run's failed step attempts (``tj_step_attempts``) by step key, in attempt
        order: ``{"attempt", "started_at", "ended_at", "retry_at", "error"}`` each (times
        ISO 8601, ``None`` when unknown: an execution that died)."""
        logs: dict[str, list[dict[str, Any]]] = {}
        for key, attempt, started, ended, retry_at, error in self.d.execute(
                f'SELECT "step_key", "attempt", "started_at", "ended_at", "retry_at", "error" '
                f'FROM "{STEP_ATTEMPTS}" WHERE "run_id" = ? ORDER BY "step_key", "attempt"',
                (run_id,)):
            logs.setdefault(key, []).append({
                "attempt": attempt, "started_at": ms_to_iso(started),
                "ended_at": ms_to_iso(ended), "retry_at": ms_to_iso(retry_at),
                "error": _json(error)})
        return logs

    def get_run(self, run_id: str, *, now: int | None = None) -> dict[str, Any]:
        """One run with its steps in execution order, the ids of the runs that replay it
        (oldest first, at most :data:`MAX_REPLAYS_LISTED`), and ``waiting_reason``: why a
        queued run has not started yet (:meth:`waiting_reason`)."""
        run = self.run(run_id)
        body = run_dict(run, self.steps(run_id))
        logs = self.attempts_log(run_id)
        for step in body["steps"]:
            step["attempts_log"] = logs.get(step["key"], [])
        body["replays"] = self.replays_of(run_id)
        body["waiting_reason"] = self.waiting_reason(
            run, now=int(time.time() * 1000) if now is None else now)
        return body

    def waiting_reason(self, run: RunRow, *, now: int) -> dict[str, Any] | None:
        """Why a queued run is not executing, or ``None`` (it is due, or not queued).

        - ``{"kind": "concurrency", "scope_key", "scope", "key", "limit", "in_use",
          "waiting", "since"}``: parked on a full concurrency scope key (``tj_slot_waiters``);
          ``key`` is ``"<key expression>=<value>"`` for a keyed limit, ``None`` for a
          function-wide one.
        - ``{"kind": "throttle", "until"}``: its start was moved by its function's throttle.
          Derived, not recorded: a run never started, due later than its event asked
          (``wake_at`` past both its creation and the event's ``ts``), of a function with
          throttle state. Throttle is the only rule that delays such a run (debounce and
          batch runs are shown on their events), so nothing else matches."""
        if run.status != RunStatus.QUEUED:
            return None
        waiter = self.d.execute(f'SELECT "scope_key", "since" FROM "{SLOT_WAITERS}" '
                                'WHERE "run_id" = ?', (run.id,)).fetchone()
        if waiter is not None:
            return self._concurrency_reason(run.function_id, waiter[0], waiter[1], now)
        if run.started_at is not None or run.wake_at <= now:
            return None
        asked = run.created_at
        if run.event_id is not None:
            row = self.d.execute(f'SELECT "ts" FROM "{EVENTS}" WHERE "id" = ?',
                                 (run.event_id,)).fetchone()
            asked = max(asked, row[0] if row and row[0] is not None else 0)
        own = f"t:{run.function_id}"
        if run.wake_at > asked and self.d.execute(
                f'SELECT 1 FROM "{THROTTLES}" WHERE "key" = ? OR substr("key", 1, ?) = ? '
                'LIMIT 1', (own, len(own) + 1, own + ":")).fetchone():
            return {"kind": "throttle", "until": ms_to_iso(run.wake_at)}
        return None

    def _concurrency_reason(self, function_id: str, scope_key: str, since: int,
                            now: int) -> dict[str, Any]:
        limit, in_use, waiting = self.d.execute(
            f'SELECT k."capacity", (SELECT count(*) FROM "{SLOTS}" s WHERE '
            's."scope_key" = k."scope_key" AND s."lease_expires_at" > ?), '
            f'(SELECT count(*) FROM "{SLOT_WAITERS}" w WHERE w."scope_key" = k."scope_key") '
            f'FROM "{SLOT_KEYS}" k WHERE k."scope_key" = ?', (now, scope_key)).fetchone() \
            or (None, 0, 0)
        own = f"c:fn:{function_id}"
        key: str | None
        if scope_key.startswith("c:env:"):
            scope, key = "env", scope_key[len("c:env:"):]
        else:
            scope, key = "fn", (scope_key[len(own) + 1:] if scope_key != own else None)
        return {"kind": "concurrency", "scope_key": scope_key, "scope": scope, "key": key,
                "limit": limit, "in_use": in_use, "waiting": waiting,
                "since": ms_to_iso(since)}

    def run_links(self, run_id: str, *, limit: int = MAX_REPLAYS_LISTED) -> dict[str, Any]:
        """What a run's detail page shows around it: ``parent`` (the run it handles the
        failure of, or that invoked it), ``children`` (its failure handler's run, the runs
        it invoked; on the partial index on ``parent_run_id``), ``sleeping`` (steps asleep
        or backing off, with when they wake) and ``waiting`` (its waits for an event: the
        event name, the CEL condition, when the wait times out)."""
        run = self.run(run_id)

        def relation(unique_key: str | None) -> str:
            key = unique_key or ""
            return ("failure_handler" if key.startswith(FAILURE_PREFIX) else
                    "invoked" if key.startswith(INVOKE_PREFIX) else "child")

        parent = None
        if run.parent_run_id:
            parent = {"id": run.parent_run_id, "relation": relation(run.unique_key)}
        children = [{"id": r[0], "function_id": r[1], "status": r[2], "relation": relation(r[3])}
                    for r in self.d.execute(
                        f'SELECT "id", "function_id", "status", "unique_key" FROM "{RUNS}" '
                        'WHERE "parent_run_id" = ? ORDER BY "id" LIMIT ?', (run_id, limit))]
        sleeping = [{"step": r[0], "status": r[1], "until": ms_to_iso(r[2])}
                    for r in self.d.execute(
                        f'SELECT "key", "status", "wake_at" FROM "{STEPS}" WHERE "run_id" = ? '
                        "AND \"status\" IN ('sleeping', 'retrying') AND \"wake_at\" IS NOT NULL "
                        'ORDER BY "position"', (run_id,))]
        waiting = [{"step": r[0], "event": r[1], "if": r[2], "expires_at": ms_to_iso(r[3])}
                   for r in self.d.execute(
                       f'SELECT "step_key", "event_name", "expression", "expires_at" FROM '
                       f'"{WAITS}" WHERE "run_id" = ? AND "kind" = \'step\' ORDER BY "id"',
                       (run_id,))]
        return {"parent": parent, "children": children, "sleeping": sleeping, "waiting": waiting}

    def replays_of(self, run_id: str) -> list[str]:
        return [r.id for r in RunRow.select(RunRow.id).where(RunRow.replay_of == run_id)
                .order_by(RunRow.id).limit(MAX_REPLAYS_LISTED)]

    def bulk_page(self, *, function_id: str, statuses: tuple[str, ...],
                  since: int | None = None, until: int | None = None,
                  after: str | None = None,
                  limit: int = 500) -> list[tuple[RunRow, dict[str, Any]]]:
        """One page of a bulk cancel or replay: the runs of ``function_id`` in one of
        ``statuses`` created in ``[since, until)``, oldest id first after ``after`` (keyset),
        each with its triggering event as CEL conditions see it (``{name, data, id, ts, …}``)."""
        query = (RunRow.select(RunRow, EventRow.name, EventRow.data, EventRow.external_id,
                               EventRow.ts, EventRow.v, EventRow.user)
                 .join(EventRow, pw.JOIN.LEFT_OUTER, on=(EventRow.id == RunRow.event_id))
                 .where(RunRow.function_id == function_id, RunRow.status.in_(list(statuses))))
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if until is not None:
            query = query.where(RunRow.created_at < until)
        if after is not None:
            query = query.where(RunRow.id > after)
        out = []
        for run in query.order_by(RunRow.id).limit(limit):
            e = getattr(run, "eventrow", None)
            row = None if e is None else (e.name, e.data, e.external_id, e.ts, e.v, e.user)
            out.append((run, event_of(run, row).to_dict()))
        return out

    def count_bulk(self, *, function_id: str, statuses: tuple[str, ...],
                   since: int | None = None, until: int | None = None) -> int:
        """How many runs :meth:`bulk_page` would walk through (before any condition)."""
        query = RunRow.select().where(RunRow.function_id == function_id,
                                      RunRow.status.in_(list(statuses)))
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if until is not None:
            query = query.where(RunRow.created_at < until)
        return query.count()

    def runs(self, function_id: str | None = None) -> list[RunRow]:
        """Every run (of a function), oldest first: for tests and small tools."""
        query = RunRow.select().order_by(RunRow.created_at, RunRow.id)
        if function_id:
            query = query.where(RunRow.function_id == function_id)
        return list(query)

    def unfinished_histories(self, function_id: str | None = None, *, page: int = 200
                             ) -> Iterator[tuple[RunRow, Event, list[StepRow]]]:
        """Every unfinished run (queued, running, sleeping, waiting) that has stored steps,
        of ``function_id`` or all, oldest first (ids sort by creation), with its triggering event and its steps in
        execution order — read a page at a time (``tengo-jobs check-replay``)."""
        unfinished = [s.value for s in RunStatus if not s.is_final]
        after = ""
        while True:
            query = (RunRow.select()
                     .where(RunRow.status.in_(unfinished), RunRow.id > after,
                            pw.fn.EXISTS(StepRow.select(pw.SQL("1"))
                                         .where(StepRow.run_id == RunRow.id)))
                     .order_by(RunRow.id).limit(page))
            if function_id:
                query = query.where(RunRow.function_id == function_id)
            runs = list(query)
            for run in runs:
                row = (self.d.execute(SELECT_EVENT, (run.event_id,)).fetchone()
                       if run.event_id is not None else None)
                yield run, event_of(run, row), self.steps(run.id)
            if len(runs) < page:
                return
            after = runs[-1].id

    # -- events -------------------------------------------------------------------------------
    def list_events(self, *, name: str | None = None, since: int | None = None,
                    until: int | None = None, limit: int = DEFAULT_LIMIT,
                    cursor: str | None = None) -> dict[str, Any]:
        query = EventRow.select()
        if name:
            query = query.where(EventRow.name == name)
        if since is not None:
            query = query.where(EventRow.received_at >= since)
        if until is not None:
            query = query.where(EventRow.received_at < until)
        rows, next_cursor = self._page(query, EventRow, check_limit(limit), check_cursor(cursor))
        return {"data": [event_dict(r) for r in rows], "next_cursor": next_cursor}

    def get_event(self, event_id: str) -> dict[str, Any]:
        """One event with the runs it started (oldest first), and ``flow_control``: per
        function, why it started no run (``skipped`` with its ``reason``) or the run it was
        folded into (``debounced`` / ``batched`` into ``run_id``)."""
        row = EventRow.get_or_none(EventRow.id == event_id)
        if row is None:
            raise EventNotFoundError(f"no event {event_id!r}")
        runs = list(RunRow.select().where(RunRow.event_id == event_id).order_by(RunRow.id)
                    .limit(MAX_LIMIT))
        body = event_dict(row, runs)
        body["flow_control"] = [_skip_dict(s) for s in SkipRow.select().where(
            SkipRow.event_id == event_id).order_by(SkipRow.id).limit(MAX_LIMIT)]
        return body

    def run_ids_of_events(self, event_ids: list[str]) -> list[str]:
        """The runs the events ``event_ids`` started (the ``event_id`` index), up to
        :data:`MAX_LIMIT` (tracing links an incoming event to its runs)."""
        if not event_ids:
            return []
        marks = ", ".join("?" for _ in event_ids)
        return [r[0] for r in self.d.execute(
            f'SELECT "id" FROM "{RUNS}" WHERE "event_id" IN ({marks}) ORDER BY "id" LIMIT ?',
            (*event_ids, MAX_LIMIT))]

    def skipped_counts(self, *, now: int) -> dict[tuple[str, str], int]:
        """``{(function, reason): n}``: events of the last :data:`STATS_WINDOW_MS` that
        started no run (skipped) or were folded into another run, by reason."""
        return {(fn_id, reason): n for fn_id, reason, n in self.d.execute(
            f'SELECT "function_id", "reason", count(*) FROM "{SKIPS}" WHERE "at" >= ? '
            'GROUP BY "function_id", "reason"', (now - STATS_WINDOW_MS,))}

    # -- aggregates ---------------------------------------------------------------------------
    def _capped_count(self, where: str, params: tuple[Any, ...]) -> int:
        return cast(int, self.d.execute(
            f'SELECT count(*) FROM (SELECT 1 FROM "{RUNS}" WHERE {where} '
            'LIMIT ?) capped', (*params, COUNT_CAP)).fetchone()[0])

    def function_stats(self, function_id: str, *, now: int) -> dict[str, Any]:
        """Counts by status of the runs created in the last :data:`STATS_WINDOW_MS`, and the
        p50/p95 duration (ms) of the latest finished runs."""
        counts = {s: 0 for s in RUN_STATUSES}
        for status in RUN_STATUSES:
            counts[status] = self._capped_count(
                '"function_id" = ? AND "created_at" >= ? AND "status" = ?',
                (function_id, now - STATS_WINDOW_MS, status))
        durations = sorted(r[0] for r in self.d.execute(
            f'SELECT "ended_at" - "started_at" FROM "{RUNS}" WHERE "function_id" = ? '
            'AND "created_at" >= ? AND "ended_at" IS NOT NULL AND "started_at" IS NOT NULL '
            "AND \"status\" IN ('completed', 'failed') ORDER BY \"created_at\" DESC LIMIT ?",
            (function_id, now - STATS_WINDOW_MS, DURATION_SAMPLE)))
        return {"counts": counts, "window_ms": STATS_WINDOW_MS,
                "duration_ms": {"p50": _percentile(durations, 0.50),
                                "p95": _percentile(durations, 0.95), "sample": len(durations)}}

    def paused_functions(self) -> dict[str, dict[str, Any]]:
        """``{function: {paused_at, skipped_cron_ticks, last_skipped_tick}}`` for the paused
        functions (a handful of rows)."""
        return {fn_id: {"paused_at": ms_to_iso(paused_at), "skipped_cron_ticks": skipped,
                        "last_skipped_tick": ms_to_iso(last)}
                for fn_id, paused_at, skipped, last in self.d.execute(PAUSED_ROWS)}

    def recent_counts(self, *, now: int) -> dict[str, dict[str, int]]:
        """``{function: {status: n}}`` for the runs created in the last :data:`STATS_WINDOW_MS`
        (one pass over that window of the ``created_at`` index)."""
        totals: dict[str, dict[str, int]] = {}
        for fn_id, status, n in self.d.execute(
                f'SELECT "function_id", "status", count(*) FROM "{RUNS}" WHERE "created_at" >= ? '
                'GROUP BY "function_id", "status"', (now - STATS_WINDOW_MS,)):
            totals.setdefault(fn_id, {})[RunStatus(status).value] = n
        return totals

    def recent_events(self, *, now: int) -> int:
        return cast(int, self.d.execute(
            f'SELECT count(*) FROM "{EVENTS}" WHERE "received_at" >= ?',
            (now - STATS_WINDOW_MS,)).fetchone()[0])

    def due_count(self, *, now: int) -> int:
        """Runs due now that no worker holds (the real backlog), counted up to :data:`COUNT_CAP`."""
        return self._capped_count(RUNNABLE, (now, now))

    def run_totals(self) -> dict[str, dict[str, Any]]:
        """Monotonic totals per function since the database was created, read in one
        statement (one snapshot): ``scheduled`` (runs created), ``started``, ``ended``
        (``{status: n}``) and ``output_bytes`` (of the ended runs' stored step outputs).

        The ended runs are counted in ``tj_counters`` by the trigger that fires in the
        transaction ending a run (migration 0012; a few rows per function, never pruned);
        the unfinished ones are counted through the ``status`` index. A run ending moves
        from one count to the other in one commit, so ``scheduled`` and ``started`` never go
        down, and pruning finished runs changes nothing. No full table is read."""
        out: dict[str, dict[str, Any]] = {}
        unfinished = ", ".join(f"'{s}'" for s in RUN_STATUSES if s not in FINAL_RUN_STATUSES)
        for fn_id, kind, a, b, c, d, e in self.d.execute(
                f'SELECT "function_id", \'ended\', SUM("completed"), SUM("failed"), '
                f'SUM("cancelled"), SUM("started"), SUM("output_bytes") FROM "{COUNTERS}" '
                'GROUP BY "function_id" UNION ALL '
                f'SELECT "function_id", \'unfinished\', count(*), count("started_at"), 0, 0, 0 '
                f'FROM "{RUNS}" WHERE "status" IN ({unfinished}) GROUP BY "function_id"'):
            fn = out.setdefault(fn_id, {"scheduled": 0, "started": 0, "ended": {},
                                        "output_bytes": 0})
            a, b, c, d, e = (int(x or 0) for x in (a, b, c, d, e))
            if kind == "ended":
                fn["ended"] = {"completed": a, "failed": b, "cancelled": c}
                fn["scheduled"] += a + b + c
                fn["started"] += d
                fn["output_bytes"] = e
            else:
                fn["scheduled"] += a
                fn["started"] += b
        return out

    def running_count(self, *, now: int) -> int:
        """Runs a worker holds now (a live lease), counted up to :data:`COUNT_CAP` (the
        ``status`` index bounds it to the running ones)."""
        return self._capped_count('"status" = \'running\' AND "lease_expires_at" >= ?', (now,))

    def scheduler_lag_ms(self, *, now: int) -> int:
        """How long the oldest run due now and held by no worker has been due (0: none)."""
        oldest = self.d.execute(f'SELECT MIN("wake_at") FROM "{RUNS}" WHERE {RUNNABLE}',
                                (now, now)).fetchone()[0]
        return 0 if oldest is None else max(0, now - int(oldest))

    def start_lags(self, *, now: int, buckets_ms: tuple[int, ...]) -> list[tuple[Any, ...]]:
        """Per function: (function, count, total ms, cumulative count per bucket) of the
        delay between creation and start of the runs created in the last
        :data:`STATS_WINDOW_MS` that started."""
        lag = '"started_at" - "created_at"'
        columns = ", ".join(f"SUM(CASE WHEN {lag} <= {int(b)} THEN 1 ELSE 0 END)"
                            for b in buckets_ms)
        return cast("list[tuple[Any, ...]]", self.d.execute(
            f'SELECT "function_id", count(*), SUM({lag}), {columns} FROM "{RUNS}" '
            'WHERE "created_at" >= ? AND "started_at" IS NOT NULL GROUP BY "function_id"',
            (now - STATS_WINDOW_MS,)).fetchall())

    def step_durations(self, *, now: int, buckets_ms: tuple[int, ...]) -> list[tuple[Any, ...]]:
        """Per function: (function, count, total ms, cumulative count per bucket) of the steps
        of runs created in the last :data:`STATS_WINDOW_MS`."""
        duration = 's."ended_at" - s."started_at"'
        columns = ", ".join(f"SUM(CASE WHEN {duration} <= {int(b)} THEN 1 ELSE 0 END)"
                            for b in buckets_ms)
        return cast("list[tuple[Any, ...]]", self.d.execute(
            f'SELECT r."function_id", count(*), SUM({duration}), {columns} FROM "{RUNS}" r '
            f'JOIN "{STEPS}" s ON s."run_id" = r."id" WHERE r."created_at" >= ? '
            'AND s."ended_at" IS NOT NULL AND s."started_at" IS NOT NULL GROUP BY r."function_id"',
            (now - STATS_WINDOW_MS,)).fetchall())


__all__ = ["Queries", "run_dict", "step_dict", "event_dict", "check_limit", "check_status",
           "check_cursor", "DEFAULT_LIMIT", "MAX_LIMIT"]
