"""The ``Jobs`` client: declare durable functions and send events; serve and run the
engine inside an application's own process (:meth:`Jobs.init_app`, :meth:`Jobs.asgi_app`,
:meth:`Jobs.launch`)."""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import os
import threading
import time
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Mapping, MutableMapping, ParamSpec,
                    Sequence, TypeVar, cast)

from . import tracing
from .core.events import Event
from .core.functions import DEFAULT_RETRIES, FunctionDef, build_function
from .core.states import RunStatus
from .core.registry import Registry, registry as default_registry
from .config import Settings, environ_from_config
from .errors import ConfigurationError
from .middleware import Middleware, check_middleware
from .process.dev import Background
from .process.web import create_app, init_app as register_web
from .runtime import Runtime, boot, get_runtime
from .store.queries import run_dict
from .store.schema import RunRow

if TYPE_CHECKING:
    from flask import Flask

P = ParamSpec("P")
R = TypeVar("R")

#: What :meth:`Jobs.send` takes: one event (a dict ``{"name", "data", ...}`` or an
#: :class:`~tengo_jobs.Event`) or a list of them.
EventsToSend = Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]]

#: An ASGI 3 application, typed as Starlette and FastAPI take one (``app.mount``).
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[MutableMapping[str, Any]]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]

# wait_for_run polls the database: first after this many seconds, then each wait twice the
# last, up to the ceiling (a run finishing in 30 ms is seen in about 30 ms; a long one costs
# two reads a second).
WAIT_FIRST_POLL_S = 0.01
WAIT_MAX_POLL_S = 0.5


class _Polling:
    """The waits between reads of :meth:`Jobs.wait_for_run`, and its deadline."""

    def __init__(self, run_id: str, timeout: float | None):
        self.run_id, self.timeout = run_id, timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.delay = WAIT_FIRST_POLL_S

    def next_delay(self, run: "RunResult") -> float:
        """Seconds to wait before the next read; ``TimeoutError`` once the time is up."""
        delay, self.delay = self.delay, min(self.delay * 2, WAIT_MAX_POLL_S)
        if self.deadline is None:
            return delay
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"run {self.run_id!r} did not end within {self.timeout} s "
                               f"(it is {run.status.value})")
        return min(delay, left)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A run as :meth:`Jobs.get_run` reads it: its status and, once it ended, its output
    (what the handler returned, decoded from JSON) or its error (``{"name", "message",
    ...}``). Times are ISO 8601 text (UTC), as the REST API gives them."""

    id: str
    function_id: str
    status: RunStatus
    output: Any
    error: dict[str, Any] | None
    attempt: int
    event_id: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None

    @property
    def done(self) -> bool:
        """Whether the run ended (completed, failed or cancelled)."""
        return self.status.is_final

    @classmethod
    def from_row(cls, row: RunRow) -> "RunResult":
        body = run_dict(row)
        return cls(id=body["id"], function_id=body["function_id"], status=row.status,
                   output=body["output"], error=body["error"], attempt=body["attempt"],
                   event_id=body["event_id"], created_at=body["created_at"],
                   started_at=body["started_at"], ended_at=body["ended_at"])


class Jobs:
    """An app's client, like ``Inngest(app_id=...)``.

    ``extensions`` are the application's :class:`~tengo_jobs.Extension` objects (its
    tables, web pages and CLI commands), known to every process that loads this client.

    Declaring a client binds the process runtime (database, broker) from the
    environment if none is set yet — as Dramatiq's ``@actor`` binds ``get_broker()`` —
    so ``dramatiq MODULE`` finds the run-executing actor. Pass ``runtime=`` to bind
    another one explicitly.
    """

    def __init__(self, app_id: str, *, extensions: Any = (), runtime: Any = None,
                 registry: Registry | None = None,
                 middleware: Sequence[Middleware] | None = None) -> None:
        if not isinstance(app_id, str) or not app_id.strip():
            raise ConfigurationError(f"Jobs(app_id=...) must be a non-empty string, got {app_id!r}")
        self.app_id = app_id
        #: Hooks around executions, steps and sends (:mod:`tengo_jobs.middleware`), for the
        #: functions this client declares and the events it sends.
        self.middleware: tuple[Middleware, ...] = check_middleware(middleware)
        self._runtime = runtime
        self.registry = registry or default_registry
        for extension in extensions:
            self.registry.add_extension(extension)
        self.functions: dict[str, FunctionDef[..., Any]] = {}
        # the worker threads and scheduler loop of launch()
        self._background: Background | None = None
        self._embed_lock = threading.RLock()
        if runtime is None:
            self.runtime  # bind the process runtime now (Dramatiq's CLI needs the actor)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is not None:
            return cast(Runtime, self._runtime)
        return get_runtime()

    def function(self, id: str, *, event: str | list[str] | None = None, cron: str | None = None,
                 retries: int = DEFAULT_RETRIES, on_failure: Callable[..., Any] | None = None,
                 misfire: str = "coalesce", name: str | None = None,
                 event_schema: type | None = None,
                 **options: Any) -> Callable[[Callable[P, R]], FunctionDef[P, R]]:
        """Declare a durable function ``handler(ctx, step)`` triggered by ``event`` or ``cron``
        (an ``async def`` handler gets an :class:`~tengo_jobs.AsyncStep`).

        ``event_schema``: a pydantic model; an event this function is triggered by whose
        ``data`` does not validate is refused when sent (HTTP 400 naming the field)."""

        def decorate(handler: Callable[P, R]) -> FunctionDef[P, R]:
            fn = build_function(self.app_id, id, handler, event=event, cron=cron, retries=retries,
                                on_failure=on_failure, misfire=misfire, name=name,
                                event_schema=event_schema, **options)
            fn.middleware = self.middleware
            if fn.on_failure is not None:
                fn.on_failure.middleware = self.middleware
            self.registry.add(fn)
            if fn.on_failure is not None:
                self.registry.add(fn.on_failure)
            self.functions[fn.id] = fn
            return fn

        return decorate

    def send(self, events: EventsToSend, *, now: int | None = None) -> list[str]:
        """Send one event (a dict or ``Event``) or a list; returns one event id per event.
        Called inside an active OpenTelemetry span, the runs' traces continue it."""
        traceparent = tracing.current_traceparent()
        if self.middleware:
            return self.runtime.send(events, now=now, middleware=self.middleware,
                                     traceparent=traceparent)
        return self.runtime.send(events, now=now, traceparent=traceparent)

    async def send_async(self, events: EventsToSend, *, now: int | None = None) -> list[str]:
        """:meth:`send` from asyncio code, with the same contract (validation, ids, runs
        started in the same transaction). The intake runs in a thread
        (``asyncio.to_thread``): the event loop is not blocked on the database round trip,
        though one thread is used per call in flight (an async database driver would not
        need it: not done yet)."""
        return await asyncio.to_thread(self.send, events, now=now)

    # -- a run's result ----------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunResult:
        """The run ``run_id`` now (:class:`RunResult`); ``RunNotFoundError`` if there is none."""
        return RunResult.from_row(self.runtime.store.queries.run(run_id))

    def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """Wait until run ``run_id`` ends (completed, failed or cancelled) and return it.

        Polls the database (from :data:`WAIT_FIRST_POLL_S`, doubling up to
        :data:`WAIT_MAX_POLL_S`) in wall-clock seconds; raises ``TimeoutError`` after
        ``timeout`` seconds (``None``: no limit). It does not drive the run: a worker must."""
        poll = _Polling(run_id, timeout)
        while not (run := self.get_run(run_id)).done:
            time.sleep(poll.next_delay(run))
        return run

    async def get_run_async(self, run_id: str) -> RunResult:
        """:meth:`get_run` from asyncio code (the read runs in a thread)."""
        return await asyncio.to_thread(self.get_run, run_id)

    async def wait_for_run_async(self, run_id: str, *, timeout: float | None = None) -> RunResult:
        """:meth:`wait_for_run` from asyncio code: the same polling with ``asyncio.sleep``
        between reads (each read in a thread), so the loop is never blocked."""
        poll = _Polling(run_id, timeout)
        while not (run := await self.get_run_async(run_id)).done:
            await asyncio.sleep(poll.next_delay(run))
        return run

    # -- inside the application's own process ------------------------------------------------
    def _engine_runtime(self, config: Mapping[str, object] | None = None) -> Runtime:
        """The runtime this process serves and executes with, booted once (settings read,
        function modules imported, production check, tables migrated; logging left as the
        application set it). ``config`` (a Flask ``app.config``) overrides the environment
        for the :class:`~tengo_jobs.config.Env` names it holds."""
        given = environ_from_config(config or {})
        with self._embed_lock:
            if self._runtime is None:
                settings = Settings.from_env({**os.environ, **given}) if given else None
                parts: dict[str, Any] = ({} if self.registry is default_registry
                                         else {"registry": self.registry})
                self._runtime = boot("web", settings=settings, configure_logging=False, **parts)
            elif given and Settings.from_env({**os.environ, **given}) != self._runtime.settings:
                raise ConfigurationError(
                    f"this Jobs client already runs on other settings than this app's config "
                    f"gives ({', '.join(sorted(given))}): one Jobs serves one set of settings; "
                    "declare another Jobs (with its own functions) for a differently "
                    "configured app")
            return cast(Runtime, self._runtime)

    def init_app(self, app: Flask, *, url_prefix: str = "/jobs") -> None:
        """Register the event API (``<prefix>/e/<key>``, ``<prefix>/api/events``), the REST
        API, the dashboard, health, metrics and OpenAPI on the application's Flask ``app``
        under ``url_prefix`` (the Flask extension convention: ``jobs = Jobs(...)`` at import,
        ``jobs.init_app(app)`` in the app factory).

        Settings come from ``app.config`` (``DATABASE_URL``, ``TENGO_EVENT_KEYS``,
        ``TENGO_DASHBOARD_PASSWORD``… — the environment variables' names), else from the
        environment. The engine's security headers, CSRF checks, JSON errors and request
        limits apply to its own routes only. One ``Jobs`` per app."""

        client = app.extensions.get("tengo_jobs_client")
        if client is not None:
            raise ConfigurationError(
                f"the Flask app {app.name!r} already has a Jobs client "
                f"({client.app_id!r}): one Jobs per app, init_app called once")
        register_web(app, self._engine_runtime(app.config), url_prefix=url_prefix)
        app.extensions["tengo_jobs_client"] = self

    def asgi_app(self) -> ASGIApp:
        """The engine's web app (event API, REST API, dashboard…) as an ASGI application, to
        mount in FastAPI or Starlette: ``app.mount("/jobs", jobs.asgi_app())``. Settings come
        from the environment. Needs the ``asgi`` extra (a2wsgi: the Flask app runs in its
        thread pool)."""
        try:
            from a2wsgi import WSGIMiddleware
        except ImportError:
            raise ConfigurationError("jobs.asgi_app() needs the a2wsgi package: "
                                     "pip install 'tengo-jobs[asgi]'") from None

        return cast(ASGIApp, WSGIMiddleware(cast(Any, create_app(self._engine_runtime()))))

    def launch(self, *, threads: int = 4) -> None:
        """Start this process's worker threads (``threads`` executing runs) and scheduler
        loop (cron, timers, sweeper), as ``tengo-jobs dev`` does: with no ``REDIS_URL`` the
        broker is in-process, so an application needs one process and no Redis. They stop
        at interpreter exit, or at :meth:`shutdown`."""

        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 64:
            raise ConfigurationError(f"launch(threads=...) must be an integer from 1 to 64, "
                                     f"got {threads!r}")
        with self._embed_lock:
            if self._background is not None:
                raise ConfigurationError("jobs.launch() was already called in this process "
                                         "(call jobs.shutdown() first)")
            background = Background(self._engine_runtime(), threads=threads)
            background.start()
            self._background = background
        atexit.register(self.shutdown)

    def shutdown(self) -> None:
        """Stop what :meth:`launch` started: the scheduler, then the worker (runs still
        executing are given back for the next process); wake-ups in flight are flushed.
        Does nothing when nothing was launched."""
        with self._embed_lock:
            background, self._background = self._background, None
        if background is None:
            return
        atexit.unregister(self.shutdown)
        background.stop()
        background.runtime.flush()
