"""PostgreSQL fast paths for the executor's hot statements.

On PostgreSQL every statement is a network round trip, and Peewee spends a
noticeable share of a short run building SQL. A run's life on the common path
is therefore written as fixed statements here:

- ``acquire_and_load``: take the lease *and* read the run, its event and all its
  stored steps in one round trip (a data-modifying CTE);
- ``complete_simple``: the final fenced UPDATE of a completed run without a
  parent, autocommitted (no BEGIN/COMMIT round trips).

Semantics are those of the generic Peewee paths in ``executor.py`` and
``execution.py``, which SQLite (and every less common case) still uses.
"""

from __future__ import annotations

import json

import peewee as pw

from .events import Event
from .models import Run, RunStatus, Step, StepKind, StepStatus

_RUN_COLUMNS = [f.column_name for f in Run._meta.sorted_fields]
_STEP_COLUMNS = [f.column_name for f in Step._meta.sorted_fields]

_ACQUIRE = (
    'WITH r AS (UPDATE "tj_runs" SET "status" = %s, "lease_owner" = %s, '
    '"lease_expires_at" = %s, "started_at" = COALESCE("started_at", %s) '
    'WHERE "id" = %s AND "status" IN (%s, %s) AND "wake_at" <= %s '
    'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < %s) RETURNING *) '
    'SELECT ' + ", ".join(f'r."{c}"' for c in _RUN_COLUMNS) + ', '
    'e."name", e."data", e."external_id", e."ts", e."v", e."user", '
    '(SELECT json_agg(json_build_array(' + ", ".join(f's."{c}"' for c in _STEP_COLUMNS) + ')) '
    'FROM "tj_steps" s WHERE s."run_id" = r."id") '
    'FROM r LEFT JOIN "tj_events" e ON e."id" = r."event_id"'
)

_COMPLETE = (
    'UPDATE "tj_runs" SET "status" = %s, "output" = %s, "error" = NULL, "ended_at" = %s, '
    '"lease_owner" = NULL, "lease_expires_at" = NULL '
    'WHERE "id" = %s AND "lease_owner" = %s AND "lease_expires_at" > %s'
)


def applies(db: pw.Database) -> bool:
    """Use the fast paths: PostgreSQL, and not inside a caller's transaction."""
    return isinstance(db, pw.PostgresqlDatabase) and not db.in_transaction()


def acquire_and_load(db: pw.Database, run_id: str, token: str, now: int, ttl_ms: int):
    """Take the lease of a due, free run; returns ``(run, event, steps)`` or ``None``."""
    params = (RunStatus.RUNNING.value, token, now + ttl_ms, now, run_id,
              RunStatus.QUEUED.value, RunStatus.RUNNING.value, now, now)
    row = db.execute_sql(_ACQUIRE, params).fetchone()
    if row is None:
        return None
    n = len(_RUN_COLUMNS)
    values = dict(zip((f.name for f in Run._meta.sorted_fields), row[:n]))
    values["status"] = RunStatus(values["status"])
    run = Run(**values)
    name, data, external_id, ts, v, user, steps_json = row[n:]
    if run.event_id is None:
        event = Event(name="", data={})
    elif name is None:
        event = Event(name="", data={}, id=run.event_id)
    else:
        event = Event(name=name, data=json.loads(data), id=external_id or run.event_id, ts=ts, v=v,
                      user=json.loads(user) if user else None)
    steps = []
    if steps_json:
        names = [f.name for f in Step._meta.sorted_fields]
        for item in (json.loads(steps_json) if isinstance(steps_json, str) else steps_json):
            s = dict(zip(names, item))
            s["kind"], s["status"] = StepKind(s["kind"]), StepStatus(s["status"])
            steps.append(Step(**s))
    return run, event, steps


def complete_simple(db: pw.Database, run_id: str, token: str, now: int, output: str) -> bool:
    """Fenced final UPDATE of a completed run; ``False`` if the lease was lost."""
    cursor = db.execute_sql(_COMPLETE, (RunStatus.COMPLETED.value, output, now, run_id, token, now))
    return cursor.rowcount == 1
