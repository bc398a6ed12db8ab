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
import dataclasses
from typing import TYPE_CHECKING, Any, Union

from ...core.ops import PendingOp

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


class Driver(abc.ABC):
    """Drives one invocation of a function (see the module docstring)."""

    #: The ``FunctionDef.runtime`` values this driver serves.
    runtimes: tuple[str, ...] = ()

    @abc.abstractmethod
    def drive(self, invocation: "Invocation") -> Outcome:
        """Run the function on ``invocation`` until it ends or must stop. Engine interrupts
        (a lost lease, a lost database, the worker's shutdown) propagate."""


__all__ = ["Driver", "Outcome", "Completed", "Suspended", "Failed", "Errored", "Crashed"]
