"""Reads for the dashboard's health page that no other store module answers: the oldest
timer that is due and not fired yet (how far the scheduler's timer poll is behind).

Each is one lookup on an index (``tj_timers.due_at``), never a scan.
"""

from __future__ import annotations

from typing import Any

from .dialect import Dialect
from .schema import TIMERS


class HealthStore:
    def __init__(self, dialect: Dialect):
        self.d = dialect

    def oldest_due_timer(self, now: int) -> dict[str, Any] | None:
        """The timer due longest ago and still unfired (``{"run_id", "step_key", "kind",
        "due_at"}``, epoch ms), or ``None``."""
        row = self.d.execute(f'SELECT "run_id", "step_key", "kind", "due_at" FROM "{TIMERS}" '
                             'WHERE "due_at" <= ? ORDER BY "due_at" LIMIT 1', (now,)).fetchone()
        if row is None:
            return None
        return {"run_id": row[0], "step_key": row[1], "kind": getattr(row[2], "value", row[2]),
                "due_at": int(row[3])}
