"""The ``step`` object handed to an ``async def`` handler: every method is awaited.

:class:`AsyncStep` is a thin face over :class:`~tengo_jobs.engine.steps.Step`: the same
keys, replay, checkpoints, retries, errors and interrupts, because the same code runs
them. A ``run`` step's attempt is a generator (:meth:`Step._attempt`) that records what
must be recorded, hands back the call to make, and takes its result to checkpoint it;
here the call is *awaited* (an ``async def`` step function on the event loop; a plain one
in a thread, ``asyncio.to_thread``, so it does not block the loop).

**The engine's database writes run on the event loop's thread, synchronously.** A
checkpoint, a suspension or a completion is one short transaction; running each in a
thread would cost a thread hop per write for every run on the loop, and the writes of
concurrent runs would then interleave on pooled connections. While one is written the
loop's other runs wait for it (milliseconds; longer only during a database outage, which
the store rides out by retrying). ``step.transaction`` is the exception: the user's
function runs *inside* the checkpoint's transaction, so the whole step runs in a thread
(with that thread's connection); its function must be plain.

Each call returns an awaitable that does nothing until it is awaited; one never awaited
is found when the handler returns (:meth:`AsyncStep.unawaited`) and fails the execution
with a :class:`~tengo_jobs.errors.StepUsageError` naming it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Generator, Generic, Sequence,
                    TypeVar, cast, overload)

from ..errors import StepUsageError, Suspend
from .steps import P, R, Step, _name, finish_attempt, settle_branches

if TYPE_CHECKING:
    from .invocation import Invocation

T = TypeVar("T")


class StepCall(Generic[T]):
    """An awaitable step call: starts when awaited, remembers whether it was."""

    __slots__ = ("_owner", "label", "_start")

    def __init__(self, owner: "AsyncStep", label: str, start: Callable[[], Awaitable[T]]):
        self._owner = owner
        self.label = label
        self._start = start
        owner._unawaited.add(self)

    def __await__(self) -> Generator[Any, None, T]:
        self._owner._unawaited.discard(self)
        return self._start().__await__()


class AsyncStep:
    """What an ``async def`` handler receives as ``step``: ``await step.run(...)`` etc."""

    def __init__(self, invocation: "Invocation"):
        self._step = Step(invocation)
        self._x = invocation
        self._unawaited: set[StepCall[Any]] = set()

    def _call(self, label: str, start: Callable[[], Awaitable[T]]) -> StepCall[T]:
        return StepCall(self, label, start)

    def unawaited(self) -> list[str]:
        """The step calls made and never awaited (``step.run('a', f)`` without ``await``)."""
        return sorted(c.label for c in self._unawaited)

    # -- step.run ----------------------------------------------------------------------
    @overload
    def run(self, step_id: str, fn: Callable[P, Awaitable[R]], *args: P.args,
            **kwargs: P.kwargs) -> StepCall[R]: ...

    @overload
    def run(self, step_id: str, fn: Callable[P, R], *args: P.args,
            **kwargs: P.kwargs) -> StepCall[R]: ...

    def run(self, step_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> StepCall[Any]:
        """Run ``fn(*args, **kwargs)`` once (awaited when it is ``async def``, in a thread
        when it is plain); its JSON result is stored and replayed after."""
        return self._call(f"step.run({step_id!r})", lambda: self._run(step_id, fn, args, kwargs))

    async def _run(self, step_id: str, fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        attempt = self._step._attempt(step_id, fn, args, kwargs, transactional=False)
        try:
            fn, args, kwargs = next(attempt)
        except StopIteration as done:  # replayed
            return done.value
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(*args, **kwargs)
            else:
                result = await asyncio.to_thread(fn, *args, **kwargs)
                if inspect.isawaitable(result):  # a plain callable handing back a coroutine
                    result = await result
        except BaseException as exc:  # noqa: BLE001 - the attempt decides (fail, retry, re-raise)
            return finish_attempt(attempt, error=exc)
        return finish_attempt(attempt, result=result)

    def transaction(self, step_id: str, fn: Callable[P, R], *args: P.args,
                    **kwargs: P.kwargs) -> StepCall[R]:
        """:meth:`Step.transaction`: ``fn`` (a plain function) runs in a thread, inside the
        database transaction that also writes the step's checkpoint."""
        if inspect.iscoroutinefunction(fn):
            raise StepUsageError(
                f"function {self._x.function.id!r}, step {step_id!r}: step.transaction takes a "
                f"plain function ({_name(fn)} is async): it runs inside a database transaction, "
                "in a thread")
        def start() -> Awaitable[R]:
            transaction = cast(Callable[..., R], self._step.transaction)
            return asyncio.to_thread(transaction, step_id, fn, *args, **kwargs)
        return self._call(f"step.transaction({step_id!r})", start)

    # -- operations the engine does (no user code): run on the loop -----------------------
    def _now(self, label: str, op: Callable[..., T], *args: Any, **kwargs: Any) -> StepCall[T]:
        async def start() -> T:
            return op(*args, **kwargs)
        return self._call(label, start)

    def sleep(self, step_id: str, duration: Any) -> StepCall[None]:
        """Pause the run for ``duration`` ("45s", "1h", a timedelta); holds no thread."""
        return self._now(f"step.sleep({step_id!r})", self._step.sleep, step_id, duration)

    def sleep_until(self, step_id: str, when: Any) -> StepCall[None]:
        """Pause the run until ``when`` (an aware datetime, epoch ms, or ISO 8601 text)."""
        return self._now(f"step.sleep_until({step_id!r})", self._step.sleep_until, step_id, when)

    def wait_for_event(self, step_id: str, *, event: str, timeout: Any,
                       if_exp: str | None = None, match: str | None = None
                       ) -> StepCall[dict[str, Any] | None]:
        """:meth:`Step.wait_for_event`: the matching event as a dict, or ``None``."""
        return self._now(f"step.wait_for_event({step_id!r})", self._step.wait_for_event,
                         step_id, event=event, timeout=timeout, if_exp=if_exp, match=match)

    def invoke(self, step_id: str, *, function: Any, data: dict[str, Any] | None = None,
               timeout: Any = "365d") -> StepCall[Any]:
        """:meth:`Step.invoke`: another function's output, as a child run."""
        return self._now(f"step.invoke({step_id!r})", self._step.invoke, step_id,
                         function=function, data=data, timeout=timeout)

    def send_event(self, step_id: str, events: Any) -> StepCall[list[str]]:
        """:meth:`Step.send_event`: send events exactly once; returns their ids."""
        return self._now(f"step.send_event({step_id!r})", self._step.send_event, step_id, events)

    # -- parallel branches --------------------------------------------------------------
    def parallel(self, branches: Sequence[Awaitable[Any] | Callable[[], Awaitable[Any]]]
                 ) -> StepCall[list[Any]]:
        """Run ``branches`` concurrently on the loop (``asyncio.gather``) and return their
        results in order: each an awaitable (``step.run(...)`` not awaited) or a callable
        giving one (an ``async def`` of no arguments). Otherwise as :meth:`Step.parallel`:
        a branch that must wait lets the others run to their end or their own wait, then
        the run suspends on all; a branch that fails for good raises its StepError here."""
        branches = list(branches)
        for b in branches:
            if not (inspect.isawaitable(b) or callable(b)):
                raise StepUsageError("step.parallel takes awaitables or callables returning "
                                     "them, e.g. [step.run('a', fa), step.run('b', fb)]")
        return self._call("step.parallel", lambda: self._parallel(branches))

    async def _parallel(self, branches: list[Any]) -> list[Any]:
        if not branches:
            return []
        self._step._parallel_section_start()
        results: list[Any] = [None] * len(branches)
        pending: list[Any] = []
        failures: list[BaseException] = []

        async def branch(i: int) -> None:
            b = branches[i]
            try:
                results[i] = await (b if inspect.isawaitable(b) else b())
            except Suspend as s:
                pending.extend(s.ops)
            except BaseException as exc:  # noqa: BLE001 - handed back to the handler
                failures.append(exc)

        with self._x.parallel_section():
            await asyncio.gather(*(branch(i) for i in range(len(branches))))
        return settle_branches(results, pending, failures)


__all__ = ["AsyncStep", "StepCall"]
