"""Cron state: the last tick each cron function was scheduled for, locked while a tick
is started (``FOR UPDATE`` on PostgreSQL; SQLite's write transaction already excludes
others), so several schedulers start each tick once."""

from __future__ import annotations

from typing import Iterable

from .dialect import Dialect
from .schema import CRON_STATE


class CronStore:
    """The last tick each cron function was scheduled for."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    def ensure(self, function_ids: Iterable[str], now: int) -> None:
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
