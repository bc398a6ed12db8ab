"""The scheduler process: ``python scheduler.py`` (cron ticks, due timers, the sweeper).

The duties themselves are :class:`tengo_jobs.engine.timekeeper.Timekeeper`'s, each safe
to run in several scheduler processes at once; this module runs them on a clock:

- one APScheduler job per cron-triggered function, at its ticks (APScheduler only says
  *when* to look; what to start is decided from the database, so a restart never
  repeats a tick and two schedulers never both start one);
- a poller thread for due timers every ``TENGO_POLL_INTERVAL``, draining full batches
  back to back (a fixed-delay loop, not an interval job, so a long drain is not
  reported as a misfire);
- the sweeper every ``TENGO_SWEEP_INTERVAL``;
- the pruning every ``TENGO_PRUNE_INTERVAL`` (5 minutes; finished runs older than
  ``TENGO_RETENTION``, expired dedupe claims, day-old heartbeats), in short batches;
- the performance summaries' roll-up every ``stats_interval_ms`` (a minute; 5 s in
  ``tengo-jobs dev``);
- this process's heartbeat every ``TENGO_HEARTBEAT_INTERVAL`` (a job of the same
  scheduler, so a beat also says its jobs are being run).

Every loop survives a lost database or broker: it logs, waits, and tries again on a
fresh connection, so the process heals by itself after a restart of either.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..core.cron import CronSpec, parse_cron
from ..durations import ms_to_iso
from ..errors import ConfigurationError, TengoJobsError
from ..runtime import Runtime, boot, refuse_to_start
from ..store.connection import describe
from ..store.stats import ROLLUP_INTERVAL_MS

if TYPE_CHECKING:
    from ..core.functions import FunctionDef

log = logging.getLogger(__name__)

# How often the scheduler looks for the crons of Inngest SDK apps synced since it started.
SDK_CRON_CHECK_MS = 5_000


def cron_specs(functions: list["FunctionDef[..., Any]"], *, second: str = "0") -> dict[str, CronSpec]:
    """Parse every cron function's schedule; a bad one raises naming the function and field."""
    return {fn.id: parse_cron(cast(str, fn.cron), function_id=fn.id, second=second)
            for fn in functions}


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
                self.runtime.timekeeper.poll_timers()
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

    def __init__(self, runtime: "Runtime", *, cron_second: str = "0",
                 stats_interval_ms: int = ROLLUP_INTERVAL_MS):
        self.runtime = runtime
        self.cron_second = cron_second
        self.stats_interval_ms = stats_interval_ms
        self.functions = {fn.id: fn for fn in runtime.registry.cron_functions()}
        self.specs = cron_specs(list(self.functions.values()), second=cron_second)
        self._aps: BackgroundScheduler | None = None
        self._poller: _TimerPoller | None = None

    def start(self) -> None:
        settings = self.runtime.settings
        self.runtime.timekeeper.ensure_cron_state(self.functions)
        for fn_id in self.functions:  # catch up on ticks missed while no scheduler ran
            self._cron_job(fn_id)
        aps = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        for fn_id, spec in self.specs.items():
            aps.add_job(self._cron_job, spec.apscheduler_trigger(), args=(fn_id,),
                        id=f"cron:{fn_id}", name=f"cron {fn_id}")
        aps.add_job(self._sweep_job, IntervalTrigger(seconds=settings.sweep_interval_ms / 1000),
                    id="sweeper", name="sweeper")
        aps.add_job(self._prune_job, IntervalTrigger(seconds=settings.prune_interval_ms / 1000),
                    id="prune", name="prune")
        aps.add_job(self._sdk_cron_job, IntervalTrigger(seconds=SDK_CRON_CHECK_MS / 1000),
                    id="sdk-crons", name="crons of synced SDK apps")
        aps.add_job(self._stats_job, IntervalTrigger(seconds=self.stats_interval_ms / 1000),
                    id="stats", name="stats roll-up")
        heartbeat = self.runtime.make_heartbeat("scheduler")
        heartbeat.beat_now()
        aps.add_job(heartbeat.beat_now,
                    IntervalTrigger(seconds=settings.heartbeat_interval_ms / 1000),
                    id="heartbeat", name="heartbeat")
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

    def _sdk_cron_job(self) -> None:
        """Schedule the cron functions of Inngest SDK apps synced while this scheduler runs
        (an app syncs after its deploy, so the registry read at start-up never has them), and
        re-time or drop those a re-sync changed or removed."""
        try:
            self.runtime.sdk_apps.reload_if_changed()
        except Exception as exc:  # noqa: BLE001 - the database is down: the next check retries
            log.warning("could not check the synced apps' crons (%s: %s)", type(exc).__name__, exc)
            return
        current = {fn.id: fn for fn in self.runtime.registry.cron_functions()}
        for fn_id in [f for f in self.functions if f not in current]:
            self.functions.pop(fn_id, None)
            self.specs.pop(fn_id, None)
            if self._aps is not None and self._aps.get_job(f"cron:{fn_id}") is not None:
                self._aps.remove_job(f"cron:{fn_id}")
            log.info("cron %s: no longer scheduled (its app was re-synced without it)", fn_id)
        for fn_id, fn in current.items():
            known = self.functions.get(fn_id)
            if known is not None and known.cron == fn.cron:
                continue
            try:
                spec = cron_specs([fn], second=self.cron_second)[fn_id]
                self.runtime.timekeeper.ensure_cron_state([fn_id])
            except Exception as exc:  # noqa: BLE001 - a bad schedule, or the database is down
                log.warning("cron %s: not scheduled (%s: %s)", fn_id, type(exc).__name__, exc)
                continue
            self.functions[fn_id], self.specs[fn_id] = fn, spec
            if self._aps is not None:
                self._aps.add_job(self._cron_job, spec.apscheduler_trigger(), args=(fn_id,),
                                  id=f"cron:{fn_id}", name=f"cron {fn_id}", replace_existing=True)
            log.info("cron %s: scheduled (%s), next tick %s", fn_id, fn.cron,
                     ms_to_iso(spec.next_fire(self.runtime.now())))

    def _cron_job(self, fn_id: str) -> None:
        if fn_id not in self.functions:  # dropped by a re-sync since APScheduler queued it
            return
        try:
            self.runtime.timekeeper.fire_cron(self.functions[fn_id], spec=self.specs[fn_id])
        except Exception as exc:  # noqa: BLE001 - the next tick (or restart) catches up
            log.warning("cron %s: could not start its run (%s: %s); the next check will catch up",
                        fn_id, type(exc).__name__, exc)

    def _sweep_job(self) -> None:
        try:
            self.runtime.timekeeper.sweep()
        except Exception as exc:  # noqa: BLE001 - the next sweep retries
            log.warning("sweep failed (%s: %s)", type(exc).__name__, exc)

    def _stats_job(self) -> None:
        try:
            self.runtime.timekeeper.roll_up_stats()
        except Exception as exc:  # noqa: BLE001 - the next pass takes it from the watermark
            log.warning("stats roll-up failed (%s: %s)", type(exc).__name__, exc)

    def _prune_job(self) -> None:
        try:
            self.runtime.timekeeper.prune()
        except Exception as exc:  # noqa: BLE001 - the next prune goes on where this one stopped
            log.warning("prune failed (%s: %s)", type(exc).__name__, exc)


def check_intervals(runtime: "Runtime") -> None:
    """The scheduler's own settings must make sense."""
    if runtime.settings.poll_interval_ms <= 0 or runtime.settings.sweep_interval_ms <= 0:
        raise ConfigurationError("TENGO_POLL_INTERVAL and TENGO_SWEEP_INTERVAL must be positive")


def main(argv: list[str] | None = None) -> int:
    """``python scheduler.py``: run the scheduler until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="scheduler.py", description="tengo_jobs scheduler: cron ticks, due timers, sweeper")
    parser.add_argument("--cron-second", default="0", metavar="FIELD",
                        help="seconds field added to every cron schedule (test hook; default 0)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    try:
        runtime = boot("scheduler", log_level=args.log_level)
        check_intervals(runtime)
        scheduler = Scheduler(runtime, cron_second=args.cron_second)
        scheduler.start()
    except TengoJobsError as exc:
        refuse_to_start("scheduler", exc, code=2)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    log.info("scheduler started: %d cron function(s) [%s], timers every %d ms, sweep every %d ms, "
             "database %s", len(scheduler.functions), ", ".join(scheduler.functions),
             runtime.settings.poll_interval_ms, runtime.settings.sweep_interval_ms,
             describe(runtime.settings.database_url))
    while not stop.wait(0.5):
        pass
    log.info("scheduler stopping")
    scheduler.stop()
    runtime.close()
    return 0
