"""Everything that happens because time passed: cron ticks, due timers, the sweeper.

Each duty is safe to run in several scheduler processes at once, and takes ``now=``
so tests move time instead of waiting:

- **cron** (:meth:`Timekeeper.fire_cron`): the function's last tick is read from the
  store with its row locked; the ticks due since then go through the function's misfire
  policy; each chosen tick's run is started under the unique key
  ``cron:<function>:<tick ms>``, so two schedulers start a tick once and a restart
  never fires a tick that already ran. Misfire policies (``misfire=``), after downtime:
  ``coalesce`` (default) starts one run, for the latest missed tick; ``skip`` starts
  nothing for ticks older than :data:`MISFIRE_GRACE_MS`; ``all`` starts every missed tick
  (at most :data:`ALL_LIMIT` per check, the rest on the next). A function seen for the
  first time starts from now: no backfill. A paused function's due ticks are recorded as
  skipped (``skipped_cron_ticks`` in ``GET /api/functions`` while it is paused, and a
  warning in the log) and the last tick moves past them: resuming starts none of them.
- **timers** (:meth:`Timekeeper.poll_timers`): sleeps, retry backoffs, future-dated
  events, wait and invoke timeouts whose time has come wake their runs; a run's
  ``timeouts`` deadlines cancel it (:meth:`Timekeeper.expire_deadlines`).
- **the sweeper** (:meth:`Timekeeper.sweep`): sends again the wake-ups that were lost —
  a process that died between its commit and its send, a message Redis dropped, a
  worker that died holding one. What it sends depends on what the broker says. When it
  lost its data (restarted empty), every due run is woken at once. Otherwise, a due run
  whose wake-up was sent well before the oldest message still waiting in the queue was
  consumed already (the queue is first in, first out), so if nobody holds the run its
  wake-up was lost: it is sent again — as is any whose wake-up is older than
  :data:`LOST_WAKEUP_AFTER_MS` when the queue is empty. A run whose wake-up may still be
  in the queue is never sent twice, so a backlog is not multiplied. With the default
  sweep interval (5 s) a lost wake-up is sent again within about 10 s of the moment it
  would have been consumed. A broker that cannot tell (not Redis) gets the fixed
  ``TENGO_REDELIVER_AFTER``.
- **performance summaries** (:meth:`Timekeeper.roll_up_stats`): the runs that ended
  since the last pass are added to the per-function summaries the dashboard's
  performance page reads (``store/stats.py``); each sweep also records its pass.
- **pruning** (:meth:`Timekeeper.prune`): finished runs older than ``TENGO_RETENTION``
  go, with their steps and the events no remaining run needs; dedupe claims whose 24 h
  window is over and heartbeats a day old go too. Batch after batch, each a short
  transaction (``store/retention.py`` says what stays and why it is safe beside other
  schedulers); the result is recorded for ``/healthz``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

from ..core.cron import CronSpec, parse_cron
from ..core.events import SCHEDULED_EVENT, Event
from ..core.lifecycle import START_DEADLINE
from ..core.registry import Registry
from ..store import Pruned, RunStart, cancelled_error
from ..store.retention import BATCH as PRUNE_BATCH

if TYPE_CHECKING:
    from ..clock import Clock
    from ..config import Settings
    from ..core.functions import FunctionDef
    from ..store import Store

log = logging.getLogger(__name__)

MISFIRE_GRACE_MS = 60_000
ALL_LIMIT = 1_000
TIMER_BATCH = 1_000
SWEEP_LIMIT = 5_000
LOST_WAKEUP_AFTER_MS = 5_000


def due_ticks(fn: "FunctionDef[..., Any]", spec: CronSpec, last: int, now: int) -> tuple[list[int], int]:
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


class BrokerProbe:
    """What the sweeper asks the broker: did it lose its data, and since when do the messages
    still in its queue wait? (This base class knows nothing: the sweeper then waits
    ``TENGO_REDELIVER_AFTER`` before it sends a wake-up again.)"""

    UNKNOWN = object()

    def lost_data(self) -> bool:
        return False

    def oldest_pending_ms(self) -> object:
        """When the oldest message still in the queue was sent (epoch ms), ``None`` when the
        queue is empty, or :attr:`UNKNOWN`."""
        return self.UNKNOWN


class Timekeeper:
    """The scheduler's duties (see the module docstring) on one store."""

    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 settings: "Settings", enqueue: Callable[[Iterable[str]], object],
                 broker: BrokerProbe | None = None):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.settings = settings
        self.enqueue = enqueue
        self.broker = broker or BrokerProbe()

    # -- cron ---------------------------------------------------------------------------------
    def ensure_cron_state(self, function_ids: Iterable[str], *, now: int | None = None) -> None:
        self.store.cron.ensure(function_ids, self.clock.now() if now is None else now)

    def fire_cron(self, fn: "FunctionDef[..., Any]", *, now: int | None = None,
                  spec: CronSpec | None = None) -> list[str]:
        """Start the runs for ``fn``'s ticks due at ``now``; returns the run ids started here."""
        now = self.clock.now() if now is None else now
        spec = spec or parse_cron(cast(str, fn.cron), function_id=fn.id)
        with self.store.atomic():
            last = self.store.cron.lock_last_tick(fn.id)
            if last is None:
                self.store.cron.ensure([fn.id], now)
                return []
            ticks, new_last = due_ticks(fn, spec, last, now)
            if self.store.runs.skip_ticks(fn.id, ticks):  # paused: recorded, not started
                self.store.cron.set_last_tick(fn.id, new_last, now)
                log.warning("cron %s: paused; skipped %d tick(s) up to %d", fn.id, len(ticks),
                            ticks[-1])
                return []
            started = [r for r in self.store.runs.start([
                RunStart(function_id=fn.id, app_id=fn.app_id,
                         event=Event(name=SCHEDULED_EVENT, data={"cron": fn.cron}, ts=tick),
                         unique_key=f"cron:{fn.id}:{tick}") for tick in ticks], now) if r]
            if new_last != last:
                self.store.cron.set_last_tick(fn.id, new_last, now)
        if started:
            self.enqueue(started)
            log.info("cron %s: started %d run(s) for tick(s) up to %d", fn.id, len(started),
                     ticks[-1])
        return started

    # -- timers -------------------------------------------------------------------------------
    def fire_timers(self, *, now: int | None = None, limit: int = TIMER_BATCH) -> list[str]:
        """Wake the runs whose timers are due at ``now`` (one batch), and cancel those whose
        deadlines (``timeouts``) passed; returns the runs woken."""
        now = self.clock.now() if now is None else now
        run_ids = self.store.timers.fire_due(now, limit)
        run_ids += [r for r in self.expire_deadlines(now=now, limit=limit) if r not in run_ids]
        if run_ids:
            self.enqueue(run_ids)
        return run_ids

    def expire_deadlines(self, *, now: int, limit: int = TIMER_BATCH) -> list[str]:
        """Cancel the runs whose ``timeouts`` passed: not started within ``start`` (only if
        still unstarted), not finished within ``finish`` (an executing step finishes
        first). Returns the parents to wake (invoked children cancelled)."""
        woken = []
        for run_id, deadline, function_id in self.store.runs.due_deadlines(now, limit):
            fn = self.registry.find(function_id)
            reason = (fn.timeouts.reason(deadline) if fn is not None and fn.timeouts
                      else f"{deadline} passed")
            done = self.store.runs.request_cancel(
                run_id, now, cancelled_error(reason), deadline=deadline,
                unstarted_only=deadline == START_DEADLINE)
            if done.outcome:
                log.info("run %s (%s): %s (%s)", run_id, function_id, reason, done.outcome)
            if done.woken:
                woken.append(done.woken)
        return woken

    def poll_timers(self, *, now: int | None = None, batch: int = TIMER_BATCH) -> int:
        """Fire every due timer, batch after batch while batches come back full; returns how many."""
        total = 0
        while True:
            fired = self.fire_timers(now=now, limit=batch)
            total += len(fired)
            if len(fired) < batch:
                return total

    # -- the sweeper --------------------------------------------------------------------------
    def sweep(self, *, now: int | None = None, limit: int = SWEEP_LIMIT) -> list[str]:
        """Send again the wake-ups that were lost (see the module docstring); returns the runs."""
        now = self.clock.now() if now is None else now
        grace = min(LOST_WAKEUP_AFTER_MS, self.settings.redeliver_after_ms)
        if self.broker.lost_data():
            sent_before = now + 1
            log.warning("the broker lost its messages (restarted empty?); waking every due run")
        else:
            oldest = self.broker.oldest_pending_ms()
            if oldest is BrokerProbe.UNKNOWN:
                sent_before = now - self.settings.redeliver_after_ms
            elif oldest is None:  # nothing waits in the queue
                sent_before = now - grace
            else:  # sent (well) before the oldest waiting message: consumed already. The
                # grace covers the moments between a run's commit and its message's send.
                sent_before = min(cast(int, oldest), now) - grace
        run_ids = self.store.timers.unsent(now, sent_before, limit)
        freed = self.store.slots.wake_free(now)  # slots of killed workers, raised limits
        if freed:
            self.enqueue(freed)
            log.info("sweeper woke %d run(s) waiting for concurrency slots that are free",
                     len(freed))
        if run_ids:
            self.enqueue(run_ids)
            log.info("sweeper sent %d lost wake-up(s) again", len(run_ids))
        # its last pass, for the dashboard's health page (one small upsert per sweep)
        self.store.retention.record("sweep", now, {"resent": len(run_ids), "freed": len(freed)})
        return run_ids

    # -- performance summaries --------------------------------------------------------------------
    def roll_up_stats(self, *, now: int | None = None) -> dict[str, Any]:
        """Add the runs that ended (and were created) since the last pass to the performance
        summaries (``store/stats.py``: why this is a roll-up and not a write per run)."""
        return self.store.stats.roll_up(self.clock.now() if now is None else now)

    # -- pruning ------------------------------------------------------------------------------
    def prune(self, *, now: int | None = None, older_than_ms: int | None = None,
              dry_run: bool = False, batch: int = PRUNE_BATCH,
              progress: Callable[[int], object] | None = None) -> Pruned:
        """Delete finished runs that ended more than ``older_than_ms`` ago (default
        ``TENGO_RETENTION``; ``0`` there keeps every run) with what only they need, the
        expired dedupe claims and day-old heartbeats. ``dry_run`` counts instead.
        ``progress(n)`` is told each batch's runs."""
        now = self.clock.now() if now is None else now
        keep_ms = self.settings.retention_ms if older_than_ms is None else older_than_ms
        cutoff = now - keep_ms if keep_ms else None
        retention = self.store.retention
        if dry_run:
            return retention.count(cutoff, now)
        done = Pruned()
        if cutoff is not None:
            done.runs = retention.drain(
                lambda: self._prune_runs(cutoff, batch, done), batch, progress)
            done.events = retention.prune_all_events(cutoff, batch)
        done.dedupe = retention.drain(lambda: retention.expire_dedupe(now, batch), batch)
        done.heartbeats = self.store.heartbeats.forget(now)
        retention.record("prune", now, {**done.as_dict(), "cutoff": cutoff})
        if done.runs or done.events or done.dedupe:
            log.info("pruned %d run(s), %d step(s), %d event(s), %d dedupe claim(s)",
                     done.runs, done.steps, done.events, done.dedupe)
        return done

    def prunable_runs(self, *, older_than_ms: int, now: int | None = None) -> int:
        """How many runs a prune would delete now (a progress bar's length)."""
        now = self.clock.now() if now is None else now
        return self.store.retention.count_runs(now - older_than_ms) if older_than_ms else 0

    def _prune_runs(self, cutoff: int, batch: int, done: Pruned) -> int:
        pruned = self.store.retention.prune_runs(cutoff, batch)
        done.steps += pruned.steps
        return pruned.runs
