"""The one error hierarchy of tengo_jobs.

Everything a user can catch derives from :class:`TengoJobsError`. Validation
errors also derive from :class:`ValueError` so code written against plain
Python conventions keeps working.

Engine *interrupts* (a step asking the executor to suspend the run, or a lost
lease) derive from :class:`BaseException` on purpose: a user's
``except Exception`` around a ``step.sleep`` must not swallow the sleep.
"""

from __future__ import annotations

from typing import Any


class TengoJobsError(Exception):
    """Base class for every error tengo_jobs raises."""


# -- configuration --------------------------------------------------------------------------
class ConfigurationError(TengoJobsError, ValueError):
    """Invalid or unsafe configuration (environment, function options, cron strings)."""


class UnsafeProductionError(ConfigurationError):
    """``TENGO_ENV=production`` with unsafe settings; ``problems`` lists every one (no values)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            "refusing to start with TENGO_ENV=production: " + "; ".join(self.problems)
            + ". Fix these or set TENGO_ALLOW_UNSAFE=1 to start anyway.")


class DuplicateFunctionError(ConfigurationError):
    """Two different functions were registered under one id."""


class UnknownFunctionError(TengoJobsError, LookupError):
    """A run names a function that this process has not registered."""


# -- input ----------------------------------------------------------------------------------
class ValidationError(TengoJobsError, ValueError):
    """Input that cannot be accepted; ``field`` names what is wrong, ``index`` where in a batch."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.index = index

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "field": self.field}
        if self.index is not None:
            body["index"] = self.index
        return body


class DurationError(ValidationError):
    """A duration or a point in time that cannot be read ("45s", an aware datetime, epoch ms)."""


class EventValidationError(ValidationError):
    """An event that breaks the event contract (name, data, ts, size)."""


class EventTooLargeError(EventValidationError):
    """An event over 512 KiB or a batch over 5,000 events (HTTP 413)."""


class ExpressionError(ValidationError):
    """A CEL expression that does not parse."""


class OutputTooLargeError(ValidationError):
    """A step or run output whose JSON encoding exceeds the configured limit."""


class RunStateTooLargeError(OutputTooLargeError):
    """A step output that would bring a run's stored outputs past ``TENGO_MAX_RUN_STATE_BYTES``."""


class NotSerializableError(ValidationError):
    """A step or run output that cannot be encoded as JSON."""


# -- execution ------------------------------------------------------------------------------
class NonRetriableError(TengoJobsError):
    """Raise from a step to fail it at once, without spending its remaining retries."""


class RetryAfterError(TengoJobsError):
    """Raise from a step to retry it after ``delay`` (seconds, a timedelta or ``"30s"``)."""

    def __init__(self, message: str = "retry requested", delay: Any = None):
        super().__init__(message)
        self.delay = delay


class StepError(TengoJobsError):
    """A step failed for good (retries exhausted or non-retriable); catchable in the handler."""

    def __init__(self, step_id: str, message: str, *, error_name: str = "Error", attempts: int = 0):
        super().__init__(f"step {step_id!r} failed after {attempts} attempt(s): {error_name}: {message}")
        self.step_id = step_id
        self.error_name = error_name
        self.error_message = message
        self.attempts = attempts


class StepCrashedError(TengoJobsError):
    """A step whose executions kept dying before they could record a result."""


class FunctionCrashedError(TengoJobsError):
    """A run whose executions kept dying outside any step."""


class StepUsageError(TengoJobsError, ValueError):
    """A step called the wrong way: a bad id, bad arguments, or a step inside a step."""


class NonDeterminismError(TengoJobsError):
    """A replay met a stored step of another kind than the code now asks for."""


class RunNotFoundError(TengoJobsError, LookupError):
    """No run with that id."""


class EventNotFoundError(RunNotFoundError):
    """No event with that id."""


class FunctionNotFoundError(RunNotFoundError):
    """No function is registered under that id (a 404 from the API)."""


class InvalidRunStateError(TengoJobsError):
    """The run is not in a state that allows the requested operation."""


class DatabaseUnavailableError(TengoJobsError):
    """The database did not answer (a restart, a failover, a partition); retried, then raised."""


# -- interrupts (BaseException: user code must not swallow them) ---------------------------
class Interrupt(BaseException):
    """Base of the engine's control-flow signals. Not an error: never catch it in user code."""


class LeaseLost(Interrupt):
    """This worker's lease on the run expired or was taken over; its checkpoints are refused."""


class DatabaseLost(Interrupt):
    """The database stayed away longer than the reconnect window in the middle of a run:
    the execution stops where it is (its lease expires; the run is sent again)."""


class Suspend(Interrupt):
    """The run must stop executing: ``ops`` are its pending step operations
    (:mod:`tengo_jobs.core.ops`: sleeps, retry backoffs, waits, invoked children), written
    as its state; the run resumes when one of them is resolved."""

    def __init__(self, ops: list[Any]):
        super().__init__(", ".join(getattr(op, "key", "?") for op in ops))
        self.ops = list(ops)


class CancelRequested(Interrupt):
    """The run was cancelled (``cancel_on``, ``timeouts``) while this execution ran a step:
    that step's result is kept, and the run stops here, before the next one. ``error`` is
    the run's recorded error (``{"name": "RunCancelled", "message": reason}``)."""

    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message", "cancelled"))
        self.error = error
