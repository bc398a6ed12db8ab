"""Timers, the sweeper's view of the runs, and cron state: the store side of the scheduler.

- :meth:`TimerStore.fire_due` claims the timers that are due (sleeps, retry backoffs,
  future-dated events, wait and invoke timeouts) and queues their runs. Rows are locked
  run first, then timer (the lock order of every transition), with ``SKIP LOCKED`` on
  PostgreSQL so several schedulers share the work; one statement there.
- :meth:`TimerStore.unsent` lists due runs that no live lease holds and whose last
  wake-up is older than a bound: the sweeper's candidates.
- :class:`CronStore` keeps each cron function's last tick, locked while a tick is started.
"""

from __future__ import annotations

from .dialect import Dialect
from .schema import CRON_STATE, RUNS, STEPS, TIMERS
from .runs import RUNNABLE

_PG_FIRE = f"""
WITH locked AS (
  SELECT r."id" FROM "{RUNS}" r WHERE r."id" IN (
    SELECT "run_id" FROM "{TIMERS}" WHERE "due_at" <= ? ORDER BY "due_at" LIMIT ?)
  FOR UPDATE OF r SKIP LOCKED),
t AS (DELETE FROM "{TIMERS}" WHERE "run_id" IN (SELECT "id" FROM locked) AND "due_at" <= ?
      RETURNING "run_id", "kind"),
s AS (UPDATE "{STEPS}" SET "status" = 'completed', "ended_at" = ?, "attempts" = 1
      WHERE "run_id" IN (SELECT "run_id" FROM t WHERE "kind" = 'sleep')
        AND "status" = 'sleeping' AND "wake_at" <= ?),
q AS (UPDATE "{RUNS}" SET "status" = 'queued', "enqueued_at" = ?
      WHERE "id" IN (SELECT "run_id" FROM t) AND "status" IN ('sleeping', 'waiting', 'queued')
      RETURNING "id")
SELECT "id" FROM q
"""
_DUE = f'SELECT "run_id", "kind" FROM "{TIMERS}" WHERE "due_at" <= ? ORDER BY "due_at" LIMIT ?'
# A sleep that is over is a completed step: recorded with the wake-up, so the resumed run
# does not spend a checkpoint on it (no executor holds a sleeping run).
_SLEPT = (f'UPDATE "{STEPS}" SET "status" = \'completed\', "ended_at" = ?, "attempts" = 1 '
          'WHERE "run_id" = ? AND "status" = \'sleeping\' AND "wake_at" <= ?')
_QUEUE = (f'UPDATE "{RUNS}" SET "status" = \'queued\', "enqueued_at" = ? WHERE "id" = ? '
          'AND "status" IN (\'sleeping\', \'waiting\', \'queued\')')


class TimerStore:
    def __init__(self, dialect: Dialect):
        self.d = dialect
        self.db = dialect.db

    def fire_due(self, now: int, limit: int = 1_000) -> list[str]:
        """Claim up to ``limit`` due timers and queue their runs; returns the run ids (to
        enqueue after commit). Safe to call from several schedulers at once."""
        if self.d.postgres:
            return [r for (r,) in self.d.execute(_PG_FIRE, (now, limit, now, now, now, now))]
        queued = []
        with self.d.transaction():
            for run_id, kind in self.d.execute(_DUE, (now, limit)).fetchall():
                self.d.execute(f'DELETE FROM "{TIMERS}" WHERE "run_id" = ?', (run_id,))
                if kind == "sleep":
                    self.d.execute(_SLEPT, (now, run_id, now))
                if self.d.execute(_QUEUE, (now, run_id)).rowcount == 1:
                    queued.append(run_id)
        return queued

    def next_due(self) -> int | None:
        """When the earliest timer is due (epoch ms), or ``None``."""
        return self.d.execute(f'SELECT MIN("due_at") FROM "{TIMERS}"').fetchone()[0]

    def unsent(self, now: int, sent_before: int, limit: int) -> list[str]:
        """Due runs held by no live lease whose last wake-up was sent before ``sent_before``
        (or never), oldest due first; each is marked as sent now."""
        with self.d.transaction():
            ids = [r for (r,) in self.d.execute(
                f'SELECT "id" FROM "{RUNS}" WHERE {RUNNABLE} AND ("enqueued_at" IS NULL '
                f'OR "enqueued_at" < ?) ORDER BY "wake_at" LIMIT ?',
                (now, now, sent_before, limit))]
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                self.d.execute(f'UPDATE "{RUNS}" SET "enqueued_at" = ? WHERE "id" IN '
                               f'({", ".join("?" * len(chunk))})', (now, *chunk))
        return ids

    def runnable(self, now: int, limit: int = 100_000) -> list[str]:
        """Due runs held by no live lease, oldest first (the in-process tester drives these)."""
        return [r for (r,) in self.d.execute(
            f'SELECT "id" FROM "{RUNS}" WHERE {RUNNABLE} ORDER BY "created_at", "id" LIMIT ?',
            (now, now, limit))]


class CronStore:
    """The last tick each cron function was scheduled for."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    def ensure(self, function_ids, now: int) -> None:
        """Functions seen for the first time start from ``now`` (no backfill)."""
        for fn_id in function_ids:
            self.d.execute(f'INSERT INTO "{CRON_STATE}" ("function_id", "last_tick_ms", '
                           '"updated_at") VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
                           (fn_id, now, now))

    def lock_last_tick(self, function_id: str) -> int | None:
        """The function's last tick, its row locked until the caller's transaction ends
        (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already excludes others)."""
        row = self.d.execute(f'SELECT "last_tick_ms" FROM "{CRON_STATE}" WHERE "function_id" = ?'
                             + self.d.for_update, (function_id,)).fetchone()
        return None if row is None else row[0]

    def set_last_tick(self, function_id: str, tick: int, now: int) -> None:
        self.d.execute(f'UPDATE "{CRON_STATE}" SET "last_tick_ms" = ?, "updated_at" = ? '
                       'WHERE "function_id" = ?', (tick, now, function_id))
