"""Middleware: hooks around a run's execution, each step, and sending events.

Subclass :class:`Middleware`, override the hooks you need, and register instances on the
client: ``Jobs("app", middleware=[Tracing(), Encrypt(key)])``. The hooks (inngest-py's
names where it has them) are plain methods, called in the thread that does the work (the
worker's thread for a sync handler, the event loop's thread for an ``async def`` one; a
step function of an async handler that runs in a thread sees the context variables set
by ``before_step``). With several middleware, ``before_*`` and ``transform_*`` hooks run
in registration order, ``after_*`` hooks and ``transform_stored`` in reverse order (the
last registered is the innermost layer, as with WSGI middleware).

What the hooks see and when (``docs/middleware.md`` has examples):

- ``before_execution(ctx)`` / ``after_execution(ctx, outcome)``: around every execution of
  a run's handler (one run may take several executions: each sleep, wait or retry ends
  one). ``outcome`` is one of :class:`~tengo_jobs.engine.drivers.Completed`,
  ``Suspended``, ``Failed``, ``Errored``, ``Crashed``. An exception out of
  ``before_execution`` is an error of the execution (retried as the function is);
  one out of ``after_execution`` is logged and ignored (the outcome is already decided).
- ``before_step(ctx, step_id)`` / ``after_step(ctx, step_id, output, error)``: around a
  ``step.run``/``step.transaction`` function that actually runs (not around a replayed
  one). ``error`` is the exception it raised (then ``output`` is ``None``).
- ``transform_input(ctx, step_id, args, kwargs) -> (args, kwargs)``: the step function's
  arguments, before it runs.
- ``transform_output(ctx, step_id, value) -> value``: the step function's result, before
  it is encoded and stored (encrypt a field here).
- ``transform_stored(ctx, step_id, value) -> value``: a stored step result (decoded)
  every time the handler receives it, on the first execution as on replay (decrypt here):
  the handler always gets ``transform_stored(decode(stored))``, so a step's value is the
  same on both paths.
- ``before_send_events(events) -> events`` / ``after_send_events(events, ids)``: around
  :meth:`Jobs.send <tengo_jobs.Jobs.send>`, ``send_async`` and ``step.send_event`` of
  this client's functions (``events`` is a list of dicts or ``Event`` objects as given).
  Events posted over HTTP go through no client and no middleware.

An exception raised by a step hook (``before_step``, ``transform_input``,
``transform_output``, ``after_step``) fails that step's attempt like an exception of the
step function (it is retried). A client without middleware pays nothing on these paths.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from .errors import ConfigurationError

# What hooks receive as ``ctx`` is the handler's ``tengo_jobs.Context``; named loosely here
# because this module sits below the engine (the engine calls it).
Context = Any

log = logging.getLogger(__name__)


class Middleware:
    """Base class: every hook does nothing (override the ones you need)."""

    def before_execution(self, ctx: "Context") -> None:
        """Before the handler is called for one execution of a run."""

    def after_execution(self, ctx: "Context", outcome: Any) -> None:
        """After the handler returned or raised, with the execution's outcome."""

    def before_step(self, ctx: "Context", step_id: str) -> None:
        """Before a step function runs (not when its result is replayed)."""

    def after_step(self, ctx: "Context", step_id: str, output: Any,
                   error: BaseException | None) -> None:
        """After a step function ran: its (transformed) output, or the error it raised."""

    def transform_input(self, ctx: "Context", step_id: str, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments the step function is called with."""
        return args, kwargs

    def transform_output(self, ctx: "Context", step_id: str, value: Any) -> Any:
        """The step function's result, before it is stored."""
        return value

    def transform_stored(self, ctx: "Context", step_id: str, value: Any) -> Any:
        """A stored step result, each time the handler receives it (first run and replay)."""
        return value

    def before_send_events(self, events: list[Any]) -> list[Any]:
        """The events about to be sent (validated after this hook)."""
        return events

    def after_send_events(self, events: list[Any], ids: list[str]) -> None:
        """After the events were stored: their ids, in order."""


def check_middleware(middleware: Any) -> tuple[Middleware, ...]:
    """``Jobs(middleware=...)`` as a tuple of :class:`Middleware` instances; a
    ``ConfigurationError`` naming the position of anything else."""

    if middleware is None:
        return ()
    if isinstance(middleware, Middleware) or not isinstance(middleware, (list, tuple)):
        raise ConfigurationError("Jobs(middleware=...) must be a list of Middleware instances")
    for i, m in enumerate(middleware):
        if isinstance(m, type) and issubclass(m, Middleware):
            raise ConfigurationError(f"Jobs(middleware=...)[{i}] is the class {m.__name__}; "
                                     "pass an instance: middleware=[" + m.__name__ + "()]")
        if not isinstance(m, Middleware):
            raise ConfigurationError(f"Jobs(middleware=...)[{i}] must be a tengo_jobs.Middleware "
                                     f"instance, got {type(m).__name__}")
    return tuple(middleware)


# -- calling the chain (the engine's side) ------------------------------------------------------
def before_execution(chain: Sequence[Middleware], ctx: "Context") -> None:
    for m in chain:
        m.before_execution(ctx)


def after_execution(chain: Sequence[Middleware], ctx: "Context", outcome: Any) -> None:
    for m in reversed(chain):
        try:
            m.after_execution(ctx, outcome)
        except Exception:  # noqa: BLE001 - the outcome stands; the next hooks still run
            log.exception("run %s: %s.after_execution raised; ignored", ctx.run_id,
                          type(m).__name__)


def before_step(chain: Sequence[Middleware], ctx: "Context", step_id: str,
                args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    for m in chain:
        args, kwargs = m.transform_input(ctx, step_id, tuple(args), dict(kwargs))
    for m in chain:
        m.before_step(ctx, step_id)
    return args, kwargs


def after_step(chain: Sequence[Middleware], ctx: "Context", step_id: str, output: Any,
               error: BaseException | None) -> Any:
    """``transform_output`` over a result (none when ``error``), then ``after_step``."""
    if error is None:
        for m in chain:
            output = m.transform_output(ctx, step_id, output)
    for m in reversed(chain):
        m.after_step(ctx, step_id, output, error)
    return output


def transform_stored(chain: Sequence[Middleware], ctx: "Context", step_id: str,
                     value: Any) -> Any:
    for m in reversed(chain):
        value = m.transform_stored(ctx, step_id, value)
    return value


def before_send(chain: Sequence[Middleware], events: Any) -> list[Any]:
    batch = list(events) if isinstance(events, (list, tuple)) else [events]
    for m in chain:
        batch = list(m.before_send_events(batch))
    return batch


def after_send(chain: Sequence[Middleware], events: list[Any], ids: list[str]) -> None:
    for m in reversed(chain):
        m.after_send_events(events, ids)


__all__ = ["Middleware", "check_middleware"]
