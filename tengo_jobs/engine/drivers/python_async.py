"""The driver of an ``async def`` handler ``handler(ctx, step)``.

The handler gets an :class:`~tengo_jobs.engine.steps_async.AsyncStep` and runs on this
process's one event loop, in a background thread (:class:`EventLoopThread`). Its
exceptions mean what they mean for a sync handler (:func:`.base.error_outcome`).

Two ways to drive it:

- :meth:`AsyncPythonDriver.drive` (the :class:`~.base.Driver` interface): the calling
  thread hands the coroutine to the loop and waits for its outcome. In-process callers use
  it (``JobsTester``, ``tengo-jobs dev``): simple, and the caller's thread is held.
- :meth:`AsyncPythonDriver.detach`: the worker's actor hands the coroutine to the loop and
  returns at once; the executor keeps the run's lease (its lease keeper renews it) and the
  loop applies the outcome when the coroutine ends (``finish``). So a run that awaits
  (``asyncio.sleep``, an HTTP call) holds no worker thread: two Dramatiq threads keep
  hundreds of awaiting runs going. At most ``max_inflight`` runs are detached at once per
  process; past that the actor thread waits for one to end (backpressure, not a queue in
  memory).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Callable, Coroutine, TypeVar

from ... import middleware as mw
from ...errors import StepUsageError
from ..steps_async import AsyncStep
from .base import Completed, Driver, Errored, Outcome, error_outcome

if TYPE_CHECKING:
    from ..invocation import Invocation

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MAX_INFLIGHT = 1000


class EventLoopThread:
    """One asyncio event loop running forever in a daemon thread, started on first use
    (and again in a forked child, which does not inherit the thread)."""

    def __init__(self, name: str = "tengo-async-loop"):
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                threading.Thread(target=serve, name=self._name, daemon=True).start()
                started.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, _T]) -> Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


_process_loop = EventLoopThread()


class AsyncPythonDriver(Driver):
    runtimes = ("python-async",)

    def __init__(self, loop: EventLoopThread | None = None, *,
                 max_inflight: int = DEFAULT_MAX_INFLIGHT):
        self._loop = loop or _process_loop
        self._inflight = threading.BoundedSemaphore(max_inflight)

    async def _outcome(self, invocation: "Invocation") -> tuple[Outcome | None, BaseException | None]:
        """Run the handler to its end; never raises (an exception escaping a task could stop
        the loop): ``(outcome, None)``, or ``(None, interrupt)`` for the executor to handle."""
        step = AsyncStep(invocation)
        chain = invocation.function.middleware
        try:
            outcome = await self._handler_outcome(invocation, step, chain)
            if chain:
                mw.after_execution(chain, invocation.context, outcome)
            return outcome, None
        except BaseException as exc:  # noqa: BLE001 - interrupts, raised again by the executor
            return None, exc

    @staticmethod
    async def _handler_outcome(invocation: "Invocation", step: AsyncStep,
                               chain: tuple[mw.Middleware, ...]) -> Outcome:
        try:
            if chain:
                mw.before_execution(chain, invocation.context)
            value = await invocation.function.handler(invocation.context, step)
        except BaseException as exc:  # noqa: BLE001 - sorted by error_outcome
            return error_outcome(exc)
        forgotten = step.unawaited()
        if forgotten:
            return Errored(StepUsageError(
                f"function {invocation.function.id!r}: {', '.join(forgotten)} was called but "
                "never awaited; write 'await step.run(...)' (the call did not run)"))
        return Completed(value)

    def drive(self, invocation: "Invocation") -> Outcome:
        future = self._loop.submit(self._outcome(invocation))
        try:
            outcome, interrupt = future.result()
        except BaseException:
            future.cancel()  # this thread is interrupted (worker shutdown): stop the run too
            raise
        if interrupt is not None:
            raise interrupt
        assert outcome is not None
        return outcome

    def detach(self, invocation: "Invocation",
               finish: Callable[[Callable[[], Outcome]], Any]) -> Future[Any]:
        """Start the handler on the loop and return; when it ends, ``finish`` is called on the
        loop's thread with a function returning its outcome (or raising its interrupt)."""
        self._inflight.acquire()

        async def run() -> None:
            outcome, interrupt = await self._outcome(invocation)

            def result() -> Outcome:
                if interrupt is not None:
                    raise interrupt
                assert outcome is not None
                return outcome

            try:
                finish(result)
            except BaseException:  # noqa: BLE001 - logged: the loop must keep serving
                log.exception("run %s: finishing its async execution failed", invocation.run_id)

        try:
            future = self._loop.submit(run())
        except BaseException:
            self._inflight.release()
            raise
        future.add_done_callback(lambda _: self._inflight.release())
        return future


__all__ = ["AsyncPythonDriver", "EventLoopThread", "DEFAULT_MAX_INFLIGHT"]
