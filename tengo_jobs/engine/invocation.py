"""One invocation of a handler on a leased run: its context, the memo of stored steps,
and the run's writes, each a transition of :class:`tengo_jobs.store.RunStore`.

An invocation replays the steps stored so far (from the memo, without running them)
and runs new ones back to back, checkpointing each before the next starts; it ends by
suspending, completing, failing or releasing the run. Every write is fenced on the
lease, so an invocation whose lease was lost stops at its next write
(:class:`~tengo_jobs.errors.LeaseLost`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from ..core.events import FUNCTION_INVOKED_EVENT, Event
from ..core.functions import FunctionDef
from ..errors import DatabaseLost, DatabaseUnavailableError, Suspend
from ..core.retry import retry_delay_ms
from ..serde import error_dict
from ..store import RunRow, RunStatus, StepKind, StepRow, StepStatus, StepWrite, TimerKind
from ..store.connection import UNAVAILABLE_ERRORS
from ..store.runs import invoke_unique_key

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("tengo_jobs.run")


class ReplayAwareLogger(logging.LoggerAdapter):
    """``ctx.logger``: silent while stored steps are being replayed, so each line is logged once."""

    def __init__(self, logger: logging.Logger, invocation: "Invocation"):
        super().__init__(logger, {"run_id": invocation.run_id,
                                  "function_id": invocation.function.id})
        self._inv = invocation

    def isEnabledFor(self, level):
        return not self._inv.replaying and self.logger.isEnabledFor(level)

    def log(self, level, msg, *args, **kwargs):
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
    logger: logging.LoggerAdapter


# Suspend.kind -> (step kind, step status, run status, timer kind)
_SUSPEND_AS = {
    "sleep": (StepKind.SLEEP, StepStatus.SLEEPING, RunStatus.SLEEPING, TimerKind.SLEEP),
    "retry": (StepKind.RUN, StepStatus.RETRYING, RunStatus.SLEEPING, TimerKind.RETRY),
    "wait": (StepKind.WAIT, StepStatus.WAITING, RunStatus.WAITING, TimerKind.TIMEOUT),
    "invoke": (StepKind.INVOKE, StepStatus.WAITING, RunStatus.WAITING, TimerKind.TIMEOUT),
}


class Invocation:
    def __init__(self, executor: "Executor", run: RunRow, function: FunctionDef, token: str,
                 event: Event, steps: list[StepRow], unclean: int):
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
        self.output_limit = self.settings.output_limit
        self.logger = ReplayAwareLogger(log, self)
        self.context = Context(event=event, events=[event], run_id=run.id, attempt=run.attempt,
                               function_id=function.id, logger=self.logger)

    # -- replay bookkeeping ----------------------------------------------------------------
    @property
    def replaying(self) -> bool:
        return self._unvisited > 0

    def memo_get(self, key: str) -> StepRow | None:
        row = self._memo.get(key)
        if row is not None and key not in self._visited:
            self._visited.add(key)
            self._unvisited -= 1
        return row

    def executing_new_step(self) -> int:
        """New work is about to run: whatever was not replayed by now will not be. Returns
        the executions that died since the last trace (once; then 0)."""
        self._unvisited = 0
        unclean, self.unclean = self.unclean, 0
        return unclean

    def now(self) -> int:
        return self.executor.clock.now()

    def _position(self, key: str) -> int:
        existing = self._memo.get(key)
        if existing is not None:
            return existing.position
        position, self._next_position = self._next_position, self._next_position + 1
        return position

    # -- writes -----------------------------------------------------------------------------
    def checkpoint(self, *, key: str, name: str, kind: StepKind, status: StepStatus,
                   attempts: int, started_at: int, output: str | None = None,
                   error: str | None = None, wake_at: int | None = None,
                   ended: bool = True) -> None:
        """Commit one step row (and renew the lease) before the next step starts."""
        now = self.now()
        step = StepWrite(key=key, name=name, kind=kind, position=self._position(key),
                         status=status, attempts=attempts, started_at=started_at,
                         ended_at=now if ended else None, output=output, error=error,
                         wake_at=wake_at)
        try:
            self.store.runs.checkpoint(self.run_id, self.token, now, step)
        except DatabaseUnavailableError as exc:  # inside user code: must not be caught there
            raise DatabaseLost(str(exc)) from exc
        self._memo[key] = step.row(self.run_id)
        self._visited.add(key)

    def clear_wait(self, step_key: str) -> None:
        """The wait of ``step_key`` timed out: forget it (a late event must not resolve it)."""
        try:
            self.store.waits.clear(self.run_id, step_key)
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseLost(str(exc)) from exc

    def suspend(self, s: Suspend) -> None:
        """Park the run: a sleep, a retry backoff, a wait for an event or an invoked child."""
        now = self.now()
        step_kind, step_status, run_status, timer_kind = _SUSPEND_AS[s.kind]
        existing = self._memo.get(s.step_key)
        step = StepWrite(
            key=s.step_key, name=s.step_name, kind=step_kind, position=self._position(s.step_key),
            status=step_status, attempts=s.attempts,
            error=json.dumps(s.error) if s.error else None,
            started_at=existing.started_at if existing is not None and existing.started_at else now,
            ended_at=None, wake_at=s.wake_at)
        wait = child = None
        if s.kind == "wait":
            def wait():
                self.store.waits.register(
                    run_id=self.run_id, step_key=s.step_key, event_name=s.payload["event"],
                    expression=s.payload.get("if_exp"), trigger=self.event.to_dict(),
                    expires_at=s.wake_at, now=now)
        elif s.kind == "invoke" and existing is None:
            def child():
                return self.store.events.start_run(
                    s.payload["function"], Event(name=FUNCTION_INVOKED_EVENT,
                                                 data=s.payload.get("data") or {}),
                    now=now, unique_key=invoke_unique_key(self.run_id, s.step_key),
                    parent_run_id=self.run_id)
        child_run_id = self.store.runs.suspend(self.run, self.token, now, step,
                                               status=run_status, timer=timer_kind,
                                               attempt=s.attempts, wait=wait, child=child)
        if child_run_id:
            self.executor.enqueue([child_run_id])

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
        self.store.runs.suspend(self.run, self.token, now, None, status=RunStatus.SLEEPING,
                                wake_at=now + delay, timer=TimerKind.RETRY, attempt=attempt)
        return "suspended"

    def complete(self, output: str) -> None:
        parent = self.store.runs.complete(self.run, self.token, self.now(), output)
        if parent:
            self.executor.enqueue([parent])

    def fail(self, exc: BaseException) -> None:
        """Fail the run; its failure handler starts (as its own run) in the same transaction."""
        handler = None if self.function.is_failure_handler else self.function.on_failure
        error = error_dict(exc)
        failure_event = {"function_id": self.function.id, "run_id": self.run_id,
                         "error": error, "event": self.event.to_dict()}
        started = self.store.runs.fail(self.run, self.token, self.now(), error,
                                       failure_handler=handler, failure_event=failure_event)
        if started:
            self.executor.enqueue(started)

    def release(self, *, crashed: bool = False, delay_ms: int = 0) -> None:
        """Give the run back so another worker takes it (best effort: else the lease expires)."""
        try:
            self.store.runs.release(self.run_id, self.token, self.now(), crashed=crashed,
                                    delay_ms=delay_ms)
        except Exception:  # noqa: BLE001 - the lease expires anyway
            log.exception("run %s: could not release its lease", self.run_id)

    # -- events -----------------------------------------------------------------------------
    def send_events(self, events: list[dict]) -> list[str]:
        return self.executor.send(events)

    def original_event_dict(self) -> dict[str, Any]:
        return self.event.to_dict()
