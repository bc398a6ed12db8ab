"""Fixed SQL for the executor's hot statements (PostgreSQL and SQLite).

A short run's life is a handful of statements: take the lease and load the run,
one checkpoint per step, the final update. Built through Peewee's query builder
they cost more CPU than the database work itself (about two thirds of a W4 run
on SQLite), and on PostgreSQL every statement is a round trip. So the common
path is written here once, as plain parameterized SQL:

- ``acquire_and_load``: take the lease of a due, free run and read the run, its
  event and its stored steps (PostgreSQL: one round trip through a data-modifying
  CTE; SQLite: ``UPDATE … RETURNING`` and two reads, all in-process);
- ``checkpoint``: renew the lease and upsert the step, fenced (PostgreSQL: one
  autocommitted statement; SQLite: one ``BEGIN IMMEDIATE`` transaction);
- ``complete``: the fenced final update of a completed run, autocommitted.

Everything less common (suspensions, failures, invoked children) stays on Peewee in
``execution.py``. Inside a caller's transaction each statement joins it. The engine
supports PostgreSQL and SQLite only (``Runtime`` refuses other databases).
"""

from __future__ import annotations

import contextlib
import json

import peewee as pw

from .errors import LeaseLost
from .events import Event
from .models import Run, RunStatus, Step, StepKind, StepStatus

_RUN_FIELDS = Run._meta.sorted_fields
_STEP_FIELDS = Step._meta.sorted_fields
_RUN_COLUMNS = ", ".join(f'"{f.column_name}"' for f in _RUN_FIELDS)
_STEP_COLUMNS = ", ".join(f'"{f.column_name}"' for f in _STEP_FIELDS)
_EVENT_COLUMNS = '"name", "data", "external_id", "ts", "v", "user"'

_ACQUIRE_SET = (
    'UPDATE "tj_runs" SET "status" = {p}, "lease_owner" = {p}, "lease_expires_at" = {p}, '
    '"started_at" = COALESCE("started_at", {p}) '
    'WHERE "id" = {p} AND "status" IN ({p}, {p}) AND "wake_at" <= {p} '
    'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < {p})')

_PG_ACQUIRE = (
    'WITH r AS (' + _ACQUIRE_SET.format(p="%s") + ' RETURNING *) '
    'SELECT ' + ", ".join(f'r."{f.column_name}"' for f in _RUN_FIELDS) + ', '
    + ", ".join(f'e."{c.strip(chr(34))}"' for c in _EVENT_COLUMNS.split(", ")) + ', '
    '(SELECT json_agg(json_build_array('
    + ", ".join(f's."{f.column_name}"' for f in _STEP_FIELDS) + ')) '
    'FROM "tj_steps" s WHERE s."run_id" = r."id") '
    'FROM r LEFT JOIN "tj_events" e ON e."id" = r."event_id"')

_SQLITE_ACQUIRE = _ACQUIRE_SET.format(p="?") + " RETURNING " + _RUN_COLUMNS
_SQLITE_STEPS = f'SELECT {_STEP_COLUMNS} FROM "tj_steps" WHERE "run_id" = ?'
_SQLITE_EVENT = f'SELECT {_EVENT_COLUMNS} FROM "tj_events" WHERE "id" = ?'

_FENCE = ('UPDATE "tj_runs" SET "lease_expires_at" = {p} WHERE "id" = {p} '
          'AND "lease_owner" = {p} AND "lease_expires_at" > {p}')
_UPSERT_STEP = (
    'INSERT INTO "tj_steps" ("run_id", "key", "name", "kind", "position", "status", '
    '"attempts", "output", "error", "started_at", "ended_at", "wake_at") {source} '
    'ON CONFLICT ("run_id", "key") DO UPDATE SET "name" = EXCLUDED."name", '
    '"kind" = EXCLUDED."kind", "position" = EXCLUDED."position", '
    '"status" = EXCLUDED."status", "attempts" = EXCLUDED."attempts", '
    '"output" = EXCLUDED."output", "error" = EXCLUDED."error", '
    '"started_at" = EXCLUDED."started_at", "ended_at" = EXCLUDED."ended_at", '
    '"wake_at" = EXCLUDED."wake_at"')
_PG_CHECKPOINT = (
    'WITH fence AS (' + _FENCE.format(p="%s") + ' RETURNING "id") '
    + _UPSERT_STEP.format(source='SELECT "id", %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM fence'))
_SQLITE_FENCE = _FENCE.format(p="?")
_SQLITE_UPSERT = _UPSERT_STEP.format(source="VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

_COMPLETE = (
    'UPDATE "tj_runs" SET "status" = {p}, "output" = {p}, "error" = NULL, "ended_at" = {p}, '
    '"lease_owner" = NULL, "lease_expires_at" = NULL '
    'WHERE "id" = {p} AND "lease_owner" = {p} AND "lease_expires_at" > {p}')


def _is_pg(db: pw.Database) -> bool:
    return isinstance(db, pw.PostgresqlDatabase)


def _run(row) -> Run:
    values = {f.name: v for f, v in zip(_RUN_FIELDS, row)}
    values["status"] = RunStatus(values["status"])
    return Run(**values)


def _step(row) -> Step:
    values = {f.name: v for f, v in zip(_STEP_FIELDS, row)}
    values["kind"], values["status"] = StepKind(values["kind"]), StepStatus(values["status"])
    return Step(**values)


def _event(run: Run, row) -> Event:
    if run.event_id is None:
        return Event(name="", data={})
    if row is None or row[0] is None:
        return Event(name="", data={}, id=run.event_id)
    name, data, external_id, ts, v, user = row
    return Event(name=name, data=json.loads(data), id=external_id or run.event_id, ts=ts, v=v,
                 user=json.loads(user) if user else None)


def acquire_and_load(db: pw.Database, run_id: str, token: str, now: int, ttl_ms: int):
    """Take the lease of a due, free run; ``(run, event, steps)`` or ``None`` if not ours."""
    params = (RunStatus.RUNNING.value, token, now + ttl_ms, now, run_id,
              RunStatus.QUEUED.value, RunStatus.RUNNING.value, now, now)
    if _is_pg(db):
        row = db.execute_sql(_PG_ACQUIRE, params).fetchone()
        if row is None:
            return None
        n = len(_RUN_FIELDS)
        run = _run(row[:n])
        steps_json = row[n + 6]
        items = json.loads(steps_json) if isinstance(steps_json, str) else (steps_json or [])
        return run, _event(run, row[n:n + 6]), [_step(item) for item in items]
    rows = db.execute_sql(_SQLITE_ACQUIRE, params).fetchall()  # fetch all: ends the statement
    if not rows:
        return None
    run = _run(rows[0])
    steps = [_step(r) for r in db.execute_sql(_SQLITE_STEPS, (run_id,)).fetchall()]
    event_row = (db.execute_sql(_SQLITE_EVENT, (run.event_id,)).fetchone()
                 if run.event_id is not None else None)
    return run, _event(run, event_row), steps


def checkpoint(db: pw.Database, run_id: str, token: str, now: int, ttl_ms: int, v: dict) -> None:
    """Renew the lease and upsert one step, fenced; raises :class:`LeaseLost` (writing nothing).

    Inside a caller's transaction (``step.transaction``) it joins that transaction."""
    step = (v["key"], v["name"], StepKind(v["kind"]).value, v["position"],
            StepStatus(v["status"]).value, v["attempts"], v["output"], v["error"],
            v["started_at"], v["ended_at"], v["wake_at"])
    fence = (now + ttl_ms, run_id, token, now)
    if _is_pg(db):
        if db.execute_sql(_PG_CHECKPOINT, fence + step).rowcount != 1:
            raise LeaseLost(f"run {run_id}: lease lost by {token}")
        return
    with contextlib.nullcontext() if db.in_transaction() else db.atomic():
        if db.execute_sql(_SQLITE_FENCE, fence).rowcount != 1:
            raise LeaseLost(f"run {run_id}: lease lost by {token}")
        db.execute_sql(_SQLITE_UPSERT, (run_id,) + step)


_PG_COMPLETE, _SQLITE_COMPLETE = _COMPLETE.format(p="%s"), _COMPLETE.format(p="?")


def complete(db: pw.Database, run_id: str, token: str, now: int, output: str) -> bool:
    """Fenced final update of a completed run; ``False`` if the lease was lost."""
    sql = _PG_COMPLETE if _is_pg(db) else _SQLITE_COMPLETE
    cursor = db.execute_sql(sql, (RunStatus.COMPLETED.value, output, now, run_id, token, now))
    return cursor.rowcount == 1


# -- intake ---------------------------------------------------------------------------------
_INSERT_CACHE: dict[tuple, str] = {}


# Up to this many rows go in one multi-row VALUES statement (short enough for psycopg's
# statement cache); more go through ``executemany`` of the one-row statement.
_MULTI_ROW_MAX = 16


def _insert(db: pw.Database, cache_key: tuple, head: str, tail: str, width: int,
            rows: list[tuple]) -> None:
    """``head VALUES (...), (...) tail`` for a few rows, ``executemany`` for many."""
    p = "%s" if _is_pg(db) else "?"
    one = "(" + ", ".join([p] * width) + ")"
    n = len(rows) if len(rows) <= _MULTI_ROW_MAX else 1
    key = cache_key + (p, n)
    sql = _INSERT_CACHE.get(key)
    if sql is None:
        sql = f"{head} VALUES {', '.join([one] * n)}{tail}"
        _INSERT_CACHE[key] = sql
    if n == len(rows):
        db.execute_sql(sql, tuple(v for row in rows for v in row))
    else:
        db.cursor().executemany(sql, rows)


def insert_rows(db: pw.Database, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) without Peewee's SQL building.

    Long multi-row ``VALUES`` lists are avoided: psycopg re-parses a statement too long
    for its cache every time, which was the largest single cost of a 100-event batch;
    many rows go through ``executemany`` (pipelined by psycopg 3) instead.
    """
    if rows:
        head = f'INSERT INTO "{table}" (' + ", ".join(f'"{c}"' for c in columns) + ")"
        _insert(db, (table, columns), head, "", len(columns), rows)


_CLAIM_DEDUPE = (
    'INSERT INTO "tj_event_dedupe" ("key", "event_id", "expires_at") VALUES ({p}, {p}, {p}) '
    'ON CONFLICT ("key") DO UPDATE SET "event_id" = EXCLUDED."event_id", '
    '"expires_at" = EXCLUDED."expires_at" WHERE "tj_event_dedupe"."expires_at" <= {p} '
    'RETURNING "event_id"')
_PG_CLAIM, _SQLITE_CLAIM = _CLAIM_DEDUPE.format(p="%s"), _CLAIM_DEDUPE.format(p="?")
_DEDUPE_ORIGINAL = 'SELECT "event_id" FROM "tj_event_dedupe" WHERE "key" = {p}'


def claim_dedupe(db: pw.Database, key: str, event_id: str, now: int, window_ms: int) -> str | None:
    """Record ``key`` for ``window_ms`` (or take over an expired record); return the original
    event id when ``key`` is already recorded and unexpired. One statement on the common path."""
    pg = _is_pg(db)
    rows = db.execute_sql(_PG_CLAIM if pg else _SQLITE_CLAIM,
                          (key, event_id, now + window_ms, now)).fetchall()
    if rows:
        return None
    row = db.execute_sql(_DEDUPE_ORIGINAL.format(p="%s" if pg else "?"), (key,)).fetchone()
    return row[0] if row else None


_ANY_WAIT = 'SELECT 1 FROM "tj_waits" WHERE "expires_at" > {p} LIMIT 1'


def any_waits(db: pw.Database, now: int) -> bool:
    """Is any run waiting for an event? (Usually not: then the intake skips matching.)"""
    return db.execute_sql(_ANY_WAIT.format(p="%s" if _is_pg(db) else "?"), (now,)).fetchone() is not None


def insert_models(model: type[pw.Model], rows: list[dict], *, ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (dicts of field names, as ``insert_many`` takes) with one short
    statement through ``executemany``; values pass through each field's ``db_value``.

    Peewee's ``insert_many`` rebuilds its SQL for every call, which costs more CPU than a
    few-row insert itself; jobs that write a few rows per step call this instead.
    """
    if not rows:
        return
    db = model._meta.database
    db = getattr(db, "obj", db)  # a DatabaseProxy: the database it stands for
    fields = model._meta.fields
    names = tuple(rows[0])
    head = (f'INSERT INTO "{model._meta.table_name}" ('
            + ", ".join(f'"{fields[n].column_name}"' for n in names) + ")")
    tail = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    converters = [fields[n].db_value for n in names]
    _insert(db, (model, names, ignore_conflicts), head, tail, len(names),
            [tuple(conv(row[n]) for conv, n in zip(converters, names)) for row in rows])
