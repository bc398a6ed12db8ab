"""Heartbeats: each worker and scheduler process says, every few seconds, that it is alive.

One row per process (``tj_heartbeats``, primary key ``(host, pid)``), upserted by the
process itself with its kind, version, threads busy, start time and interval. A process
whose row was not renewed for :data:`DOWN_AFTER_INTERVALS` of its own intervals is
reported ``down``; rows not renewed for :data:`FORGET_AFTER_MS` are deleted by the pruning.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..durations import ms_to_iso
from .dialect import Dialect
from .schema import HEARTBEATS

DOWN_AFTER_INTERVALS = 3
FORGET_AFTER_MS = 24 * 3_600_000
MAX_LISTED = 200  # /healthz lists at most this many processes, the most recently seen first


@dataclasses.dataclass(frozen=True)
class Beat:
    host: str
    pid: int
    kind: str
    version: str
    threads_busy: int
    started_at: int
    interval_ms: int


class HeartbeatStore:
    def __init__(self, dialect: Dialect):
        self.d = dialect

    def beat(self, beat: Beat, now: int) -> None:
        self.d.execute(
            f'INSERT INTO "{HEARTBEATS}" ("host", "pid", "kind", "version", "threads_busy", '
            '"started_at", "last_seen", "interval_ms") VALUES (?, ?, ?, ?, ?, ?, ?, ?) '
            'ON CONFLICT ("host", "pid") DO UPDATE SET "kind" = EXCLUDED."kind", '
            '"version" = EXCLUDED."version", "threads_busy" = EXCLUDED."threads_busy", '
            '"started_at" = EXCLUDED."started_at", "last_seen" = EXCLUDED."last_seen", '
            '"interval_ms" = EXCLUDED."interval_ms"',
            (beat.host, beat.pid, beat.kind, beat.version, beat.threads_busy, beat.started_at,
             now, beat.interval_ms))

    def processes(self, now: int) -> list[dict[str, Any]]:
        """Every process seen in the last day, most recently seen first, each ``up`` or
        ``down`` (no beat for three of its intervals)."""
        rows = self.d.execute(
            f'SELECT "kind", "host", "pid", "version", "threads_busy", "started_at", "last_seen", '
            f'"interval_ms" FROM "{HEARTBEATS}" WHERE "last_seen" >= ? '
            'ORDER BY "last_seen" DESC LIMIT ?', (now - FORGET_AFTER_MS, MAX_LISTED)).fetchall()
        return [{"kind": kind, "host": host, "pid": pid, "version": version,
                 "threads_busy": busy, "started_at": ms_to_iso(started),
                 "last_seen": ms_to_iso(seen),
                 "status": "down" if now - seen > DOWN_AFTER_INTERVALS * interval else "up"}
                for kind, host, pid, version, busy, started, seen, interval in rows]

    def forget(self, now: int) -> int:
        """Delete the rows of processes not seen for a day; returns how many."""
        return int(self.d.execute(f'DELETE FROM "{HEARTBEATS}" WHERE "last_seen" < ?',
                                  (now - FORGET_AFTER_MS,)).rowcount)
