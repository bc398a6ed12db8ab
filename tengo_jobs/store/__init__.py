"""The store: every read and write of the system tables, and every run state transition.

Nothing outside this package builds SQL on the system tables. The transitions are a
contract (:mod:`.contract`) with one implementation per database (:mod:`.postgres`,
:mod:`.sqlite`); :class:`Store` gathers the parts on one database:

- :attr:`Store.runs` — the run state machine: acquire, checkpoint, suspend, complete,
  fail, release, cancel, and :meth:`~.contract.RunStore.start`, the one way runs start
  outside the intake (cron, failure handlers, invoked children, replays);
- :attr:`Store.events` — the intake's write (:meth:`~.contract.EventStore.accept`);
- :attr:`Store.waits` — ``wait_for_event`` rows and their indexed matching (:mod:`.waits`);
- :attr:`Store.timers`, :attr:`Store.cron` — the scheduler's side;
- :attr:`Store.slots` — concurrency slots held across processes (:mod:`.slots`);
- :attr:`Store.retention` — the pruning's batched deletes and the row counts
  (:mod:`.retention`); :attr:`Store.heartbeats` — processes' heartbeats (:mod:`.heartbeats`);
- :attr:`Store.stats` — the performance summaries rolled up from finished runs and their
  reads (:mod:`.stats`); :attr:`Store.health` — the health page's timer lookup (:mod:`.health`);
- :attr:`Store.apps` — Inngest SDK apps and the functions they synced (:mod:`.apps`);
- :attr:`Store.queries` — named reads for the API, dashboard, CLI and metrics
  (:mod:`.queries`).

Both the intake and :meth:`~.contract.RunStore.start` pass every run through
:class:`~.admission.Admission` before writing it. The schema is :mod:`.schema`;
connections are :mod:`.connection`; the schema's versioned migrations are
:mod:`.migrations`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable

import peewee as pw

from ..core.ops import StepRecord
from . import postgres, sqlite
from .admission import Admission
from .apps import AppStore, SdkApp
from .cancellation import Cancelled, cancelled_error
from .connection import ping
from .contract import (Accepted, Acquired, EventStore, Parent, Parked, RunStart, RunStore,
                       TimerStore, invoke_unique_key)
from .cron import CronStore
from .dialect import Dialect, PostgresDialect, bulk_insert
from .flow import FlowAdmission
from .heartbeats import Beat, HeartbeatStore
from .migrations import migrate
from .queries import Queries
from .retention import IMPLEMENTATIONS as _RETENTION, Pruned, RetentionStore
from .health import HealthStore
from .stats import StatsStore
from .slots import NEVER, SlotStore, ThrottleStore
from .schema import (AppModel, EnumField, RunRow, RunStatus, StepKind, StepRow, StepStatus,
                     TimerKind)
from .waits import WaitStore

# The contract's implementation for each database.
_IMPLEMENTATIONS = {
    "postgresql": (postgres.PgRunStore, postgres.PgEventStore, postgres.PgTimerStore,
                   postgres.KEYED_LOOKBACK),
    "sqlite": (sqlite.SqliteRunStore, sqlite.SqliteEventStore, sqlite.SqliteTimerStore,
               sqlite.KEYED_LOOKBACK),
}

_SLOTS = {"postgresql": postgres.PgSlotStore, "sqlite": SlotStore}


class Store:
    """The system tables on one database (see the package docstring)."""

    def __init__(self, db: pw.Database, *, lease_ttl_ms: int = 30_000,
                 reconnect_window_ms: int = 10_000,
                 functions: Callable[[str], object] | None = None) -> None:
        self.db = db
        self.dialect = Dialect.of(db)
        run_store, event_store, timer_store, keyed = _IMPLEMENTATIONS[self.dialect.name]
        # ``functions``: a function's definition by id (the registry's ``find``), for the
        # admission's per-function rules (cancel_on, timeouts, throttle).
        self.admission = Admission(functions, ThrottleStore(self.dialect))
        self.slots: SlotStore = _SLOTS[self.dialect.name](self.dialect)
        self.waits = WaitStore(self.dialect, keyed)
        self.events: EventStore = event_store(self.dialect, self.waits, self.admission)
        self.runs: RunStore = run_store(self.dialect, lease_ttl_ms=lease_ttl_ms,
                                        reconnect_window_ms=reconnect_window_ms,
                                        waits=self.waits, admission=self.admission)
        self.admission.flow = FlowAdmission(self.dialect, cancel=self.runs.cancel,
                                            admit=self.admission.admit,
                                            lifecycle=self.waits.cancellation.register)
        self.timers: TimerStore = timer_store(self.dialect)
        self.cron = CronStore(self.dialect)
        self.queries = Queries(self.dialect)
        self.retention: RetentionStore = _RETENTION[self.dialect.name](self.dialect)
        self.heartbeats = HeartbeatStore(self.dialect)
        self.apps = AppStore(self.dialect)
        self.stats = StatsStore(self.dialect)
        self.health = HealthStore(self.dialect)

    def migrate(self, extra_models: Iterable[type[pw.Model]] = ()) -> list[str]:
        """Apply the pending migrations of the system tables, and create what ``extra_models``'
        tables lack (idempotent; no DDL when nothing is pending)."""
        return migrate(self.db, extra_models)

    def ping(self) -> None:
        ping(self.db)

    def atomic(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction (a savepoint inside one) on the store's database."""
        return self.db.atomic()

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def close_thread_connection(self) -> None:
        """Close this thread's connection (a thread that is about to end: parallel branches)."""
        if not self.db.is_closed() and not self.db.in_transaction():
            self.db.close()


__all__ = ["Store", "Accepted", "Acquired", "Parent", "Parked", "RunStart", "StepRecord",
           "invoke_unique_key", "AppModel", "EnumField", "RunRow", "StepRow", "RunStatus",
           "StepStatus", "StepKind", "TimerKind", "bulk_insert", "Dialect", "PostgresDialect",
           "EventStore", "RunStore", "TimerStore", "Queries", "CronStore", "WaitStore",
           "Admission", "Cancelled", "cancelled_error", "SlotStore", "NEVER", "RetentionStore",
           "Pruned", "HeartbeatStore", "Beat", "AppStore", "SdkApp", "StatsStore"]
