"""The scheduler: everything that happens because time passed.

Three duties, each safe to run in several processes at once:

- **cron ticks** — one APScheduler job per cron-triggered function. A job does
  not trust APScheduler's memory: it reads the function's last tick from
  ``tj_cron_state``, works out the ticks due since then, applies the function's
  misfire policy and starts each chosen tick's run under the unique key
  ``cron:<function>:<tick ms>``. Two schedulers therefore start a tick once, and a
  restart never fires a tick that already ran.
- **due timers** — a poller thread calls :func:`tengo_jobs.timers.fire_due_timers`
  every ``poll_interval_ms`` (sleeps, retry backoffs, future-dated events,
  wait timeouts), draining full batches back to back. It is a fixed-delay loop,
  not an APScheduler interval job, so a long drain is not reported as a misfire.
- **the sweeper** — an APScheduler interval job re-enqueues due runs whose
  wake-up message was lost (e.g. Redis restarted without persistence).

Misfire policies (``@jobs.function(..., misfire=...)``), after downtime:
``coalesce`` (default) starts one run, for the latest missed tick; ``skip``
starts nothing for ticks older than :data:`MISFIRE_GRACE_MS`; ``all`` starts
every missed tick (at most :data:`ALL_LIMIT` per check, the rest on the next).
A function seen for the first time starts from now: no backfill.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import peewee as pw
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .cron import CronSpec, parse_cron
from .errors import ConfigurationError
from .events import SCHEDULED_EVENT, Event
from .intake import start_run
from .models import CronState
from .timers import fire_due_timers, sweep

if TYPE_CHECKING:
    from .functions import FunctionDef
    from .runtime import Runtime

log = logging.getLogger(__name__)

MISFIRE_GRACE_MS = 60_000
ALL_LIMIT = 1_000
TIMER_BATCH = 1_000




# -- cron ------------------------------------------------------------------------------------
def cron_specs(functions: list["FunctionDef"], *, second: str = "0") -> dict[str, CronSpec]:
    """Parse every cron function's schedule; a bad one raises naming the function and field."""
    return {fn.id: parse_cron(fn.cron, function_id=fn.id, second=second) for fn in functions}


def ensure_cron_state(runtime: "Runtime", function_ids, *, now: int) -> None:
    """Give functions seen for the first time a state row starting at ``now`` (no backfill)."""
    for fn_id in function_ids:
        (CronState.insert(function_id=fn_id, last_tick_ms=now, updated_at=now)
         .on_conflict_ignore().execute())


def _due_ticks(fn: "FunctionDef", spec: CronSpec, last: int, now: int) -> tuple[list[int], int]:
    """(ticks to start, new last tick) for the ticks in ``(last, now]`` under ``fn.misfire``."""
    if fn.misfire == "all":
        ticks = spec.ticks_between(last, now, limit=ALL_LIMIT)
        return ticks, (ticks[-1] if ticks else last)
    latest = spec.latest_tick(last, now)
    if latest is None:
        return [], last
    if fn.misfire == "skip" and now - latest > MISFIRE_GRACE_MS:
        log.warning("cron %s: skipping the tick(s) missed up to %d (misfire='skip')", fn.id, latest)
        return [], latest
    return [latest], latest


def fire_cron(runtime: "Runtime", fn: "FunctionDef", *, now: int | None = None,
              spec: CronSpec | None = None) -> list[str]:
    """Start the runs for ``fn``'s ticks due at ``now``; returns the run ids started here.

    The state row is locked for the check (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
    on SQLite), and each tick's run has a unique key, so concurrent schedulers agree.
    """
    now = runtime.now() if now is None else now
    spec = spec or parse_cron(fn.cron, function_id=fn.id)
    started: list[str] = []
    with runtime.db.atomic():
        query = CronState.select().where(CronState.function_id == fn.id)
        if isinstance(runtime.db, pw.PostgresqlDatabase):
            query = query.for_update()
        state = query.first()
        if state is None:
            CronState.insert(function_id=fn.id, last_tick_ms=now, updated_at=now).execute()
            return []
        ticks, new_last = _due_ticks(fn, spec, state.last_tick_ms, now)
        for tick in ticks:
            event = Event(name=SCHEDULED_EVENT, data={"cron": fn.cron}, ts=tick)
            run_id = start_run(runtime, fn, event, now=now, unique_key=f"cron:{fn.id}:{tick}",
                               enqueue=False)
            if run_id is not None:
                started.append(run_id)
        if new_last != state.last_tick_ms:
            (CronState.update(last_tick_ms=new_last, updated_at=now)
             .where(CronState.function_id == fn.id).execute())
    if started:
        runtime.enqueue(started)
        log.info("cron %s: started %d run(s) for tick(s) up to %d", fn.id, len(started), ticks[-1])
    return started


# -- timers ----------------------------------------------------------------------------------
def poll_timers(runtime: "Runtime", *, now: int | None = None, batch: int = TIMER_BATCH) -> int:
    """Fire every due timer, batch after batch while batches come back full; returns how many."""
    total = 0
    while True:
        fired = fire_due_timers(runtime, now=now, limit=batch)
        total += len(fired)
        if len(fired) < batch:
            return total


class _TimerPoller(threading.Thread):
    """Polls due timers every ``interval_ms`` (fixed delay after each drain)."""

    def __init__(self, runtime: "Runtime", interval_ms: int):
        super().__init__(name="tengo-timer-poller", daemon=True)
        self.runtime = runtime
        self.interval = interval_ms / 1000
        self.stopping = threading.Event()
        self._last_error_log = 0.0

    def run(self) -> None:
        while not self.stopping.is_set():
            delay = self.interval
            try:
                poll_timers(self.runtime)
            except Exception as exc:  # noqa: BLE001 - the database or broker is down: retry
                delay = max(self.interval, 1.0)
                if time.monotonic() - self._last_error_log > 10:
                    self._last_error_log = time.monotonic()
                    log.warning("timer poll failed (%s: %s); retrying", type(exc).__name__, exc)
            self.stopping.wait(delay)


# -- the process -----------------------------------------------------------------------------
class Scheduler:
    """Cron jobs, the timer poller and the sweeper on one runtime.

    ``start()`` returns at once (APScheduler's ``BackgroundScheduler`` plus a poller
    thread); ``stop()`` waits for them. ``cron_second`` is the seconds field of every
    cron trigger: ``"0"`` always, except in tests of the scheduler process.
    """

    def __init__(self, runtime: "Runtime", *, cron_second: str = "0"):
        self.runtime = runtime
        self.functions = {fn.id: fn for fn in runtime.registry.cron_functions()}
        self.specs = cron_specs(list(self.functions.values()), second=cron_second)
        self._aps: BackgroundScheduler | None = None
        self._poller: _TimerPoller | None = None

    def start(self) -> None:
        settings = self.runtime.settings
        now = self.runtime.now()
        ensure_cron_state(self.runtime, self.functions, now=now)
        for fn_id in self.functions:  # catch up on ticks missed while no scheduler ran
            self._cron_job(fn_id)
        aps = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for fn_id, spec in self.specs.items():
            aps.add_job(self._cron_job, spec.apscheduler_trigger(), args=(fn_id,),
                        id=f"cron:{fn_id}", name=f"cron {fn_id}")
        aps.add_job(self._sweep_job, IntervalTrigger(seconds=settings.sweep_interval_ms / 1000),
                    id="sweeper", name="sweeper")
        aps.start()
        self._aps = aps
        self._poller = _TimerPoller(self.runtime, settings.poll_interval_ms)
        self._poller.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._poller is not None:
            self._poller.stopping.set()
            self._poller.join(timeout)
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=True)

    def next_fire_times(self) -> dict[str, int | None]:
        now = self.runtime.now()
        return {fn_id: spec.next_fire(now) for fn_id, spec in self.specs.items()}

    def _cron_job(self, fn_id: str) -> None:
        try:
            fire_cron(self.runtime, self.functions[fn_id], spec=self.specs[fn_id])
        except Exception:  # noqa: BLE001 - the next tick (or restart) catches up
            log.exception("cron %s: could not start its run; the next check will catch up", fn_id)

    def _sweep_job(self) -> None:
        try:
            sweep(self.runtime)
        except Exception as exc:  # noqa: BLE001 - the next sweep retries
            log.warning("sweep failed (%s: %s)", type(exc).__name__, exc)


def configure_logging(level: str = "INFO") -> None:
    """Process logging for the scheduler and dev processes; APScheduler's chatter only as warnings."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).setLevel(logging.WARNING)


def startup_check(runtime: "Runtime") -> None:
    """Refuse unsafe production settings and say so; the scheduler needs no event keys."""
    runtime.settings.check_production(needs_event_keys=False)
    if runtime.settings.poll_interval_ms <= 0 or runtime.settings.sweep_interval_ms <= 0:
        raise ConfigurationError("TENGO_POLL_INTERVAL and TENGO_SWEEP_INTERVAL must be positive")


def main(argv: list[str] | None = None) -> int:
    """``python scheduler.py``: run the scheduler until SIGINT/SIGTERM; returns the exit code."""
    import argparse
    import signal
    import sys

    from .config import Settings
    from .db import describe
    from .errors import TengoJobsError
    from .runtime import boot

    parser = argparse.ArgumentParser(
        prog="scheduler.py", description="tengo_jobs scheduler: cron ticks, due timers, sweeper")
    parser.add_argument("--cron-second", default="0", metavar="FIELD",
                        help="seconds field added to every cron schedule (test hook; default 0)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = Settings.from_env()
        settings.check_production(needs_event_keys=False)
        runtime = boot(settings)
        startup_check(runtime)
        scheduler = Scheduler(runtime, cron_second=args.cron_second)
        scheduler.start()
    except TengoJobsError as exc:
        print(f"scheduler: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    log.info("scheduler started: %d cron function(s) [%s], timers every %d ms, sweep every %d ms, "
             "database %s", len(scheduler.functions), ", ".join(scheduler.functions),
             settings.poll_interval_ms, settings.sweep_interval_ms, describe(settings.database_url))
    while not stop.wait(0.5):
        pass
    log.info("scheduler stopping")
    scheduler.stop()
    runtime.close()
    return 0
