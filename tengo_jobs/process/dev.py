"""``tengo-jobs dev``: web, worker and scheduler in one process, like ``inngest dev``.

The embedded default needs no other service: SQLite (``DATABASE_URL``, default
``sqlite:///tengo_jobs.db``), Dramatiq's in-process ``StubBroker`` consumed by an
in-process ``Worker``, the scheduler of :mod:`tengo_jobs.process.scheduler`, and the Flask
app served by Werkzeug's threaded server on ``PORT`` (default 8288).

Restart safety: this process is the only executor of its database, so at
start-up the leases a previous dev process left behind (it was killed, or
Ctrl-C stopped it mid-run) are released at once and every due run is
re-enqueued; sleeping runs keep their timers. SIGINT/SIGTERM stop the web
server, the scheduler and the worker, in that order, and exit 0.

Development defaults (unless the environment sets them): ``TENGO_ENV=development``,
a sweep every second and redelivery after 2 s, so events another process writes
into the same database (``tengo-jobs send``) start within a few seconds.

``TENGO_ENV=production`` (a production ``.env`` loaded by mistake) is refused: this
process releases every lease in its database at start-up and has an in-process broker,
so on a production database it would take runs from the real workers. With
``TENGO_ALLOW_UNSAFE=1`` it starts anyway, enforcing production's event keys and password.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Mapping

import click
from dramatiq import Worker
from werkzeug.serving import BaseWSGIServer, make_server

from ..config import Env, Settings
from ..engine.sdk_sync import SyncOnStart
from ..errors import ConfigurationError, TengoJobsError
from ..runtime import Runtime, boot, refuse_to_start
from ..store.connection import describe
from .scheduler import Scheduler, check_intervals
from .web import create_app

log = logging.getLogger("tengo_jobs.dev")

DEV_SWEEP_INTERVAL_MS = 1_000
DEV_REDELIVER_AFTER_MS = 2_000
DEV_STATS_INTERVAL_MS = 5_000  # the performance page follows a test run closely


def dev_settings(environ: Mapping[str, str] | None = None) -> tuple[Settings, bool]:
    """Settings for the dev process: the environment, development defaults, no Redis."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault(Env.TENGO_ENV.value, "development")
    # one process: the in-process broker is the broker
    overrides: dict[str, Any] = {"redis_url": None, "broker_url": None}
    if Env.TENGO_SWEEP_INTERVAL.value not in env:
        overrides["sweep_interval_ms"] = DEV_SWEEP_INTERVAL_MS
    if Env.TENGO_REDELIVER_AFTER.value not in env:
        overrides["redeliver_after_ms"] = DEV_REDELIVER_AFTER_MS
    return Settings.from_env(env, **overrides), bool(env.get(Env.REDIS_URL.value)
                                                     or env.get(Env.TENGO_BROKER_URL.value))


class Background:
    """This process's worker threads (a Dramatiq ``Worker`` on the runtime's broker) and its
    scheduler loop (cron, timers, sweeper): the part of ``tengo-jobs dev`` that
    :meth:`tengo_jobs.Jobs.launch` starts inside an application's own process.

    ``release_orphans``: this process is the only executor of its database (dev), so the
    leases a previous process left are free at once. An application's processes (several
    gunicorn workers) may share a database: their leases expire instead.
    """

    def __init__(self, runtime: Runtime, *, threads: int = 4,
                 release_orphans: bool = False) -> None:
        self.runtime = runtime
        self.threads = threads
        self.release_orphans = release_orphans
        self._worker: Worker | None = None
        self._scheduler: Scheduler | None = None

    def start(self) -> None:
        check_intervals(self.runtime)
        released = self.runtime.store.runs.release_orphans() if self.release_orphans else 0
        resumed = self.runtime.timekeeper.sweep(now=self.runtime.now())
        if released or resumed:
            log.info("resumed %d run(s) left in flight by a previous process", len(resumed))
        self._worker = Worker(self.runtime.broker, worker_threads=self.threads, worker_timeout=100)
        self._worker.start()
        try:
            self._scheduler = Scheduler(self.runtime, stats_interval_ms=DEV_STATS_INTERVAL_MS)
            self._scheduler.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the scheduler, then the worker; runs still executing are given back."""
        scheduler, self._scheduler = self._scheduler, None
        worker, self._worker = self._worker, None
        if scheduler is not None:
            scheduler.stop()
        if worker is not None:
            worker.stop(timeout=5_000)
            # Steps still executing are given back, not counted as died; the next start runs them.
            self.runtime.executor.release_active()


class DevServer:
    """The three parts of the dev process on one runtime; ``start()`` then ``stop()``."""

    def __init__(self, runtime: Runtime, *, host: str, port: int, threads: int = 4) -> None:
        self.runtime = runtime
        self.host, self.port, self.threads = host, port, threads
        self._web: BaseWSGIServer | None = None
        self._web_thread: threading.Thread | None = None
        self._background = Background(runtime, threads=threads, release_orphans=True)

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "127.0.0.1", "::") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        app = create_app(self.runtime)
        try:
            self._web = make_server(self.host, self.port, app, threaded=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                                     "stop the other server or set PORT") from None
        try:
            self._background.start()
        except BaseException:
            self._web.server_close()
            self._web = None
            raise
        self._web_thread = threading.Thread(target=self._web.serve_forever, name="tengo-dev-web",
                                            daemon=True)
        self._web_thread.start()

    def stop(self) -> None:
        if self._web is not None:
            self._web.shutdown()
            self._web.server_close()
        self._background.stop()
        self.runtime.close()


def run_dev(*, host: str, port: int | None, threads: int, sdk_urls: tuple[str, ...] = ()) -> int:
    try:
        settings, had_redis = dev_settings()
        for url in sdk_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(f"--sdk-url {url.split('?')[0][:100]!r} is not an "
                                         "http(s) URL (an Inngest app's serve endpoint)")
        runtime = boot("dev", settings=settings)
        server = DevServer(runtime, host=host, port=port or settings.port, threads=threads)
        server.start()
    except TengoJobsError as exc:
        refuse_to_start("tengo-jobs dev", exc, code=2)
    # Like `inngest dev -u`: each app is asked to sync (a PUT to its serve URL), retried
    # with backoff until it is up.
    syncer = SyncOnStart(settings.sdk_urls + tuple(sdk_urls)).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: leave now
            os._exit(1)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    functions = [fn.id for fn in runtime.registry.all()]
    if had_redis:
        log.info("TENGO_BROKER_URL and REDIS_URL are ignored by `tengo-jobs dev` (in-process broker); use the Procfile "
                 "for separate processes")
    database = describe(settings.database_url)
    log.info("tengo-jobs dev ready at %s  (database %s, %d function(s): %s)", server.url,
             database, len(functions), ", ".join(functions) or "none")
    # (no key in the URL below: log redaction would rewrite anything after /e/)
    log.info("events: POST to %s/e/ plus any key in development; dashboard: %s/; "
             "Ctrl-C stops", server.url, server.url)
    while not stop.wait(0.5):
        pass
    log.info("stopping: web, scheduler, worker")
    syncer.stop()
    server.stop()
    log.info("stopped")
    return 0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="interface to listen on (0.0.0.0 to expose it)")
@click.option("--port", type=int, default=None, help="port [default: $PORT or 8288]")
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
              help="worker threads executing runs")
@click.option("--sdk-url", "sdk_urls", multiple=True, metavar="URL",
              help="an Inngest app's serve URL (e.g. http://localhost:3000/api/inngest) to sync "
                   "on start, retried until the app is up; repeatable; also $TENGO_SDK_URLS "
                   "(comma-separated)")
def dev(host: str, port: int | None, threads: int, sdk_urls: tuple[str, ...]) -> None:
    """Run web, worker and scheduler in one process (SQLite, in-process broker)."""
    sys.exit(run_dev(host=host, port=port, threads=threads, sdk_urls=tuple(sdk_urls)))
