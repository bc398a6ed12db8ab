"""The process runtime: settings, database, broker, clock and function registry in one object.

Like Dramatiq's global broker, a process has a current runtime (``get_runtime()``),
built from the environment the first time it is needed, and replaceable with
``set_runtime()`` (tests, the dev server). Every part is injectable.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

import dramatiq
import peewee as pw

from . import broker as broker_mod
from .clock import Clock
from .config import Settings
from .errors import ConfigurationError
from .db import migrate, open_database
from .models import Run
from .registry import Registry, registry as default_registry

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, *, settings: Settings | None = None, database: pw.Database | None = None,
                 broker: dramatiq.Broker | None = None, clock: Clock | None = None,
                 registry: Registry | None = None, set_global_broker: bool = True):
        self.settings = settings or Settings.from_env()
        from .logsafe import install as install_log_redaction

        install_log_redaction(self.settings.secrets())  # every process builds a runtime at boot
        self.db = database or open_database(self.settings.database_url)
        if not isinstance(self.db, (pw.PostgresqlDatabase, pw.SqliteDatabase)):
            raise ConfigurationError(f"tengo_jobs runs on PostgreSQL or SQLite, not "
                                     f"{type(self.db).__name__}")
        if database is not None:
            from .models import database_proxy

            database_proxy.initialize(database)
        self.broker = broker or broker_mod.make_broker(self.settings)
        self.clock = clock or Clock()
        self.registry = registry or default_registry
        if set_global_broker:
            dramatiq.set_broker(self.broker)
        from .executor import Executor

        self.executor = Executor(self)
        def tengo_jobs_execute(run_id: str) -> None:
            self.executor.execute(run_id)

        self.actor = broker_mod.declare_actor(self.broker, tengo_jobs_execute,
                                              self.settings.queue_name)

    # -- conveniences --------------------------------------------------------------------
    def now(self) -> int:
        return self.clock.now()

    def migrate(self) -> list[str]:
        """Create the system tables and the tables of every registered extension."""
        return migrate(self.db, self.registry.extension_models())

    def enqueue(self, run_ids: Iterable[str]) -> int:
        """Send one wake-up message per run (after the rows are committed); returns how many.

        The rows are already committed, so a broker failure here loses nothing: the
        sweeper re-enqueues these runs. It is logged, not raised, so a caller whose
        event was accepted is not told otherwise (and does not send it twice).
        """
        run_ids = list(run_ids)
        try:
            if broker_mod.send_many(self.actor, run_ids):
                return len(run_ids)
        except Exception:  # noqa: BLE001 - fall back to one message at a time
            log.warning("bulk enqueue of %d runs failed; sending one by one", len(run_ids),
                        exc_info=True)
        count = 0
        for run_id in run_ids:
            try:
                self.actor.send(run_id)
            except Exception:  # noqa: BLE001 - the outbox row is the source of truth
                log.error("could not enqueue run %s; the sweeper will re-enqueue it", run_id,
                          exc_info=True)
                continue
            count += 1
        return count

    def send(self, events, *, now: int | None = None) -> list[str]:
        """Send one event (a dict or ``Event``) or a list; returns one event id per event."""
        from .intake import send_events

        return send_events(self, events, now=now)

    def mark_enqueued(self, run_ids: list[str], now: int) -> None:
        for i in range(0, len(run_ids), 500):
            Run.update(enqueued_at=now).where(Run.id.in_(run_ids[i:i + 500])).execute()

    def close(self) -> None:
        self.executor.stop()
        if not self.db.is_closed():
            self.db.close()


_current: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The current runtime, built from the environment on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Runtime()
    return _current


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Replace the current runtime (``None`` clears it); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
    return previous


def boot(settings: Settings | None = None, *, load_functions: bool = True, **kwargs) -> Runtime:
    """Build the process runtime from ``settings`` (default: the environment), set it as
    current, create the tables, and import the function modules (``TENGO_FUNCTIONS``)."""
    from .registry import load_modules

    runtime = Runtime(settings=settings or Settings.from_env(), **kwargs)
    set_runtime(runtime)
    if load_functions:
        load_modules(runtime.settings.functions)
    from .logsafe import install as install_log_redaction

    install_log_redaction(runtime.registry.extension_secrets())
    runtime.migrate()  # after the modules: their extensions' tables too
    return runtime
