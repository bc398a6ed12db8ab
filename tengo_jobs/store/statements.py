"""SQL text both databases run unchanged, written once with ``?`` placeholders.

The per-database modules (:mod:`.postgres`, :mod:`.sqlite`) build their own statements
from these pieces where the two differ (data-modifying CTEs and arrays on PostgreSQL,
a few statements in one ``BEGIN IMMEDIATE`` transaction on SQLite).
"""

from __future__ import annotations

from .schema import (BATCH_EVENTS, DEDUPE, EVENTS, FINAL_RUN_STATUSES, PAUSED, RUN_COLUMNS,
                     STEP_ATTEMPTS, STEP_COLUMNS, STEPS, TIMERS, WAITS)
from .schema import RUNS as RUNS  # re-exported: the contract names it sql.RUNS

RUN_LIST = ", ".join(f'"{c}"' for c in RUN_COLUMNS)
STEP_LIST = ", ".join(f'"{c}"' for c in STEP_COLUMNS)
FINAL = ", ".join(f"'{s}'" for s in FINAL_RUN_STATUSES)

# Not of a paused function: a probe of tj_paused_functions' primary key, inside the
# statement that reads or takes the run (no extra round trip).
NOT_PAUSED = (f'NOT EXISTS (SELECT 1 FROM "{PAUSED}" p '
              f'WHERE p."function_id" = "{RUNS}"."function_id")')

# The runnable predicate: due, held by no live lease, and not of a paused function (two
# parameters: now, now).
RUNNABLE = ('"status" IN (\'queued\', \'running\') AND "wake_at" <= ? '
            f'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < ?) AND {NOT_PAUSED}')

# -- acquire: (token, expiry, now, token, run id, now, now, token) ---------------------------
ACQUIRE = (
    f'UPDATE "{RUNS}" SET "status" = \'running\', "lease_owner" = ?, "lease_expires_at" = ?, '
    '"started_at" = COALESCE("started_at", ?), '
    '"inflight" = CASE WHEN "lease_owner" = ? THEN "inflight" ELSE "inflight" + 1 END '
    'WHERE "id" = ? AND "status" IN (\'queued\', \'running\') AND "wake_at" <= ? '
    'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < ? OR "lease_owner" = ?) '
    f'AND {NOT_PAUSED}')
SELECT_STEPS = f'SELECT {STEP_LIST} FROM "{STEPS}" WHERE "run_id" = ?'
SELECT_EVENT = (f'SELECT "name", "data", "external_id", "ts", "v", "user" FROM "{EVENTS}" '
                'WHERE "id" = ?')
SELECT_BATCH_EVENTS = (f'SELECT b."event_id", e."name", e."data", e."external_id", e."ts", '
                       f'e."v", e."user" FROM "{BATCH_EVENTS}" b LEFT JOIN "{EVENTS}" e '
                       'ON e."id" = b."event_id" WHERE b."run_id" = ? ORDER BY b."position"')

# -- the fence: (run id, token, now) -------------------------------------------------------
FENCE = 'WHERE "id" = ? AND "lease_owner" = ? AND "lease_expires_at" > ?'
RENEW = f'UPDATE "{RUNS}" SET "lease_expires_at" = ? {FENCE}'
# Progress after a crash or a function-level retry: the run's counters start again.
PROGRESS = f'UPDATE "{RUNS}" SET "inflight" = 1, "attempt" = 0 {FENCE}'
OWNER = f'SELECT "lease_owner" FROM "{RUNS}" WHERE "id" = ?'
# A cancellation asked of the execution holding the lease (store/cancellation.py).
CANCEL_REQUESTED = f'SELECT "cancel_requested" FROM "{RUNS}" {FENCE}'

# -- step rows -----------------------------------------------------------------------------
UPSERT_STEP_TAIL = (
    ' ON CONFLICT ("run_id", "key") DO UPDATE SET "name" = EXCLUDED."name", '
    '"kind" = EXCLUDED."kind", "position" = EXCLUDED."position", "status" = EXCLUDED."status", '
    '"attempts" = EXCLUDED."attempts", "output" = EXCLUDED."output", "error" = EXCLUDED."error", '
    '"started_at" = EXCLUDED."started_at", "ended_at" = EXCLUDED."ended_at", '
    '"wake_at" = EXCLUDED."wake_at"')
STEP_INSERT = f'INSERT INTO "{STEPS}" ({STEP_LIST}) '
UPSERT_STEP = STEP_INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + UPSERT_STEP_TAIL
INSERT_STEP = STEP_INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

# -- failed attempts (migration 0015): (run id, key, attempt, started, ended, retry at, error) --
# Written again by a retried write of the same failure: the first stays.
INSERT_ATTEMPT = (f'INSERT INTO "{STEP_ATTEMPTS}" ("run_id", "step_key", "attempt", '
                  '"started_at", "ended_at", "retry_at", "error") VALUES (?, ?, ?, ?, ?, ?, ?) '
                  'ON CONFLICT ("run_id", "step_key", "attempt") DO NOTHING')

# -- timers: one per pending step ------------------------------------------------------------
UPSERT_TIMER = (f'INSERT INTO "{TIMERS}" ("run_id", "step_key", "due_at", "kind") '
                'VALUES (?, ?, ?, ?) ON CONFLICT ("run_id", "step_key") DO UPDATE SET '
                '"due_at" = EXCLUDED."due_at", "kind" = EXCLUDED."kind"')
DELETE_TIMERS = f'DELETE FROM "{TIMERS}" WHERE "run_id" = ?'
DELETE_STEP_TIMER = f'DELETE FROM "{TIMERS}" WHERE "run_id" = ? AND "step_key" = ?'
DELETE_WAITS = f'DELETE FROM "{WAITS}" WHERE "run_id" = ?'

# -- parking: (status, wake at, attempt, run id, token, now, signal) --------------------------
PARK = (f'UPDATE "{RUNS}" SET "status" = ?, "wake_at" = ?, "lease_owner" = NULL, '
        '"lease_expires_at" = NULL, "enqueued_at" = NULL, "attempt" = ?, "inflight" = 0 '
        f'{FENCE} AND "signal" = ?')

# -- the end: (status, output, error, now) + the fence or (run id,) ---------------------------
END = (f'UPDATE "{RUNS}" SET "status" = ?, "output" = ?, "error" = ?, "ended_at" = ?, '
       '"lease_owner" = NULL, "lease_expires_at" = NULL, "enqueued_at" = NULL, "inflight" = 0 ')
END_FENCED = END + FENCE
END_UNFINISHED = END + f'WHERE "id" = ? AND "status" NOT IN ({FINAL})'

# -- an outside change to a pending step: (now, now, now, run id) -----------------------------
# The run's signal moves (a suspension fenced on the old value is refused); a parked run is
# queued, due now; a running one is left to its executor, whose suspension is refused.
NUDGE = (f'UPDATE "{RUNS}" SET "signal" = "signal" + 1, '
         '"status" = CASE WHEN "status" IN (\'sleeping\', \'waiting\') THEN \'queued\' '
         'ELSE "status" END, '
         '"wake_at" = CASE WHEN "status" IN (\'sleeping\', \'waiting\') THEN ? ELSE "wake_at" END, '
         '"enqueued_at" = CASE WHEN "status" IN (\'sleeping\', \'waiting\') THEN ? '
         'ELSE "enqueued_at" END '
         f'WHERE "id" = ? AND "status" NOT IN ({FINAL})')
NUDGE_RETURNING = NUDGE + ' RETURNING "status"'
# A pending step resolved from outside: (status, output, error, now, run id, key).
RESOLVE_STEP = (f'UPDATE "{STEPS}" SET "status" = ?, "output" = ?, "error" = ?, "ended_at" = ?, '
                '"attempts" = 1 WHERE "run_id" = ? AND "key" = ? AND "status" = \'waiting\'')

RELEASE = (f'UPDATE "{RUNS}" SET "lease_owner" = NULL, "lease_expires_at" = NULL, '
           '"status" = \'queued\', "enqueued_at" = NULL, "wake_at" = ?, '
           '"inflight" = CASE WHEN ? THEN "inflight" ELSE 0 END '
           'WHERE "id" = ? AND "lease_owner" = ?')
RELEASE_ORPHANS = (f'UPDATE "{RUNS}" SET "status" = \'queued\', "lease_owner" = NULL, '
                   '"lease_expires_at" = NULL, "enqueued_at" = NULL '
                   'WHERE "status" IN (\'queued\', \'running\') '
                   'AND ("lease_owner" IS NOT NULL OR "enqueued_at" IS NOT NULL)')

# -- starting runs -------------------------------------------------------------------------
EVENT_ROW = ("id", "name", "data", "user", "external_id", "ts", "v", "received_at",
             "traceparent")
RUN_ROW = ("id", "app_id", "function_id", "event_id", "status", "attempt", "created_at",
           "wake_at", "enqueued_at", "unique_key", "parent_run_id", "inflight", "replay_of",
           "replay_note", "traceparent")
INSERT_EVENT = (f'INSERT INTO "{EVENTS}" (' + ", ".join(f'"{c}"' for c in EVENT_ROW)
                + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_RUN = (f'INSERT INTO "{RUNS}" (' + ", ".join(f'"{c}"' for c in RUN_ROW)
              + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_RUN_ONCE = INSERT_RUN + ' ON CONFLICT ("unique_key") DO NOTHING'
INSERT_EVENT_TIMER = (f'INSERT INTO "{TIMERS}" ("run_id", "step_key", "due_at", "kind") '
                      "VALUES (?, '', ?, 'event')")
CLAIM_DEDUPE = (f'INSERT INTO "{DEDUPE}" ("key", "event_id", "expires_at") VALUES (?, ?, ?) '
                'ON CONFLICT ("key") DO UPDATE SET "event_id" = EXCLUDED."event_id", '
                f'"expires_at" = EXCLUDED."expires_at" WHERE "{DEDUPE}"."expires_at" <= ? '
                'RETURNING "event_id"')
ORIGINAL_EVENT = f'SELECT "event_id" FROM "{DEDUPE}" WHERE "key" = ?'

# -- timers and the sweeper ------------------------------------------------------------------
# Deadlines (``timeouts``) are not woken here: they cancel (store/cancellation.py).
TIMERS_DUE = (f'SELECT "run_id", "step_key", "kind" FROM "{TIMERS}" WHERE "due_at" <= ? '
              "AND \"kind\" <> 'deadline' ORDER BY \"due_at\" LIMIT ?")
NEXT_DUE = f'SELECT MIN("due_at") FROM "{TIMERS}"'
UNSENT = (f'SELECT "id" FROM "{RUNS}" WHERE {RUNNABLE} AND ("enqueued_at" IS NULL '
          'OR "enqueued_at" < ?) ORDER BY "wake_at" LIMIT ?')
RUNNABLE_IDS = f'SELECT "id" FROM "{RUNS}" WHERE {RUNNABLE} ORDER BY "created_at", "id" LIMIT ?'

# -- paused functions --------------------------------------------------------------------------
PAUSE = (f'INSERT INTO "{PAUSED}" ("function_id", "paused_at", "skipped_ticks") VALUES (?, ?, 0) '
         'ON CONFLICT ("function_id") DO NOTHING')
UNPAUSE = f'DELETE FROM "{PAUSED}" WHERE "function_id" = ?'
# (ticks, last tick, function id): one row updated when the function is paused.
SKIP_TICKS = (f'UPDATE "{PAUSED}" SET "skipped_ticks" = "skipped_ticks" + ?, '
              '"last_skipped_tick" = ? WHERE "function_id" = ?')
PAUSED_ROWS = (f'SELECT "function_id", "paused_at", "skipped_ticks", "last_skipped_tick" '
               f'FROM "{PAUSED}"')
# A resumed function's due runs held by no live lease, oldest due first: (function id, now, now).
DUE_OF_FUNCTION = (f'SELECT "id" FROM "{RUNS}" WHERE "function_id" = ? '
                   'AND "status" IN (\'queued\', \'running\') AND "wake_at" <= ? '
                   'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < ?) '
                   'ORDER BY "wake_at", "id"')


def marks(n: int) -> str:
    """``?, ?, …`` for ``n`` values."""
    return ", ".join("?" * n)

# The same, only when the run's step ``key`` still waits: (now, now, run id, run id, key).
NUDGE_FOR_STEP = (NUDGE + f' AND EXISTS (SELECT 1 FROM "{STEPS}" WHERE "run_id" = ? '
                  'AND "key" = ? AND "status" = \'waiting\') RETURNING "status"')
# A timer fired: (now, run id). A parked run, or one queued for later (a future-dated
# event), is queued now; a running one only sees its signal move.
TIMER_FIRED = (f'UPDATE "{RUNS}" SET "signal" = "signal" + 1, "enqueued_at" = ?, '
               '"status" = CASE WHEN "status" IN (\'sleeping\', \'waiting\') THEN \'queued\' '
               'ELSE "status" END '
               f'WHERE "id" = ? AND "status" NOT IN ({FINAL}) RETURNING "status"')
# A finished sleep: (now, run id, key, now).
SLEPT = (f'UPDATE "{STEPS}" SET "status" = \'completed\', "ended_at" = ?, "attempts" = 1 '
         'WHERE "run_id" = ? AND "key" = ? AND "status" = \'sleeping\' AND "wake_at" <= ?')
DELETE_TIMER_DUE = (f'DELETE FROM "{TIMERS}" WHERE "run_id" = ? AND "step_key" = ? '
                    'AND "due_at" <= ?')
# A fenced checkpoint that does not touch the run row: (step values…, run id, token, now).
CHECKPOINT = (STEP_INSERT + 'SELECT "id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? '
              f'FROM "{RUNS}" {FENCE}' + UPSERT_STEP_TAIL)
