"""The in-process driver of a plain Python handler ``handler(ctx, step)``.

The handler is called once per execution with ``ctx`` and a
:class:`~tengo_jobs.engine.steps.Step`: stored steps replay from the memo, new ones run
back to back in this thread, each checkpointed before the next starts, and the first
operation that must wait (a sleep, a backoff, a wait, an invoke) stops the call with
:class:`~tengo_jobs.errors.Suspend` carrying it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import middleware as mw
from ..steps import Step
from .base import Completed, Driver, Outcome, error_outcome

if TYPE_CHECKING:
    from ..invocation import Invocation


class PythonDriver(Driver):
    runtimes = ("python",)

    def drive(self, invocation: "Invocation") -> Outcome:
        chain = invocation.function.middleware
        outcome: Outcome
        try:
            if chain:
                mw.before_execution(chain, invocation.context)
            value = invocation.function.handler(invocation.context, Step(invocation))
        except BaseException as exc:  # noqa: BLE001 - sorted by error_outcome
            outcome = error_outcome(exc)
        else:
            outcome = Completed(value)
        if chain:
            mw.after_execution(chain, invocation.context, outcome)
        return outcome


__all__ = ["PythonDriver"]
