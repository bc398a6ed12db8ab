"""The executor: what a worker does with the wake-up "look at run R now".

It acquires the run (lease, run, event and stored steps in one round trip), hands it to
the function's *driver* (:mod:`.drivers`: the in-process Python call today), which
replays stored steps and runs new ones back to back, and applies the driver's outcome:
completed, failed, retried, suspended on its pending operations, or released. A lease
keeper thread renews the leases of the runs executing in this process, so long steps
keep them.

What it does when things go wrong:

- the function is not registered in this worker (a rolling deploy: the web process
  already knows a new function, an old worker picked its run up): the run is released,
  to be taken again in :data:`UNKNOWN_FUNCTION_DELAY_MS` — by then, by a worker that
  knows it — and never failed for it;
- executions died before this one (:attr:`~tengo_jobs.store.Acquired.unclean`): charged
  to the step that was running (:mod:`.steps`); when they keep dying outside any step,
  more than ``retries + 1`` times in a row, the run fails (:class:`FunctionCrashedError`);
- the database goes away mid-run: the store retries across the outage
  (``TENGO_DB_RECONNECT_WINDOW``); past it the execution is abandoned (its lease expires,
  the sweeper sends the run again, and the interrupted step counts one attempt);
- the worker shuts down or a Dramatiq time limit fires: the run is released;
- the handler raises ``SystemExit`` (or another ``BaseException``) outside any step: the
  run is released as if its process had died, so the execution counts as one that died.

A function with a ``concurrency`` limit takes its slots (:mod:`tengo_jobs.store.slots`)
right after the acquire — or the acquire took it already, when the function's only limit
is function-wide and had room (:attr:`~tengo_jobs.store.Acquired.slot`; checked against
the limit deployed here, given back at once when they differ) — and gives them back when
the execution ends, whatever the outcome; the runs this wakes are enqueued. A run refused
a slot is parked waiting for one (``"waiting"``). The lease keeper renews the slots with
the lease. Functions without a limit pay nothing for this but an index probe inside the
acquire. Inside ``step.parallel`` each branch executing a step beyond
the first takes a slot of its own (:meth:`Invocation.branch_slot`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

from dramatiq.threading import Interrupt as DramatiqInterrupt

from .. import logsafe, tracing
from ..core.registry import Registry
from ..errors import (CancelRequested, DatabaseLost, DatabaseUnavailableError, FunctionCrashedError, LeaseLost,
                      ValidationError)
from ..serde import encode_output
from .drivers import (AsyncPythonDriver, Completed, Crashed, Driver, Errored, Failed, Outcome,
                      PythonDriver, Suspended)
from .invocation import Invocation

if TYPE_CHECKING:
    from ..clock import Clock
    from ..config import Settings
    from ..store import Acquired, Store
    from ..core.flow_capacity import Capacity
    from ..core.functions import FunctionDef

log = logging.getLogger(__name__)

UNKNOWN_FUNCTION_DELAY_MS = 30_000


def _run_ends(ends: list[Callable[[], None]]) -> None:
    for end in ends:
        try:
            end()
        except Exception:  # noqa: BLE001 - the next ones still run; leases and slots expire
            log.exception("could not finish an execution's bookkeeping")


class Executor:
    """Executes runs on ``store``; ``enqueue`` wakes runs after commit, ``send`` sends events."""

    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 settings: "Settings", enqueue: Callable[[Iterable[str]], object],
                 send: Callable[[list[Any]], list[str]], drivers: list[Driver] | None = None):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.settings = settings
        self.enqueue = enqueue
        self.send = send
        self._active: dict[str, str] = {}  # lease token -> run id
        self._slotted: set[str] = set()  # lease tokens of runs holding concurrency slots
        self._active_lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._drivers: dict[str, Driver] = {}
        # Asked for a function this process does not know before its run is released
        # (functions synced by an Inngest SDK app through another process).
        self.resolve_unknown: Callable[[str], object] | None = None
        # Step results to use instead of running the steps, by run id then step id
        # (``JobsTester.send(step_stubs=...)``); ``None`` outside tests.
        self.step_stubs: dict[str, dict[str, Any]] | None = None
        for driver in drivers or [PythonDriver(), AsyncPythonDriver()]:
            self.add_driver(driver)

    def add_driver(self, driver: Driver) -> None:
        """Serve the functions whose ``runtime`` is one of ``driver.runtimes`` with it."""
        for runtime in driver.runtimes:
            self._drivers[runtime] = driver

    # -- the lease keeper ------------------------------------------------------------------
    def _keep_leases(self) -> None:
        """Renew the leases of runs executing in this process, so long steps keep them."""
        interval = max(0.05, self.settings.lease_ttl_ms / 3000)
        while not self._stopping.wait(interval):
            with self._active_lock:
                active = list(self._active.items())
                slotted = set(self._slotted)
            now = self.clock.now()
            for token, run_id in active:
                try:
                    if self.store.runs.renew(run_id, token, now) and token in slotted:
                        self.store.slots.renew(run_id, now + self.settings.lease_ttl_ms)
                except Exception as exc:  # noqa: BLE001 - retried next round; the fence protects us
                    log.warning("could not renew the lease of run %s (%s)", run_id, exc)

    def _track(self, token: str, run_id: str | None) -> None:
        with self._active_lock:
            if run_id is None:
                self._active.pop(token, None)
                self._slotted.discard(token)
                return
            self._active[token] = run_id
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_leases,
                                                name="tengo-lease-keeper", daemon=True)
                self._keeper.start()

    def stop(self) -> None:
        self._stopping.set()

    def executing(self) -> int:
        """How many runs this process is executing now (its busy threads; heartbeats)."""
        with self._active_lock:
            return len(self._active)

    def release_active(self) -> int:
        """Give back the runs still executing in this process (its worker stopped without
        waiting for them): not counted as died, and free for the next process at once."""
        with self._active_lock:
            active = list(self._active.items())
        for token, run_id in active:
            try:
                self.store.runs.release(run_id, token, self.clock.now())
            except Exception as exc:  # noqa: BLE001 - the lease expires anyway
                log.warning("could not release run %s (%s)", run_id, exc)
        return len(active)

    # -- execution --------------------------------------------------------------------------
    def execute(self, run_id: str, *, detach: bool = False) -> str:
        """Execute ``run_id`` if it is due and free; returns what happened (for tests and logs).

        With ``detach`` (the worker's actor), a handler whose driver can run detached (an
        ``async def`` one: :class:`~.drivers.AsyncPythonDriver`) continues on the event loop
        after this returns ``"detached"``: the lease is kept and renewed until it ends.

        Raises :class:`DatabaseUnavailableError` when the run cannot even be acquired (the
        worker's message is then retried later)."""
        token = uuid.uuid4().hex
        acquired = self.store.runs.acquire(run_id, token, self.clock.now())
        if acquired is None:
            return "skipped"
        self._track(token, run_id)
        # What ends this execution (its lease tracking, its concurrency slots), in order:
        # run here, or by the event loop when the execution was detached there.
        ends: list[Callable[[], None]] = [lambda: self._track(token, None)]
        try:
            with logsafe.log_context(run_id=run_id, function_id=acquired.run.function_id):
                result = self._execute(token, acquired, ends, detach)
        except BaseException:
            _run_ends(ends)
            raise
        if isinstance(result, Future):
            result.add_done_callback(lambda _: _run_ends(ends))
            return "detached"
        _run_ends(ends)
        return result

    def _execute(self, token: str, acquired: "Acquired", ends: list[Callable[[], None]],
                 detach: bool) -> "str | Future[Any]":
        run = acquired.run
        # A slot the acquire took (its function's only limit had room): given back at the
        # end whatever happens, unless the deployed limits differ (given back at once below).
        held = [acquired.slot] if acquired.slot is not None else []
        if held:
            ends.insert(0, lambda: self._release_slots(token, run.id, held))
        function = self.registry.find(run.function_id)
        if function is None and self.resolve_unknown is not None:
            function = cast("FunctionDef[..., Any] | None", self.resolve_unknown(run.function_id))
        if function is None:
            log.warning("run %s: function %r is not registered in this worker (a deploy in "
                        "progress?); released, to be taken again in %d s", run.id,
                        run.function_id, UNKNOWN_FUNCTION_DELAY_MS // 1000)
            self.store.runs.release(run.id, token, self.clock.now(),
                                    delay_ms=UNKNOWN_FUNCTION_DELAY_MS)
            return "released"
        limits: list[tuple[str, int]] = []
        if function.capacity is not None and function.capacity.concurrency:
            limits = function.capacity.slot_keys(acquired.event.to_dict())
        if held and held == limits:  # taken by the acquire, with the limit deployed here
            with self._active_lock:
                self._slotted.add(token)
        elif limits or held:
            if held:  # a limit changed by a deploy: the slot goes back, the take decides
                self._release_slots(token, run.id, held[:])
                if all(key != held[0][0] for key, _ in limits):
                    self.store.slots.not_solo(held[0][0])  # not this function's limit now
                held.clear()
            if limits:
                if not self._take_slots(token, acquired, function, limits):
                    return "waiting"
                ends.insert(0, lambda: self._release_slots(token, run.id, limits))
        return self._execute_held(token, acquired, function, limits, detach)

    # -- concurrency slots -------------------------------------------------------------------
    def _take_slots(self, token: str, acquired: "Acquired", function: "FunctionDef[..., Any]",
                    limits: list[tuple[str, int]]) -> bool:
        """Take the run's slots; ``False`` when it was parked waiting for one."""
        # (a run with slot limits has a capacity: its limits come from it)
        run, capacity = acquired.run, cast("Capacity", function.capacity)
        event = acquired.event.to_dict()
        now = self.clock.now()
        full, woken = self.store.slots.take(
            run.id, token, limits, now=now, expires_at=now + self.settings.lease_ttl_ms,
            queue_at=run.created_at - capacity.priority_of(event) * 1000,
            fair_key=capacity.fair_key(event),
            fresh=not acquired.steps and run.started_at == now)
        if woken:
            self.enqueue(woken)
        if full is None:
            with self._active_lock:
                self._slotted.add(token)
            return True
        if full:
            log.debug("run %s waits for a concurrency slot of %s", run.id, full)
        return False

    def _release_slots(self, token: str, run_id: str, limits: list[tuple[str, int]]) -> None:
        with self._active_lock:
            self._slotted.discard(token)
        try:
            woken = self.store.slots.release(run_id, limits, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - the slots expire with the lease
            log.warning("run %s: could not give back its concurrency slots (%s); they expire "
                        "with its lease", run_id, exc)
            return
        if woken:
            self.enqueue(woken)

    def _execute_held(self, token: str, acquired: "Acquired", function: "FunctionDef[..., Any]",
                      limits: list[tuple[str, int]], detach: bool) -> "str | Future[Any]":
        run = acquired.run
        events = (self.store.runs.batch_events(run) or None
                  if function.flow.batch_events is not None else None)
        inv = Invocation(self, run, function, token, acquired.event, acquired.steps,
                         acquired.unclean, events=events, slot_limits=limits)

        def start() -> "str | Future[Any]":
            if run.cancel_requested:  # asked while an earlier execution held it
                inv.stop_cancelled(json.loads(run.cancel_requested))
                return "cancelled"
            if function.timeouts is not None:
                self.store.runs.started(run.id, cast(int, run.started_at), function)
            if acquired.unclean > function.retries + 1:
                inv.fail(FunctionCrashedError(
                    f"run {run.id}: {acquired.unclean} executions in a row died outside any "
                    "step (a crash, SIGKILL, OOM or a lost database); not retried again"))
                return "failed"
            return self._invoke(inv, detach)

        with tracing.get_tracer().execution(inv) as span:
            result = self._guarded(inv, start)
            if span is not None:
                span.set_attribute("tengo.outcome", result if isinstance(result, str) else "detached")
            return result

    @staticmethod
    def _guarded(inv: Invocation, body: Callable[[], "str | Future[Any]"]) -> "str | Future[Any]":
        """``body`` with what the engine's interrupts mean for the execution."""
        try:
            return body()
        except LeaseLost:
            log.warning("run %s: lease lost; another executor owns it now, stopping here",
                        inv.run_id)
            return "lease-lost"
        except (DatabaseLost, DatabaseUnavailableError) as exc:
            log.error("run %s: abandoned, the database is unavailable (%s); its lease expires "
                      "and the run is sent again", inv.run_id, exc)
            return "abandoned"
        except (DramatiqInterrupt, KeyboardInterrupt, asyncio.CancelledError):
            inv.release()
            raise

    def _invoke(self, inv: Invocation, detach: bool = False) -> "str | Future[Any]":
        driver = self._drivers.get(inv.function.runtime)
        if driver is None:
            inv.fail(ValidationError(f"function {inv.function.id!r}: no driver serves runtime "
                                     f"{inv.function.runtime!r} in this worker"))
            return "failed"
        if detach and hasattr(driver, "detach"):  # the loop finishes it; this thread is free
            return cast("str | Future[Any]", driver.detach(inv, lambda outcome: self._guarded(
                inv, lambda: self._conclude(inv, outcome))))
        return self._conclude(inv, lambda: driver.drive(inv))

    def _conclude(self, inv: Invocation, drive: Callable[[], Outcome]) -> str:
        """Drive the handler (or take the outcome it came to) and apply it."""
        try:
            outcome = drive()
        except CancelRequested as cancelled:  # at a step boundary, its last step kept
            inv.stop_cancelled(cancelled.error)
            return "cancelled"
        return self._apply(inv, outcome)

    def _apply(self, inv: Invocation, outcome: Outcome) -> str:
        """Turn what the driver answered into the run's state."""
        if isinstance(outcome, Suspended):
            inv.suspend(outcome.ops)
            return "suspended"
        if isinstance(outcome, Failed):
            log.info("run %s (%s) failed: %s: %s", inv.run_id, inv.function.id,
                     type(outcome.error).__name__, outcome.error)
            inv.fail(outcome.error)
            return "failed"
        if isinstance(outcome, Errored):
            return inv.retry_or_fail(outcome.error)
        if isinstance(outcome, Crashed):  # as if the process had died
            inv.release(crashed=True)
            raise outcome.error
        assert isinstance(outcome, Completed), outcome
        try:
            output = encode_output(outcome.value, what=f"function {inv.function.id!r}",
                                   limit=inv.output_limit)
        except ValidationError as exc:
            inv.fail(exc)
            return "failed"
        inv.complete(output)
        return "completed"


__all__ = ["Executor", "UNKNOWN_FUNCTION_DELAY_MS"]
