"""The dashboard's runs page and run page, read with bounded cost at millions of runs.

**Order and cursors.** A run's id is a ULID made from its ``created_at`` (``new_id(now)``
in the admission), so newest-first by ``(created_at, id)`` *is* ``id`` descending, and
one column carries the keyset: ``cursor`` (older than this id) and ``before`` (newer than
this id) page both ways on the primary key or ``(status, id)``. A creation time range
``[since, until)`` becomes an id range (the smallest id of a millisecond), so it narrows
the same index scan instead of needing another index.

**Event filters.** The event name and text in the event's data are conditions on
``tj_events``, which no index of ``tj_runs`` orders. They are checked on a bounded window:
the newest :data:`SEARCH_WINDOW` runs past the cursor that match the run filters, joined
to their events by primary key (``LIKE`` on SQLite, ``ILIKE`` on PostgreSQL). A window
that ends before a page fills says where it stopped (``searched_to``); the page offers
"search older runs" from there. Each request does the same bounded work however rare the
match.

Limits are written into the statements as numbers, not parameters: PostgreSQL
connections use generic plans (``store/connection.py``), and a generic plan that does not
know a ``LIMIT`` is 51 may sort the whole table (1.2 s at a million runs).

**Counts per status** stop at :data:`COUNT_CAP` (shown as "10,000+"): a ``LIMIT``
subquery per status on ``(status, id)`` or ``(function_id, status, id)`` (migration
m0014), never a count of the whole table.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, cast

from ..core.states import RUN_STATUSES
from ..errors import ValidationError
from ..ids import ulid
from .dialect import Dialect
from .queries import check_cursor, check_status, run_dict
from .schema import (EVENTS, FLOW_KEYS, RUN_COLUMNS, RUNS, SLOT_WAITERS, SLOTS, STEPS, THROTTLES,
                     TIMERS, RunRow)

PAGE_SIZE = 50
SEARCH_WINDOW = 1_000  # runs examined per request for the event name / data text filters
COUNT_CAP = 10_000
MAX_TEXT = 200  # characters of a data text search
_R_COLUMNS = ", ".join(f'r."{c}"' for c in RUN_COLUMNS)
_EVENT_NAME = f'(SELECT e."name" FROM "{EVENTS}" e WHERE e."id" = r."event_id")'
_CONVERT = [f.python_value for f in RunRow._meta.sorted_fields]
_LIKE_ESCAPE = "\\"


def id_floor(ms: int) -> str:
    """The smallest run id created at millisecond ``ms`` (ids sort by creation time)."""
    return ulid(max(0, ms), 0)


def _like_pattern(text: str) -> str:
    escaped = (text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%")
               .replace("_", _LIKE_ESCAPE + "_"))
    return f"%{escaped}%"


def _key_text(stored: str) -> str:
    """A flow-control key as the user wrote its value (stored as JSON text: ``"d-1"``)."""
    try:
        value = json.loads(stored)
    except ValueError:
        return stored
    return value if isinstance(value, str) else stored


class RunFilters:
    """The runs page's filters, checked: ``status``, ``function_id``, ``since``/``until``
    (creation time, epoch ms, ``[since, until)``), ``event`` (the triggering event's name)
    and ``text`` (in the event's data)."""

    def __init__(self, *, status: str | None = None, function_id: str | None = None,
                 since: int | None = None, until: int | None = None, event: str | None = None,
                 text: str | None = None):
        self.status = check_status(status or None)
        self.function_id = function_id or None
        self.since, self.until = since, until
        if since is not None and until is not None and since >= until:
            raise ValidationError("from must be earlier than to", field="from")
        self.event = event or None
        if text is not None and len(text) > MAX_TEXT:
            raise ValidationError(f"text must be at most {MAX_TEXT} characters", field="text")
        self.text = text or None

    @property
    def searches_events(self) -> bool:
        return self.event is not None or self.text is not None

    def run_where(self, *, with_status: bool = True) -> tuple[list[str], list[Any]]:
        """Conditions on ``tj_runs`` (alias ``r``) and their parameters."""
        where: list[str] = []
        params: list[Any] = []
        if with_status and self.status is not None:
            where.append('r."status" = ?')
            params.append(self.status)
        if self.function_id is not None:
            where.append('r."function_id" = ?')
            params.append(self.function_id)
        if self.since is not None:
            where.append('r."id" >= ?')
            params.append(id_floor(self.since))
        if self.until is not None:
            where.append('r."id" < ?')
            params.append(id_floor(self.until))
        return where, params


def _window(runs_where: str, params: list[Any], order: str, n: int, *, split: bool
            ) -> tuple[str, tuple[Any, ...]]:
    """A statement giving ``id, event_id`` of the first ``n`` runs matching ``runs_where``
    in id ``order``, and its parameters. ``split`` (a function without a status): one
    range scan of ``(function_id, status, id)`` per status, merged, so a function with few
    runs costs seven short index scans instead of a walk of every run's id looking for it."""
    if not split:
        return (f'SELECT r."id", r."event_id" FROM "{RUNS}" r WHERE {runs_where} '
                f'ORDER BY r."id" {order} LIMIT {int(n)}', tuple(params))
    parts = [f'SELECT * FROM (SELECT r."id", r."event_id" FROM "{RUNS}" r WHERE {runs_where} '
             f'AND r."status" = \'{status}\' ORDER BY r."id" {order} LIMIT {int(n)}) p{i}'
             for i, status in enumerate(RUN_STATUSES)]
    return (f'SELECT * FROM ({" UNION ALL ".join(parts)}) u ORDER BY "id" {order} '
            f'LIMIT {int(n)}', tuple(params) * len(RUN_STATUSES))


class RunPages:
    """The reads of the module docstring, on one database."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    @contextlib.contextmanager
    def _planned_for_values(self, filters: RunFilters) -> Iterator[None]:
        """With a function filter, a read transaction whose statements PostgreSQL plans for
        their actual values (without one, the generic plans are right and cheaper).

        The store's connections use generic plans (``store/connection.py``), right for the
        engine's statements on primary keys and wrong here: a generic plan of a count
        "``function_id = $1 … LIMIT 10001``" assumes an average function and scans the
        table for one that has no runs (2 s at a million runs); planned for its value it is
        an empty index range. A few milliseconds of planning per statement, on a page."""
        if filters.function_id is None or not self.d.postgres:
            yield
            return
        with self.d.transaction():
            self.d.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            yield

    # -- the list -------------------------------------------------------------------------
    def page(self, filters: RunFilters, *, cursor: str | None = None, before: str | None = None,
             limit: int = PAGE_SIZE) -> dict[str, Any]:
        """One page, newest first: ``data`` (run dicts, each with its event's ``event_name``),
        ``next_cursor`` (older runs remain), ``prev_cursor`` (newer runs remain: the page
        was reached through a cursor), ``searched_to`` (an event filter's window ended at
        this id before the page filled: older runs were not searched yet)."""
        cursor, before = check_cursor(cursor), check_cursor(before)
        with self._planned_for_values(filters):
            return self._page(filters, cursor, before, limit)

    def _page(self, filters: RunFilters, cursor: str | None, before: str | None,
              limit: int) -> dict[str, Any]:
        where, params = filters.run_where()
        newer = before is not None
        if cursor is not None and not newer:
            where.append('r."id" < ?')
            params.append(cursor)
        if newer:
            where.append('r."id" > ?')
            params.append(before)
        order = "ASC" if newer else "DESC"
        runs_where = " AND ".join(where) or "1 = 1"
        searched_to = None
        split = filters.function_id is not None and filters.status is None
        if filters.searches_events:
            rows, scanned, last_scanned = self._search(filters, runs_where, params, order,
                                                       limit + 1, split=split)
            if len(rows) <= limit and scanned >= SEARCH_WINDOW:
                searched_to = last_scanned
        else:
            window, window_params = _window(runs_where, params, order, limit + 1, split=split)
            rows = self._runs([r[0] for r in self.d.execute(window, window_params)], order)
        more = len(rows) > limit
        rows = rows[:limit]
        if newer:
            rows.reverse()
        data = []
        for row in rows:
            run = RunRow(**{c: convert(v) for c, convert, v in zip(RUN_COLUMNS, _CONVERT, row)})
            body = run_dict(run)
            body["event_name"] = row[len(RUN_COLUMNS)]
            data.append(body)
        ids = [r["id"] for r in data]
        if newer:
            next_cursor = ids[-1] if ids else before
            prev_cursor = ids[0] if more and ids else None
        else:
            next_cursor = ids[-1] if more and ids else None
            prev_cursor = ids[0] if cursor is not None and ids else None
        if newer and searched_to is not None:
            searched_to = None  # a backwards search that stopped: the page shows what it found
        return {"data": data, "next_cursor": next_cursor, "prev_cursor": prev_cursor,
                "searched_to": searched_to, "window": SEARCH_WINDOW}

    def _runs(self, ids: list[str], order: str) -> list[Any]:
        """The rows of the runs ``ids`` (with their event's name), in id ``order``."""
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return cast(list[Any], self.d.execute(
            f'SELECT {_R_COLUMNS}, {_EVENT_NAME} FROM "{RUNS}" r WHERE r."id" IN ({marks}) '
            f'ORDER BY r."id" {order}', tuple(ids)).fetchall())

    def _search(self, filters: RunFilters, runs_where: str, params: list[Any], order: str,
                limit: int, *, split: bool) -> tuple[list[Any], int, str | None]:
        """The runs of the window (at most :data:`SEARCH_WINDOW` past the cursor) whose event
        matches; with how many runs the window held and the last id it reached."""
        window, window_params = _window(runs_where, params, order, SEARCH_WINDOW, split=split)
        bounds = self.d.execute(f'SELECT count(*), {"MIN" if order == "DESC" else "MAX"}(w."id") '
                                f'FROM ({window}) w', window_params).fetchone()
        scanned, last_scanned = int(bounds[0] or 0), bounds[1]
        event_where: list[str] = []
        event_params: list[Any] = []
        if filters.event is not None:
            event_where.append('e."name" = ?')
            event_params.append(filters.event)
        if filters.text is not None:
            # as typed, and as JSON text stores it when it is not ASCII ("Luc\\u00eda")
            like = "ILIKE" if self.d.postgres else "LIKE"
            forms = list(dict.fromkeys((filters.text, json.dumps(filters.text)[1:-1])))
            event_where.append("(" + " OR ".join(
                f'e."data" {like} ? ESCAPE \'{_LIKE_ESCAPE}\'' for _ in forms) + ")")
            event_params += [_like_pattern(f) for f in forms]
        # The event is probed per run of the window by its primary key: a scalar subquery,
        # which PostgreSQL never turns into a join (a join let the planner scan every event
        # for the ILIKE: 4 s at a million events).
        matching = [r[0] for r in self.d.execute(
            f'SELECT w."id" FROM ({window}) w WHERE (SELECT 1 FROM "{EVENTS}" e '
            f'WHERE e."id" = w."event_id" AND {" AND ".join(event_where)}) IS NOT NULL '
            f'ORDER BY w."id" {order} LIMIT {int(limit)}',
            (*window_params, *event_params)).fetchall()]
        return self._runs(matching, order), scanned, last_scanned

    def status_counts(self, filters: RunFilters) -> dict[str, dict[str, Any]]:
        """``{status: {"n": count, "capped": bool}}`` for the run filters but the status
        (function, time range; not the event filters), each count stopping at
        :data:`COUNT_CAP`."""
        where, params = filters.run_where(with_status=False)
        text = " AND ".join(where) or "1 = 1"
        counts = [f'(SELECT count(*) FROM (SELECT 1 FROM "{RUNS}" r WHERE {text} '
                  f'AND r."status" = \'{status}\' LIMIT {int(COUNT_CAP) + 1}) c{i})'
                  for i, status in enumerate(RUN_STATUSES)]  # statuses: constants
        with self._planned_for_values(filters):
            row = self.d.execute("SELECT " + ", ".join(counts),
                                 tuple(params) * len(RUN_STATUSES)).fetchone()
        return {status: {"n": min(n, COUNT_CAP), "capped": n > COUNT_CAP}
                for status, n in zip(RUN_STATUSES, row)}

    # -- the detail's "why it is not running" ---------------------------------------------
    def pending(self, run_id: str, *, now: int) -> dict[str, Any]:
        """What a run's detail shows beside ``Queries.waiting_reason``: ``timers`` (its
        pending timers: ``{step, kind, due_at}``), ``slots`` (the concurrency slots it
        holds), ``waiting_for_slot`` (``{scope_key, position, since}``: its place in the
        queue of a full key: ``ahead`` runs before it), ``due_at`` (the run's own due time)."""
        timers = [{"step": r[0] or None, "kind": r[1], "due_at": r[2]} for r in self.d.execute(
            f'SELECT "step_key", "kind", "due_at" FROM "{TIMERS}" WHERE "run_id" = ? '
            'ORDER BY "due_at" LIMIT 50', (run_id,))]
        slots = [{"scope_key": r[0], "lease_expires_at": r[1]} for r in self.d.execute(
            f'SELECT "scope_key", "lease_expires_at" FROM "{SLOTS}" WHERE "run_id" = ? '
            'LIMIT 20', (run_id,))]
        waiter = self.d.execute(
            f'SELECT w."scope_key", w."since", (SELECT count(*) FROM "{SLOT_WAITERS}" o '
            'WHERE o."scope_key" = w."scope_key" AND o."queue_at" < w."queue_at") '
            f'FROM "{SLOT_WAITERS}" w WHERE w."run_id" = ?', (run_id,)).fetchone()
        due = self.d.execute(f'SELECT "wake_at" FROM "{RUNS}" WHERE "id" = ?', (run_id,)).fetchone()
        return {"timers": timers, "slots": slots, "due_at": None if due is None else int(due[0]),
                "waiting_for_slot": None if waiter is None else {
                    "scope_key": waiter[0], "since": waiter[1], "ahead": int(waiter[2])},
                "now": now}

    def flow_hold(self, run_id: str, function_id: str) -> dict[str, Any] | None:
        """A run held by its function's ``debounce`` (``{"kind": "debounce", "key",
        "first_at"}``: due once the key's events stop) or an open ``batch_events`` batch
        (``{"kind": "batch", "key", "size", "first_at"}``), or ``None``."""
        row = self.d.execute(
            f'SELECT "kind", "key", "value", "first_at", "expires_at" FROM "{FLOW_KEYS}" '
            "WHERE \"function_id\" = ? AND \"kind\" IN ('debounce', 'batch') AND \"run_id\" = ? "
            'LIMIT 1', (function_id, run_id)).fetchone()
        if row is None:
            return None
        return {"kind": row[0], "key": _key_text(row[1]), "size": row[2], "first_at": row[3],
                "expires_at": row[4]}

    def throttled_until(self, function_id: str) -> int | None:
        """The latest theoretical arrival time among the function's throttle keys (a run
        started after it is not delayed), or ``None`` without throttle state."""
        own = f"t:{function_id}"
        row = self.d.execute(f'SELECT MAX("tat") FROM "{THROTTLES}" WHERE "key" = ? OR '
                             'substr("key", 1, ?) = ?', (own, len(own) + 1, own + ":")).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def step_count(self, run_id: str) -> int:
        return int(self.d.execute(f'SELECT count(*) FROM "{STEPS}" WHERE "run_id" = ?',
                                  (run_id,)).fetchone()[0])


__all__ = ["RunPages", "RunFilters", "id_floor", "PAGE_SIZE", "SEARCH_WINDOW", "COUNT_CAP"]
