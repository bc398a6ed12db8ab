"""The composition root: one process's engine, and the one way every process boots.

:class:`Runtime` composes the parts on one database and broker — the store, the
executor, the intake, the timekeeper, control — passing each what it needs (the
store, the registry, a clock, an ``enqueue`` callable). Nothing it composes imports it.

A process has a current runtime (like Dramatiq's global broker): :func:`get_runtime`
builds it from the environment the first time it is needed — which is when a module
declares a :class:`~tengo_jobs.Jobs` client, so ``dramatiq actors`` finds the actor — and
:func:`set_runtime` replaces it (tests, the dev server).

:func:`boot` is the one boot path of every process kind (``web``, ``worker``,
``scheduler``, ``dev``, ``cli``)::

    settings read once (the environment, or given)
    → log redaction of every configured secret installed (before anything logs), and the
      process's logging configured (web, scheduler, dev; Dramatiq configures the worker's,
      whose format — TENGO_LOG_FORMAT — is set here)
    → the runtime composed (no connection opened yet)
    → the function modules imported (TENGO_FUNCTIONS), their extensions' secrets redacted
    → the production check of that kind (production refuses to start unsafe, naming
      every problem: :meth:`Settings.production_problems`)
    → the system and extension tables migrated

:func:`refuse_to_start` is how an entry point that cannot boot says why and exits.

The Dramatiq worker process imports the function modules itself; the runtime they bind
to boots the rest of the way when the worker process has booted (a broker middleware,
:class:`tengo_jobs.broker.BootOnWorkerStart`), so importing ``actors`` opens no connection.

The runtime never asks which broker it has: its :class:`~tengo_jobs.broker.BrokerAdapter`
says whether sends go through the background :class:`~tengo_jobs.broker.Waker` and gives
the sweeper its probe.
"""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import threading
from typing import Any, Iterable, NoReturn

import dramatiq
import peewee as pw

from . import logsafe, tracing
from .broker import BootOnWorkerStart, Waker, adapter_for, declare_actor, make_broker
from .clock import Clock
from .config import Settings
from .errors import ConfigurationError, TengoJobsError
from .core.registry import Registry, load_modules, registry as default_registry
from .engine.control import Control
from .engine.drivers.http import HttpDriver
from .engine.executor import Executor
from .engine.heartbeat import Heartbeat
from .engine.intake import Intake
from .engine.sdk_sync import SdkApps
from .middleware import Middleware
from .engine.timekeeper import Timekeeper
from .store import Store
from .store.connection import open_database
from .store.schema import database_proxy

log = logging.getLogger(__name__)

PROCESS_KINDS = ("web", "worker", "scheduler", "dev", "cli")
_LOGGING_KINDS = ("web", "scheduler", "dev")  # Dramatiq sets up the worker's; the CLI prints


class Runtime:
    """One process's engine on one database and broker (every part injectable)."""

    def __init__(self, *, settings: Settings | None = None, database: pw.Database | None = None,
                 broker: dramatiq.Broker | None = None, clock: Clock | None = None,
                 registry: Registry | None = None, set_global_broker: bool = True):
        self.settings = settings or Settings.from_env()
        self.db = database or open_database(self.settings.database_url)
        database_proxy.initialize(self.db)
        self.registry = registry or default_registry
        self.store = Store(self.db, lease_ttl_ms=self.settings.lease_ttl_ms,
                           reconnect_window_ms=self.settings.reconnect_window_ms,
                           functions=self.registry.find)
        self.broker = broker or make_broker(self.settings)
        self.broker_adapter = adapter_for(self.broker)
        self.clock = clock or Clock()
        if set_global_broker:
            dramatiq.set_broker(self.broker)
        self.executor = Executor(store=self.store, registry=self.registry, clock=self.clock,
                                 settings=self.settings, enqueue=self.enqueue, send=self.send)

        def tengo_jobs_execute(run_id: str) -> None:
            # an async handler continues on the event loop: this worker thread is free
            self.executor.execute(run_id, detach=True)

        # Inngest SDK apps: their functions are known here from tj_apps, and run over HTTP.
        self.sdk_apps = SdkApps(store=self.store, registry=self.registry, clock=self.clock)
        self.executor.resolve_unknown = self.sdk_apps.refresh
        self.executor.add_driver(HttpDriver(
            signing_key=self.settings.signing_key, production=self.settings.is_production,
            find_function=lambda fn_id: self.registry.find(fn_id) or self.sdk_apps.refresh(fn_id)))

        self.actor = declare_actor(self.broker, tengo_jobs_execute, self.settings.queue_name)
        self._waker = Waker(self._send_now) if self.broker_adapter.needs_waker else None
        self.intake = Intake(store=self.store, registry=self.registry, clock=self.clock,
                             enqueue=self.enqueue, group_commit=self.settings.group_commit,
                             group_window_ms=self.settings.group_commit_window_ms)
        self.timekeeper = Timekeeper(store=self.store, registry=self.registry, clock=self.clock,
                                     settings=self.settings, enqueue=self.enqueue,
                                     broker=self.broker_adapter.probe(self.settings.queue_name))
        self.control = Control(store=self.store, registry=self.registry, clock=self.clock,
                               enqueue=self.enqueue)
        self.heartbeat: Heartbeat | None = None

    def now(self) -> int:
        return self.clock.now()

    def send(self, events: Any, *, now: int | None = None,
             middleware: tuple[Middleware, ...] = (),
             traceparent: str | None = None) -> list[str]:
        """Send one event (a dict or ``Event``) or a list; returns one event id per event
        (``middleware``: the sending client's, see :meth:`Intake.send`; ``traceparent``: the
        caller's W3C trace context, which the runs' traces continue — a malformed one is
        ignored)."""
        self.sdk_apps.reload_if_changed()
        if traceparent is not None and tracing.parse_traceparent(traceparent) is None:
            traceparent = None
        return self.intake.send(events, now=now, middleware=middleware,
                                traceparent=traceparent)

    def enqueue(self, run_ids: Iterable[str]) -> None:
        """Wake these runs (their rows are committed): from a background thread with Redis,
        at once with the in-process broker. A lost wake-up is found by the sweeper."""
        run_ids = list(run_ids)
        if self._waker is not None:
            self._waker.wake(run_ids)
        else:
            self._send_now(run_ids)

    def _send_now(self, run_ids: list[str]) -> int:
        return self.broker_adapter.send_now(self.actor, run_ids)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every wake-up handed over so far has left for the broker (``False`` on
        timeout). Processes flush at exit; tests that inspect the broker flush first."""
        return self._waker.flush(timeout) if self._waker is not None else True

    def migrate(self) -> list[str]:
        """Create or upgrade the system tables and the tables of every registered extension."""
        return self.store.migrate(self.registry.extension_models())

    def make_heartbeat(self, kind: str) -> Heartbeat:
        """This process's heartbeat as ``kind`` (not started: the scheduler beats from its
        loop, :meth:`start_heartbeat` from a thread of its own)."""
        if self.heartbeat is None:
            self.heartbeat = Heartbeat(store=self.store, clock=self.clock, kind=kind,
                                       version=_version(), busy=self.executor.executing,
                                       interval_ms=self.settings.heartbeat_interval_ms)
        return self.heartbeat

    def start_heartbeat(self, kind: str) -> "Runtime":
        """Beat every ``TENGO_HEARTBEAT_INTERVAL`` from a background thread (workers)."""
        self.make_heartbeat(kind).start()
        return self

    def close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        self.executor.stop()
        self.flush()
        self.store.close()


def _version() -> str:
    """The installed distribution's version (what a heartbeat reports)."""
    try:
        return importlib.metadata.version("tengo-jobs")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_current: Runtime | None = None
_lock = threading.RLock()


def get_runtime() -> Runtime:
    """The current runtime, composed from the environment on first use (no connection opened)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                settings = Settings.from_env()
                logsafe.install(settings.secrets())
                _current = Runtime(settings=settings)
                _current.broker.add_middleware(BootOnWorkerStart(
                    lambda: boot("worker").start_heartbeat("worker")))
    return _current


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Replace the current runtime (``None`` clears it); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
    return previous


def boot(kind: str, *, settings: Settings | None = None, load_functions: bool = True,
         migrate: bool = True, log_level: str | None = None, configure_logging: bool = True,
         **parts: Any) -> Runtime:
    """Boot this process as ``kind`` (see the module docstring) and return its runtime.

    With ``settings`` (or ``parts``: database, broker, clock…) a new runtime is composed
    and made current; otherwise the current one is used (or composed from the environment).
    ``log_level`` (default ``INFO``) applies where this process configures logging;
    ``configure_logging=False`` leaves logging as it is (an application's own process).
    """
    if kind not in PROCESS_KINDS:
        raise ConfigurationError(f"kind must be one of {', '.join(PROCESS_KINDS)}, got {kind!r}")
    with _lock:
        if settings is not None or parts:
            settings = settings or Settings.from_env()
            logsafe.install(settings.secrets())
            runtime = Runtime(settings=settings, **parts)
            set_runtime(runtime)
        else:
            runtime = get_runtime()
    if configure_logging and kind in _LOGGING_KINDS:
        logsafe.configure_logging(log_level or "INFO", runtime.settings.log_format)
    elif configure_logging and kind == "worker":  # on the handler Dramatiq configured
        logsafe.apply_format(runtime.settings.log_format)
    if load_functions:
        load_modules(runtime.settings.functions)
    logsafe.install(runtime.registry.extension_secrets())
    runtime.settings.check_production(
        kind, extension_secrets=runtime.registry.extension_named_secrets())
    if migrate:
        runtime.migrate()
        runtime.sdk_apps.load()  # the functions of synced Inngest SDK apps
    log.debug("booted as %s", kind)
    return runtime


def refuse_to_start(kind: str, exc: BaseException, *, code: int = 2) -> NoReturn:
    """Say on stderr why this ``kind`` of process cannot start (redacted) and exit with ``code``.

    The entry points call it for a :class:`~tengo_jobs.errors.TengoJobsError` at boot;
    gunicorn needs ``code=4`` ("App failed to load": the master stops instead of
    starting another worker)."""
    message = str(exc) if isinstance(exc, TengoJobsError) else f"{type(exc).__name__}: {exc}"
    sys.stderr.write(logsafe.redact(f"{kind}: {message}") + "\n")
    sys.stderr.flush()
    raise SystemExit(code)
