"""The store: every read and write of the system tables, and every run state transition.

Nothing outside this package builds SQL on the system tables. :class:`Store` gathers
the parts, each on the same database and :class:`~.dialect.Dialect`:

- :attr:`Store.runs` — the run state machine (:mod:`.runs`): acquire, fence,
  checkpoint, suspend, complete, fail, release, wake, cancel;
- :attr:`Store.events` — the intake's write and internal runs (:mod:`.events`);
- :attr:`Store.waits` — ``wait_for_event`` rows and their indexed matching (:mod:`.waits`);
- :attr:`Store.timers`, :attr:`Store.cron` — the scheduler's side (:mod:`.timers`);
- :attr:`Store.queries` — named reads for the API, dashboard, CLI and metrics, and
  replay (:mod:`.queries`).

The schema is :mod:`.schema`; connections are :mod:`.connection`; the schema's versioned
migrations are :mod:`.migrations`.
"""

from __future__ import annotations

import peewee as pw

from .connection import ping
from .dialect import Dialect, bulk_insert
from .events import Accepted, EventStore
from .migrations import migrate
from .queries import Queries
from .runs import Acquired, Parent, RunStore, StepWrite, invoke_unique_key
from .schema import (AppModel, EnumField, RunRow, RunStatus, StepKind, StepRow, StepStatus,
                     TimerKind)
from .timers import CronStore, TimerStore
from .waits import WaitStore


class Store:
    """The system tables on one database (see the package docstring)."""

    def __init__(self, db: pw.Database, *, lease_ttl_ms: int = 30_000,
                 reconnect_window_ms: int = 10_000):
        self.db = db
        self.dialect = Dialect.of(db)
        self.waits = WaitStore(self.dialect)
        self.events = EventStore(self.dialect, self.waits)
        self.runs = RunStore(self.dialect, lease_ttl_ms=lease_ttl_ms,
                             reconnect_window_ms=reconnect_window_ms,
                             start_run=self.events.start_run)
        self.timers = TimerStore(self.dialect)
        self.cron = CronStore(self.dialect)
        self.queries = Queries(self.dialect)

    def migrate(self, extra_models=()) -> list[str]:
        """Apply the pending migrations of the system tables, and create what ``extra_models``'
        tables lack (idempotent; no DDL when nothing is pending)."""
        return migrate(self.db, extra_models)

    def ping(self) -> None:
        ping(self.db)

    def atomic(self):
        """A transaction (a savepoint inside one) on the store's database."""
        return self.db.atomic()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()


__all__ = ["Store", "Accepted", "Acquired", "Parent", "StepWrite", "invoke_unique_key",
           "AppModel", "EnumField", "RunRow", "StepRow", "RunStatus", "StepStatus", "StepKind",
           "TimerKind", "bulk_insert", "Dialect", "EventStore", "RunStore", "Queries",
           "TimerStore", "CronStore", "WaitStore"]
