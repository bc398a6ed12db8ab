"""The driver interface: how the executor runs a handler, whatever it is written in.

A driver takes one :class:`~tengo_jobs.engine.invocation.Invocation` (a leased run with
its memo of stored steps) and drives the function until it ends or must stop,
answering with an :data:`Outcome`. On the way it reports each finished step to the
invocation as a step operation (:mod:`tengo_jobs.core.ops`), which commits it before the
next step starts. The executor applies the outcome: complete, fail, retry the whole
function, suspend on the pending operations, or release the run.

The in-process call of a Python function (:class:`~.python.PythonDriver`) is the first
driver; an ``async def`` handler's driver and the HTTP driver of Inngest's SDK protocol
are its siblings: each turns its function's answers into the same operations and
outcomes, so checkpoints, retries, replay and suspension are the engine's, once.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Union

from dramatiq.threading import Interrupt as DramatiqInterrupt

from ...core.ops import PendingOp
from ...errors import Interrupt, NonRetriableError, StepError, Suspend

if TYPE_CHECKING:
    from ..invocation import Invocation


@dataclasses.dataclass(frozen=True)
class Completed:
    """The function returned ``value`` (encoded by the executor)."""

    value: Any


@dataclasses.dataclass(frozen=True)
class Suspended:
    """The function reached operations it must wait for (sleeps, backoffs, waits, invokes)."""

    ops: list[PendingOp]


@dataclasses.dataclass(frozen=True)
class Failed:
    """The function failed for good: a step failed and was not caught, or a
    ``NonRetriableError``."""

    error: BaseException


@dataclasses.dataclass(frozen=True)
class Errored:
    """An error outside any step: the whole function is retried (stored steps replay)."""

    error: Exception


@dataclasses.dataclass(frozen=True)
class Crashed:
    """The function raised something that is not an error (``sys.exit`` between steps):
    the run is released as if its process had died, and ``error`` is raised again."""

    error: BaseException


Outcome = Union[Completed, Suspended, Failed, Errored, Crashed]


def error_outcome(exc: BaseException) -> Outcome:
    """What an exception out of a handler means, the same for every Python driver: a
    pending operation suspends, a step failed for good fails the run, any other error is
    retried as the whole function, a non-error (``sys.exit``) crashes the execution. The
    engine's and the worker's interrupts (and an asyncio cancellation) are raised again."""
    if isinstance(exc, Suspend):
        return Suspended(exc.ops)
    if isinstance(exc, (Interrupt, DramatiqInterrupt, KeyboardInterrupt, asyncio.CancelledError)):
        raise exc
    if isinstance(exc, (StepError, NonRetriableError)):  # a step failed for good: so does the run
        return Failed(exc)
    if isinstance(exc, Exception):  # outside any step: retried, then failed
        return Errored(exc)
    return Crashed(exc)  # sys.exit() between steps


class Driver(abc.ABC):
    """Drives one invocation of a function (see the module docstring)."""

    #: The ``FunctionDef.runtime`` values this driver serves.
    runtimes: tuple[str, ...] = ()

    @abc.abstractmethod
    def drive(self, invocation: "Invocation") -> Outcome:
        """Run the function on ``invocation`` until it ends or must stop. Engine interrupts
        (a lost lease, a lost database, the worker's shutdown) propagate."""


__all__ = ["Driver", "error_outcome", "Outcome", "Completed", "Suspended", "Failed", "Errored", "Crashed"]
