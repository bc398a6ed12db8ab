"""One invocation of a handler on a leased run: its context, the memo of stored steps,
and the run's writes, each a transition of :class:`tengo_jobs.store.RunStore`.

An invocation replays the steps stored so far (from the memo, without running them)
and runs new ones back to back, checkpointing each before the next starts; it ends by
suspending, completing, failing or releasing the run. Every write is fenced on the
lease, so an invocation whose lease was lost stops at its next write
(:class:`~tengo_jobs.errors.LeaseLost`).

**One commit fewer per run.** A finished step's row is held back (:meth:`checkpoint`
with ``defer``) until the next write, and written by it: before the next step starts
(so each step's result is committed before the next step starts), or in the same
transaction as the suspension, completion or failure that follows. A process that dies
in between loses only a result that was never reported as committed: the step runs
again, as any step interrupted before its checkpoint does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from typing import TYPE_CHECKING, Any, Iterator, cast

from .. import tracing
from ..core.events import Event
from ..core.functions import FunctionDef
from ..core.ops import (FunctionRetry, PendingOp, StepOp, StepRecord, WaitForEvent,
                        run_status_of)
from ..core.retry import retry_delay_ms
from ..errors import (CancelRequested, DatabaseLost, DatabaseUnavailableError, Interrupt,
                      RunStateTooLargeError)
from ..serde import error_dict, has_envelopes, revive
from ..store import RunRow, StepKind, StepRow, StepStatus
from ..store.connection import UNAVAILABLE_ERRORS
from ..store.slots import BRANCH_SEP

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("tengo_jobs.run")
# A step record's fields that are step row columns (not ``failed``: the attempts it logs).
_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(StepRecord) if f.name != "failed")

if TYPE_CHECKING:  # generic for type checkers; subscripted at run time only from 3.11
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class ReplayAwareLogger(_LoggerAdapter):
    """``ctx.logger``: silent while stored steps are being replayed, so each line is logged once."""

    def __init__(self, logger: logging.Logger, invocation: "Invocation"):
        super().__init__(logger, {"run_id": invocation.run_id,
                                  "function_id": invocation.function.id})
        self._inv = invocation

    def isEnabledFor(self, level: int) -> bool:
        return not self._inv.replaying and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self._inv.replaying:
            super().log(level, msg, *args, **kwargs)


@dataclasses.dataclass
class Context:
    """What a handler receives as ``ctx``."""

    event: Event
    events: list[Event]
    run_id: str
    attempt: int
    function_id: str
    logger: logging.LoggerAdapter[logging.Logger]
    #: The trigger's data as the function's ``event_schema`` model (``None`` without one;
    #: ``ctx.event.data`` stays the dict).
    event_model: Any = None


def _replay_input(note: str | None
                  ) -> tuple[str, tuple[tuple[Any, ...], dict[str, Any]]] | None:
    """The step key and its new arguments from a replay's note: a list is positional
    arguments, an object keyword arguments."""
    if not note:
        return None
    body = json.loads(note)
    if body.get("changed") != "input":
        return None
    value = body["input"]
    return body["from_step"], ((tuple(value), {}) if isinstance(value, list) else ((), value))


def _event_model(function: FunctionDef[..., Any], event: Event) -> Any:
    """The trigger's data as ``function.event_schema`` (validated at intake); ``None`` without
    a schema, or for an event stored before the schema was declared that does not fit it."""
    if function.event_schema is None:
        return None
    try:
        return function.event_schema.model_validate(event.data)
    except ValueError as exc:
        log.warning("run of %s: event %s does not fit event_schema %s (sent before the schema "
                    "was declared?); ctx.event_model is None: %s", function.id, event.id,
                    function.event_schema.__name__, exc)
        return None


class Invocation:
    def __init__(self, executor: "Executor", run: RunRow, function: FunctionDef[..., Any],
                 token: str, event: Event, steps: list[StepRow], unclean: int, *,
                 events: list[Event] | None = None,
                 slot_limits: list[tuple[str, int]] | None = None):
        self.executor = executor
        self.store = executor.store
        self.settings = executor.settings
        self.run = run
        self.run_id = run.id
        self.function = function
        self.token = token
        self.event = event
        self._memo = {s.key: s for s in steps}
        self._visited: set[str] = set()
        self._unvisited = len(self._memo)
        self._next_position = max((s.position for s in steps), default=-1) + 1
        # Executions that died before this one without a trace: charged to the next new step.
        self.unclean = unclean
        # The first checkpoint after a crash or a function-level retry resets the counters.
        self._progress = run.attempt != 0 or run.inflight > 1
        self._deferred: StepRecord | None = None
        # A cancellation requested while this execution ran (cancel_on, timeouts), as a
        # checkpoint reported it: the execution stops at the next step boundary.
        self._cancel: dict[str, Any] | None = None
        # Parallel branches share this invocation from several threads.
        self._lock = threading.RLock()
        self._parallel = 0
        self.output_limit = self.settings.output_limit
        # The run's state: the bytes of its stored outputs, from the memo, then kept running.
        self._state_bytes = sum(len(s.output.encode()) for s in steps if s.output is not None)
        # Concurrency: the run holds one slot per limit (taken by the executor); inside
        # step.parallel, branches beyond the first executing a step take their own.
        self._slot_limits = slot_limits or []
        self._slot_cond = threading.Condition(threading.Lock())
        self._run_slot_lent = False
        self._branch_holders: set[int] = set()
        self.logger = ReplayAwareLogger(log, self)
        self.span = None  # this execution's span, when tracing (tengo_jobs.tracing)
        self._replay_input = _replay_input(run.replay_note)
        # ``events``: a batch's events (``batch_events``); otherwise the one trigger.
        if has_envelopes(event.data):  # datetime, Decimal, dataclasses… sent as event data
            event = event.copy(data=revive(event.data))
        self.context = Context(event=event, events=events or [event], run_id=run.id, attempt=run.attempt,
                               function_id=function.id, logger=self.logger,
                               event_model=_event_model(function, event))

    # -- replay bookkeeping ----------------------------------------------------------------
    @property
    def replaying(self) -> bool:
        return self._unvisited > 0

    def memo_get(self, key: str) -> StepRow | None:
        with self._lock:
            row = self._memo.get(key)
            if row is not None and key not in self._visited:
                self._visited.add(key)
                self._unvisited -= 1
            return row

    def resumed_on(self, row: StepRow) -> bool:
        """Whether this execution is the first to pass the resolved step ``row``: no step
        after it is stored yet (tracing exports a wait's span once, on resumption)."""
        with self._lock:
            return not any(s.position > row.position for s in self._memo.values())

    def stored_steps(self) -> list[StepRow]:
        """Every step row known to this execution (stored, and checkpointed since), in run
        order: the memo a driver of another process's SDK sends with each call."""
        with self._lock:
            return sorted(self._memo.values(), key=lambda s: s.position)

    def replay_input(self, key: str) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """New ``(args, kwargs)`` for step ``key``'s function when this run is a replay
        given new input for that step (``POST /api/runs/<id>/replay`` with ``input``)."""
        if self._replay_input is None or self._replay_input[0] != key:
            return None
        return self._replay_input[1]

    def executing_new_step(self) -> int:
        """New work is about to run: whatever was not replayed by now will not be. Returns
        the executions that died since the last trace (once; then 0)."""
        with self._lock:
            self._unvisited = 0
            unclean, self.unclean = self.unclean, 0
            return unclean

    @contextlib.contextmanager
    def parallel_section(self) -> Iterator[None]:
        """Parallel branches run inside: their checkpoints are written at once (no row is
        held back across threads)."""
        with self._lock:
            self._parallel += 1
        try:
            yield
        finally:
            with self._lock:
                self._parallel -= 1

    def now(self) -> int:
        return self.executor.clock.now()

    # -- the run's state ---------------------------------------------------------------------
    def account_output(self, step_id: str, output: str, *, check: bool = True) -> str:
        """Add a new step ``output`` (JSON text) to the run's state and return it; with
        ``check``, a :class:`~tengo_jobs.errors.RunStateTooLargeError` naming the run, the
        step and the setting when the state would pass ``TENGO_MAX_RUN_STATE_BYTES``."""
        size = len(output.encode())
        limit = self.settings.run_state_limit
        with self._lock:
            total = self._state_bytes + size
            if check and total > limit:
                raise RunStateTooLargeError(
                    f"run {self.run_id}: step {step_id!r} returned {size} bytes of JSON, which "
                    f"would bring the run's stored step outputs to {total} bytes; the limit is "
                    f"{limit} bytes (TENGO_MAX_RUN_STATE_BYTES). Store large data elsewhere and "
                    "return a reference to it", field="output")
            self._state_bytes = total
        return output

    # -- concurrency slots of parallel branches -----------------------------------------------
    @contextlib.contextmanager
    def branch_slot(self) -> Iterator[None]:
        """Around the code of a step of a parallel branch, for a function with a
        ``concurrency`` limit: the first branch executing a step uses the run's slot; each
        other one takes a slot of its own first (waiting, re-checking, while none is free)
        and gives it back after. Outside ``step.parallel``, or without a limit: nothing."""
        if not self._slot_limits or not self._parallel:
            yield
            return
        holder = self._take_branch_slot()
        try:
            yield
        finally:
            self._give_back_branch_slot(holder)

    def _take_branch_slot(self) -> int:
        """0 for the run's own slot, else the number ``n`` of the holder ``<run>#<n>``.

        The wait is bounded: this run's own slot comes back as soon as the sibling branch
        using it ends its step, and every other wait is re-checked each poll interval."""
        interval = max(0.01, min(self.settings.poll_interval_ms, 250) / 1000)
        while True:
            with self._slot_cond:
                if not self._run_slot_lent:
                    self._run_slot_lent = True
                    return 0
                n = 1
                while n in self._branch_holders:
                    n += 1
                self._branch_holders.add(n)
            now = self.now()
            try:
                taken = self.store.slots.take_branch(
                    f"{self.run_id}{BRANCH_SEP}{n}", self._slot_limits, now=now,
                    expires_at=now + self.settings.lease_ttl_ms)
            except UNAVAILABLE_ERRORS as exc:
                self._forget_holder(n)
                raise DatabaseLost(str(exc)) from exc
            except BaseException:
                self._forget_holder(n)
                raise
            if taken:
                return n
            with self._slot_cond:
                self._branch_holders.discard(n)
                if self._run_slot_lent:  # checked under the lock its release notifies on
                    self._slot_cond.wait(interval)

    def _forget_holder(self, n: int) -> None:
        with self._slot_cond:
            self._branch_holders.discard(n)
            self._slot_cond.notify_all()

    def _give_back_branch_slot(self, n: int) -> None:
        if n == 0:
            with self._slot_cond:
                self._run_slot_lent = False
                self._slot_cond.notify_all()
            return
        try:
            woken = self.store.slots.release(f"{self.run_id}{BRANCH_SEP}{n}",
                                             self._slot_limits, self.now())
        except Exception as exc:  # noqa: BLE001 - the slot expires with the run's lease
            log.warning("run %s: could not give back a parallel branch's concurrency slot (%s); "
                        "it expires with the lease", self.run_id, exc)
            woken = []
        finally:
            self._forget_holder(n)
        if woken:
            self.executor.enqueue(woken)

    def place(self, op: StepOp) -> StepOp:
        """``op`` with its position in the run (the stored one for a step seen before)."""
        with self._lock:
            existing = self._memo.get(op.key)
            if existing is not None:
                position = existing.position
            elif op.key:
                position, self._next_position = self._next_position, self._next_position + 1
            else:
                return op
        return dataclasses.replace(op, position=position)

    # -- writes -----------------------------------------------------------------------------
    def checkpoint(self, op: StepOp, *, defer: bool = False) -> None:
        """Commit the step row ``op`` writes before the next step starts; with ``defer`` the
        row is held until the next write, which carries it (see the module docstring)."""
        record = self.place(op).record(self.now())
        with self._lock:
            self._memo[record.key] = StepRow(run_id=self.run_id, **{
                f: getattr(record, f) for f in _ROW_FIELDS})
            self._visited.add(record.key)
            defer = defer and not self._parallel
        self._flush()
        if defer:
            self._deferred = record
        else:
            self._write(record)

    def flush(self) -> None:
        """Commit the step row held back, if any, before the next step runs; at this step
        boundary an execution whose run was cancelled meanwhile stops
        (:class:`~tengo_jobs.errors.CancelRequested`: the steps it finished are kept)."""
        self._flush()
        if self._cancel is not None:
            raise CancelRequested(self._cancel)

    def _flush(self) -> None:
        with self._lock:
            record, self._deferred = self._deferred, None
        if record is not None:
            self._write(record)

    def _take_deferred(self) -> StepRecord | None:
        with self._lock:
            record, self._deferred = self._deferred, None
        return record

    def _write(self, record: StepRecord) -> None:
        try:
            with self._lock:
                progress, self._progress = self._progress, False
            requested = self.store.runs.checkpoint(self.run_id, self.token, self.now(), record,
                                                   progress=progress)
        except DatabaseUnavailableError as exc:  # inside user code: must not be caught there
            raise DatabaseLost(str(exc)) from exc
        if requested is not None:
            self._cancel = requested

    # -- waits that look back ----------------------------------------------------------------
    def with_lookback(self, op: WaitForEvent) -> WaitForEvent:
        """``op`` placed, with where its look-back starts: the latest end of the run's
        completed steps recorded before it (its previous durable point; ``None`` when it is
        the first: then the trigger's arrival), and the events earlier waits consumed."""
        op = cast(WaitForEvent, self.place(op))
        with self._lock:
            before = [s for s in self._memo.values()
                      if s.key != op.key and s.position < op.position
                      and s.status == StepStatus.COMPLETED]
        since = max((s.ended_at for s in before if s.ended_at is not None), default=None)
        seen = []
        for s in before:
            if s.kind == StepKind.WAIT and s.output not in (None, "null"):
                got = json.loads(cast(str, s.output))
                if isinstance(got, dict) and got.get("id") is not None:
                    seen.append(str(got["id"]))
        return dataclasses.replace(op, since=since, seen=tuple(seen))

    def received_event(self, op: WaitForEvent) -> str | None:
        """An event already received that satisfies the wait ``op`` (JSON, as the step
        returns it), or ``None`` (see :meth:`tengo_jobs.store.WaitStore.lookback`)."""
        op = self.with_lookback(op)
        try:
            return self.store.waits.lookback(self.run_id, event_name=op.event,
                                             expression=op.if_exp,
                                             trigger=self.event.to_dict(), since=op.since,
                                             seen=op.seen)
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseLost(str(exc)) from exc

    def clear_wait(self, step_key: str) -> None:
        """The wait of ``step_key`` timed out: forget it (a late event must not resolve it)."""
        try:
            self.store.waits.clear(self.run_id, step_key)
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseLost(str(exc)) from exc

    def suspend(self, ops: list[PendingOp]) -> None:
        """Park the run on its pending operations (sleeps, retry backoffs, waits for events,
        invoked children), the step row held back written with them."""
        pending = cast("list[PendingOp]", [
            self.with_lookback(op) if isinstance(op, WaitForEvent) else self.place(op)
            for op in ops])
        attempt = max([getattr(op, "attempt", 0) if isinstance(op, FunctionRetry)
                       else getattr(op, "attempts", 0) for op in pending] or [0])
        parked = self.store.runs.suspend(
            self.run, self.token, self.now(), pending, status=run_status_of(pending),
            attempt=attempt, trigger=self.event.to_dict(), record=self._take_deferred())
        tracer = tracing.get_tracer()
        if tracer.enabled:
            self._trace_pending(tracer, pending, parked.cancelled)
        if parked.cancelled:
            self.logger.info("run %s cancelled (%s)", self.run_id,
                             (self._cancel or {}).get("message", "requested while it ran"))
        wake = parked.children + list(parked.woken) + ([self.run_id] if parked.requeued else [])
        if wake:
            self.executor.enqueue(wake)

    def _trace_pending(self, tracer: tracing.NoopTracer, pending: list[PendingOp],
                       cancelled: bool) -> None:
        """Spans of the sleeps and backoffs this suspension parks on (to their wake-up);
        a wait's span is exported when it resolves (``Step.wait_for_event``)."""
        if cancelled:
            tracer.run_ended(self, "cancelled")
            return
        now = self.now()
        for op in pending:
            kind = {"Sleep": "sleep", "RetryStep": "backoff",
                    "FunctionRetry": "retry function"}.get(type(op).__name__)
            if kind is not None:
                tracer.pending(self, kind, op.key, now, op.wake_at)

    def retry_or_fail(self, exc: Exception) -> str:
        """An error outside any step: the whole function is tried again after a backoff (its
        stored steps replay), ``retries`` times, as Inngest does; then the run fails."""
        attempt = self.run.attempt + 1
        if attempt > self.function.retries:
            self.fail(exc)
            return "failed"
        now = self.now()
        delay = retry_delay_ms(exc, attempt, base_ms=self.settings.retry_base_ms,
                               max_ms=self.settings.retry_max_ms, now=now)
        self.logger.warning("run %s failed outside any step (%s: %s); attempt %d of %d in %d ms",
                            self.run_id, type(exc).__name__, exc, attempt + 1,
                            self.function.retries + 1, delay)
        self.suspend([FunctionRetry(wake_at=now + delay, attempt=attempt)])
        return "suspended"

    def complete(self, output: str) -> None:
        parent = self.store.runs.complete(self.run, self.token, self.now(), output,
                                          record=self._take_deferred(),
                                          cleanup=self.function.has_lifecycle)
        tracing.get_tracer().run_ended(self, "completed")
        if parent:
            self.executor.enqueue([parent])

    def fail(self, exc: BaseException) -> None:
        """Fail the run; its failure handler starts (as its own run) in the same transaction."""
        handler = None if self.function.is_failure_handler else self.function.on_failure
        error = error_dict(exc)
        failure_event = {"function_id": self.function.id, "run_id": self.run_id,
                         "error": error, "event": self.event.to_dict()}
        started = self.store.runs.fail(self.run, self.token, self.now(), error,
                                       failure_handler=handler, failure_event=failure_event,
                                       record=self._take_deferred(),
                                       cleanup=self.function.has_lifecycle)
        tracing.get_tracer().run_ended(self, "failed", error)
        if started:
            self.executor.enqueue(started)

    def release(self, *, crashed: bool = False, delay_ms: int = 0) -> None:
        """Give the run back so another worker takes it (best effort: else the lease expires);
        a step row held back is written first, so its step does not run again."""
        try:
            self._flush()
            self.store.runs.release(self.run_id, self.token, self.now(), crashed=crashed,
                                    delay_ms=delay_ms)
        except (Exception, Interrupt):  # noqa: BLE001 - the lease expires anyway
            log.exception("run %s: could not release its lease", self.run_id)

    # -- events -----------------------------------------------------------------------------
    def stop_cancelled(self, error: dict[str, Any]) -> None:
        """A cancellation was requested while the run executed (or before this execution
        acquired it): the run ends ``cancelled`` with ``error``; a row held back is kept."""
        self._flush()
        parent = self.store.runs.stop_cancelled(self.run, self.token, self.now(), error)
        tracing.get_tracer().run_ended(self, "cancelled", error)
        self.logger.info("run %s cancelled: %s", self.run_id, error.get("message"))
        if parent:
            self.executor.enqueue([parent])

    def send_events(self, events: list[dict[str, Any]]) -> list[str]:
        return self.executor.send(events)

    def original_event_dict(self) -> dict[str, Any]:
        return self.event.to_dict()
