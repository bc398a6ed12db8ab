"""Step operations as values: what a step call asks the engine to do.

Modeled on the opcodes of Inngest's SDKs (``StepRun``, ``Sleep``, ``WaitForEvent``,
``InvokeFunction``, ``StepPlanned``): a step call produces one operation with its key,
its name, its options and its data; a *driver* (the in-process Python call today; an
async driver and an HTTP driver for Inngest's SDK protocol beside it) hands the
operations to the executor, which turns them into state: a checkpoint, or a suspension
with a list of pending operations. Each kind is defined once, here: the step kind it is
stored as, the status its row gets, and — for the operations that park the run — the
timer it sets and the status of the run.

Two families:

- **Checkpoints** (:class:`StepRun`, :class:`StepStarted`, :class:`StepFailed`,
  :class:`SleepDone`, :class:`WaitTimedOut`): a step row committed before the next step
  starts; the run keeps executing.
- **Pending operations** (:class:`Sleep`, :class:`RetryStep`, :class:`WaitForEvent`,
  :class:`Invoke`, :class:`FunctionRetry`): the run stops executing until each one's
  timer fires or an outside event resolves it (a matching event, a child's end). A run
  may have several pending at once (parallel branches), each keyed by run and step.

:class:`StepPlanned` is a parallel branch found but not yet executed (Inngest's
``StepPlanned``); a driver that receives it executes the branch.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, ClassVar

from .states import RunStatus, StepKind, StepStatus, TimerKind


class Opcode(str, enum.Enum):
    """The kinds of step operation (Inngest's names where it has them)."""

    STEP_RUN = "StepRun"
    STEP_STARTED = "StepStarted"
    STEP_FAILED = "StepFailed"
    SLEEP_DONE = "SleepDone"
    WAIT_TIMED_OUT = "WaitTimedOut"
    WAIT_MATCHED = "WaitMatched"
    SLEEP = "Sleep"
    RETRY_STEP = "StepError"
    WAIT_FOR_EVENT = "WaitForEvent"
    INVOKE = "InvokeFunction"
    FUNCTION_RETRY = "FunctionRetry"
    STEP_PLANNED = "StepPlanned"


# The error of an attempt charged to an execution that died (a crash, SIGKILL, OOM).
DIED_ERROR = {"name": "StepCrashedError", "message": "the execution died"}


@dataclasses.dataclass(frozen=True)
class FailedAttempt:
    """One failed attempt of a step, logged in ``tj_step_attempts`` with the step row that
    records the failure (a successful attempt logs nothing: its times are the row's).
    ``retry_at``: when the next attempt was due (the end of the backoff)."""

    attempt: int
    started_at: int | None
    ended_at: int | None
    error: str | None
    retry_at: int | None = None


@dataclasses.dataclass(frozen=True)
class StepRecord:
    """One step row as the store writes it; ``failed``: the failed attempts it logs."""

    key: str
    name: str
    kind: StepKind
    position: int
    status: StepStatus
    attempts: int
    started_at: int | None
    ended_at: int | None
    output: str | None = None
    error: str | None = None
    wake_at: int | None = None
    failed: tuple[FailedAttempt, ...] = ()

    def params(self) -> tuple[Any, ...]:
        return (self.key, self.name, self.kind.value, self.position, self.status.value,
                self.attempts, self.output, self.error, self.started_at, self.ended_at,
                self.wake_at)


@dataclasses.dataclass(frozen=True)
class StepOp:
    """Base of every operation: the step's key (``id``, ``id:1``…), its name (the id as
    written) and its position in the run (assigned by the executor)."""

    key: str
    name: str
    position: int = 0

    opcode: ClassVar[Opcode]
    step_kind: ClassVar[StepKind] = StepKind.RUN
    status: ClassVar[StepStatus]
    pending: ClassVar[bool] = False

    def record(self, now: int) -> StepRecord:
        """The step row this operation writes at ``now``."""
        return StepRecord(key=self.key, name=self.name, kind=self.step_kind,
                          position=self.position, status=self.status,
                          attempts=getattr(self, "attempts", 1),
                          started_at=getattr(self, "started_at", None) or now,
                          ended_at=None if self.pending or self.status == StepStatus.RUNNING
                          else now,
                          output=self._output(), error=self._error(),
                          wake_at=getattr(self, "wake_at", None))

    def _output(self) -> str | None:
        return None

    def _error(self) -> str | None:
        error = getattr(self, "error", None)
        return json.dumps(error) if error else None


def _attempt_start(op: StepFailed | RetryStep, record: StepRecord) -> int | None:
    """The failed attempt's start: given, or the step's own for a first attempt."""
    if op.attempt_started_at is not None:
        return op.attempt_started_at
    return record.started_at if op.attempts == 1 else None


# -- checkpoints -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StepRun(StepOp):
    """A step's function returned: its JSON result, committed before the next step starts."""

    output: str = "null"
    attempts: int = 1
    started_at: int | None = None

    opcode = Opcode.STEP_RUN
    status = StepStatus.COMPLETED

    def _output(self) -> str | None:
        return self.output


@dataclasses.dataclass(frozen=True)
class StepStarted(StepOp):
    """An attempt recorded *before* it runs (after executions died), so dying again counts."""

    attempts: int = 1
    started_at: int | None = None
    died: tuple[int, ...] = ()  # the attempts charged to executions that died

    opcode = Opcode.STEP_STARTED
    status = StepStatus.RUNNING

    def record(self, now: int) -> StepRecord:
        record = super().record(now)
        if not self.died:
            return record
        error = json.dumps(DIED_ERROR)
        return dataclasses.replace(record, failed=tuple(
            FailedAttempt(attempt=n, started_at=None, ended_at=None, error=error)
            for n in self.died))


@dataclasses.dataclass(frozen=True)
class StepFailed(StepOp):
    """A step failed for good (retries spent, non-retriable, a child's failure, a timeout)."""

    error: dict[str, Any] | None = None
    attempts: int = 1
    started_at: int | None = None
    kind: StepKind = StepKind.RUN
    attempt_started_at: int | None = None  # this attempt's start (``started_at``: the first's)

    opcode = Opcode.STEP_FAILED
    status = StepStatus.FAILED

    def record(self, now: int) -> StepRecord:
        record = super().record(now)
        failed: tuple[FailedAttempt, ...] = ()
        if self.kind == StepKind.RUN:
            failed = (FailedAttempt(attempt=self.attempts, started_at=_attempt_start(self, record),
                                    ended_at=now, error=record.error),)
        return dataclasses.replace(record, kind=self.kind, failed=failed)


@dataclasses.dataclass(frozen=True)
class SleepDone(StepOp):
    """A sleep whose time had already come when the step was reached."""

    started_at: int | None = None
    wake_at: int | None = None

    opcode = Opcode.SLEEP_DONE
    step_kind = StepKind.SLEEP
    status = StepStatus.COMPLETED


@dataclasses.dataclass(frozen=True)
class WaitTimedOut(StepOp):
    """A wait for an event whose timeout passed first: the step returns ``None``."""

    started_at: int | None = None
    wake_at: int | None = None

    opcode = Opcode.WAIT_TIMED_OUT
    step_kind = StepKind.WAIT
    status = StepStatus.COMPLETED

    def _output(self) -> str | None:
        return "null"


@dataclasses.dataclass(frozen=True)
class WaitMatched(StepOp):
    """A wait for an event that an event already received satisfied when the step was
    reached (the look-back of :class:`WaitForEvent`): the step returns that event at once."""

    output: str = "null"
    started_at: int | None = None

    opcode = Opcode.WAIT_MATCHED
    step_kind = StepKind.WAIT
    status = StepStatus.COMPLETED

    def _output(self) -> str | None:
        return self.output


# -- pending operations ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PendingOp(StepOp):
    """An operation that parks the run until ``wake_at`` (its timer) or an outside event."""

    wake_at: int = 0
    started_at: int | None = None

    pending = True
    timer: ClassVar[TimerKind]
    run_status: ClassVar[RunStatus] = RunStatus.SLEEPING
    writes_step: ClassVar[bool] = True


@dataclasses.dataclass(frozen=True)
class Sleep(PendingOp):
    """``step.sleep`` / ``step.sleep_until``: a timer, no worker held."""

    opcode = Opcode.SLEEP
    step_kind = StepKind.SLEEP
    status = StepStatus.SLEEPING
    timer = TimerKind.SLEEP

    @property
    def attempts(self) -> int:
        return 0


@dataclasses.dataclass(frozen=True)
class RetryStep(PendingOp):
    """A step attempt failed and is tried again at ``wake_at`` (backoff with jitter)."""

    attempts: int = 1
    error: dict[str, Any] | None = None
    attempt_started_at: int | None = None  # this attempt's start (``started_at``: the first's)

    opcode = Opcode.RETRY_STEP
    status = StepStatus.RETRYING
    timer = TimerKind.RETRY

    def record(self, now: int) -> StepRecord:
        record = super().record(now)
        return dataclasses.replace(record, failed=(FailedAttempt(
            attempt=self.attempts, started_at=_attempt_start(self, record), ended_at=now,
            error=record.error, retry_at=self.wake_at),))


@dataclasses.dataclass(frozen=True)
class WaitForEvent(PendingOp):
    """``step.wait_for_event``: an indexed wait row and a timeout timer (``wake_at``).

    The wait also matches events received before its row was written: every event named
    ``event`` received at or after ``since`` (the run's previous durable point; ``None``:
    its trigger's arrival) except the trigger and the events whose ids are in ``seen``
    (consumed by earlier waits of the run) — see ``docs/semantics.md``."""

    event: str = ""
    if_exp: str | None = None
    since: int | None = None
    seen: tuple[str, ...] = ()

    opcode = Opcode.WAIT_FOR_EVENT
    step_kind = StepKind.WAIT
    status = StepStatus.WAITING
    timer = TimerKind.TIMEOUT
    run_status = RunStatus.WAITING

    @property
    def attempts(self) -> int:
        return 0


@dataclasses.dataclass(frozen=True)
class Invoke(PendingOp):
    """``step.invoke``: a child run (started with the suspension when ``start`` is set) and
    a timeout timer; the child's end resolves the step."""

    function_id: str = ""
    app_id: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    start: bool = True

    opcode = Opcode.INVOKE
    step_kind = StepKind.INVOKE
    status = StepStatus.WAITING
    timer = TimerKind.TIMEOUT
    run_status = RunStatus.WAITING

    @property
    def attempts(self) -> int:
        return 0


@dataclasses.dataclass(frozen=True)
class FunctionRetry(PendingOp):
    """An error outside any step: the whole function is tried again at ``wake_at``."""

    key: str = ""
    name: str = ""
    attempt: int = 1

    opcode = Opcode.FUNCTION_RETRY
    status = StepStatus.RETRYING
    timer = TimerKind.RETRY
    writes_step = False


@dataclasses.dataclass(frozen=True)
class StepPlanned(StepOp):
    """A parallel branch reached but not executed yet (Inngest's ``StepPlanned``)."""

    opcode = Opcode.STEP_PLANNED
    status = StepStatus.RUNNING


def run_status_of(pending: list[PendingOp]) -> RunStatus:
    """The status of a run parked on ``pending``: waiting when any waits on something
    outside (an event, a child), else sleeping."""
    return (RunStatus.WAITING if any(op.run_status == RunStatus.WAITING for op in pending)
            else RunStatus.SLEEPING)


__all__ = ["Opcode", "FailedAttempt", "DIED_ERROR", "StepRecord", "StepOp", "StepRun",
           "StepStarted", "StepFailed", "SleepDone",
           "WaitTimedOut", "WaitMatched", "PendingOp", "Sleep", "RetryStep", "WaitForEvent", "Invoke",
           "FunctionRetry", "StepPlanned", "run_status_of"]
