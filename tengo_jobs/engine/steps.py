"""The ``step`` object handed to a Python handler: run, transaction, sleep, sleep_until,
wait_for_event, invoke, send_event.

Each call produces a step operation (:mod:`tengo_jobs.core.ops`) and hands it to the
invocation: a finished step is checkpointed before the next one starts; an operation
that must wait stops the handler with :class:`~tengo_jobs.errors.Suspend` carrying it.
Each step id gets a key (``id``, then ``id:1``, ``id:2``… when repeated — Inngest's
rule). A key with a stored result replays that result without running anything.

Attempts: a step that raises (``sys.exit`` included) records the failed attempt and
is retried with backoff, ``retries`` times, then fails for good (:class:`StepError` in
the handler). A step whose execution *dies* (SIGKILL, OOM, a segfault, a lost database)
records nothing; the next execution learns from the store how many executions died
(:attr:`tengo_jobs.store.Acquired.unclean`), counts them as attempts of the first step
it has to run, and records that step's next attempt *before* running it — so a step
that keeps killing its process runs ``1 + retries`` times, then fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import (TYPE_CHECKING, Any, Callable, Generator, NoReturn, ParamSpec, Sequence,
                    TypeVar, cast)

from dramatiq.threading import Interrupt as DramatiqInterrupt

from .. import logsafe, tracing
from ..core import ops
from ..core.expressions import compile_expression
from ..core.retry import retry_delay_ms
from ..durations import to_epoch_ms, to_ms
from ..errors import (Interrupt, NonDeterminismError, NonRetriableError, NotSerializableError,
                      OutputTooLargeError, StepCrashedError, StepError, StepUsageError, Suspend)
from .. import middleware as mw
from ..serde import decode, decode_value, encode_output, error_dict
from ..store import StepKind, StepStatus

if TYPE_CHECKING:
    from ..core.functions import FunctionDef
    from ..store import StepRow
    from .invocation import Invocation

log = logging.getLogger(__name__)

# The longest sleep, wait or invoke timeout, as in Inngest: one year.
MAX_PENDING_MS = 365 * 86_400_000
# ``match=``: a dotted path of identifiers in both events ("data.paymentId").
_MATCH_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _within_a_year(call: str, ms: int) -> None:
    """Refuse a sleep/wait/timeout longer than :data:`MAX_PENDING_MS`, naming the call."""
    if ms > MAX_PENDING_MS:
        raise StepUsageError(f"{call}: {ms / 86_400_000:.1f} days is longer than the limit of "
                             "one year (365 days) for a sleep, a wait or an invoke timeout")


def match_expression(call: str, match: object, if_exp: str | None) -> str | None:
    """The condition of ``wait_for_event(match="data.x")``: Inngest's shorthand for
    ``event.data.x == async.data.x`` (indexed like any such equality); ``if_exp`` when no
    ``match`` is given."""
    if match is None:
        return if_exp
    if if_exp is not None:
        raise StepUsageError(f"{call}: give match or if_exp, not both")
    if not isinstance(match, str) or not _MATCH_PATH.fullmatch(match):
        raise StepUsageError(f"{call}: match must be a dotted field path such as "
                             f"'data.paymentId', got {match!r}")
    return f"event.{match} == async.{match}"


# The engine's and the worker's control flow: never a failure of the step that was running.
ENGINE_INTERRUPTS = (Interrupt, DramatiqInterrupt, KeyboardInterrupt, asyncio.CancelledError)

# The step a piece of code runs inside, per thread *and* per asyncio task (a context
# variable: parallel branches, threads or tasks, each see their own): ``(step, step id)``.
_IN_STEP: contextvars.ContextVar[tuple[Any, str] | None] = contextvars.ContextVar(
    "tengo_jobs_in_step", default=None)

P = ParamSpec("P")
R = TypeVar("R")

#: What :meth:`Step._attempt` yields: the user function to call and its arguments; the
#: caller sends back its result or throws its exception in (see :func:`drive_sync`).
StepCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]
StepAttempt = Generator[StepCall, Any, Any]


def drive_sync(attempt: StepAttempt) -> Any:
    """Run a step attempt in this thread: call its function and hand the result back."""
    try:
        fn, args, kwargs = next(attempt)
    except StopIteration as done:  # replayed: nothing to run
        return done.value
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - the attempt decides (fail, retry, re-raise)
        return finish_attempt(attempt, error=exc)
    return finish_attempt(attempt, result=result)


def finish_attempt(attempt: StepAttempt, *, result: Any = None,
                   error: BaseException | None = None) -> Any:
    """Hand a step function's result (or its exception) back to its attempt; returns the
    step's value or raises what the attempt raises (StepError, Suspend, an interrupt)."""
    try:
        if error is not None:
            attempt.throw(error)
        else:
            attempt.send(result)
    except StopIteration as done:
        return done.value
    raise AssertionError("a step attempt yields once")  # pragma: no cover


def settle_branches(results: list[Any], pending: list[Any],
                    failures: list[BaseException]) -> list[Any]:
    """Parallel branches have all stopped: an interrupt wins, then a failure, then the
    operations they wait for (one suspension), else their results in order."""
    interrupts = [f for f in failures if isinstance(f, ENGINE_INTERRUPTS)]
    if interrupts:
        raise interrupts[0]
    if failures:
        raise failures[0]
    if pending:
        raise Suspend(pending)
    return results


def _step_error(step_id: str, row: StepRow) -> StepError:
    err = decode(row.error) or {}
    return StepError(step_id, err.get("message", ""), error_name=err.get("name", "Error"),
                     attempts=row.attempts)


class Step:
    """What a handler receives as ``step``."""

    def __init__(self, invocation: "Invocation"):
        self._x = invocation
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()

    @property
    def _in_step(self) -> str | None:
        current = _IN_STEP.get()
        return current[1] if current is not None and current[0] is self else None

    @_in_step.setter
    def _in_step(self, step_id: str | None) -> None:
        _IN_STEP.set(None if step_id is None else (self, step_id))

    # -- keys and replay ---------------------------------------------------------------
    def _key(self, step_id: str) -> str:
        if not isinstance(step_id, str) or not step_id:
            raise StepUsageError(f"a step id must be a non-empty string, got {step_id!r}")
        if len(step_id) > 256:
            raise StepUsageError(f"step id {step_id[:40]!r}... is longer than 256 characters")
        if self._in_step is not None:
            raise StepUsageError(f"step {step_id!r} was called inside step {self._in_step!r}; "
                                 "steps cannot be nested")
        with self._counts_lock:
            n = self._counts.get(step_id, 0)
            self._counts[step_id] = n + 1
        return step_id if n == 0 else f"{step_id}:{n}"

    def _stored(self, key: str, kind: StepKind) -> StepRow | None:
        row = self._x.memo_get(key)
        if row is not None and row.kind != kind:
            raise NonDeterminismError(
                f"run {self._x.run_id}: step {key!r} was recorded as a {row.kind.value} step but "
                f"the code now calls it as a {kind.value} step. Check that your function is "
                "deterministic (same steps in the same order for the same event).")
        return row

    # -- step.run ------------------------------------------------------------------------
    def run(self, step_id: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` once; its JSON result is stored and replayed after."""
        return cast(R, self._run(step_id, fn, args, kwargs, transactional=False))

    def transaction(self, step_id: str, fn: Callable[P, R], *args: P.args,
                    **kwargs: P.kwargs) -> R:
        """Like :meth:`run`, but ``fn`` runs inside a database transaction that also writes
        the step's checkpoint: its writes to the jobs database commit exactly once, together
        with the checkpoint, or not at all (an error, a crash or a lost lease rolls them
        back). Costs one commit instead of two for a step that writes rows."""
        return cast(R, self._run(step_id, fn, args, kwargs, transactional=True))

    def _run(self, step_id: str, fn: Callable[..., Any], args: tuple[Any, ...],
             kwargs: dict[str, Any], *, transactional: bool) -> Any:
        if inspect.iscoroutinefunction(fn):
            raise StepUsageError(
                f"function {self._x.function.id!r}, step {step_id!r}: {_name(fn)} is an async "
                "function, and this handler is a plain (sync) one: declare the handler with "
                "'async def' and 'await step.run(...)', or make the step function plain")
        return drive_sync(self._attempt(step_id, fn, args, kwargs, transactional=transactional))

    def _attempt(self, step_id: str, fn: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], *, transactional: bool) -> StepAttempt:
        """One attempt of a ``run`` step, as a generator the sync and the async step drive
        alike: it replays a stored result, or records what must be recorded before the
        function runs, *yields* the call to make, and takes back its result (or its
        exception, thrown in) to checkpoint it, retry it or fail it."""
        key = self._key(step_id)
        row = self._stored(key, StepKind.RUN)
        recorded, started_at = 0, None
        if row is not None:
            if row.status == StepStatus.COMPLETED:
                return self._value(step_id, row.output)
            if row.status == StepStatus.FAILED:
                raise _step_error(step_id, row)
            recorded, started_at = row.attempts, row.started_at
        x = self._x
        stubs = x.executor.step_stubs  # JobsTester.send(step_stubs=...): None outside tests
        if stubs and x.run_id in stubs and step_id in stubs[x.run_id]:
            fn, args, kwargs = _stub(stubs[x.run_id][step_id]), (), {}
        chain = x.function.middleware
        replaced = x.replay_input(key)  # a replay given new input for this step
        if replaced is not None:
            args, kwargs = replaced
        died = x.executing_new_step()
        x.flush()  # the previous step's result is committed before this one starts
        attempt_started_at = x.now()
        started_at = started_at or attempt_started_at
        # This attempt's number: the attempts recorded so far, plus the executions that died
        # without recording theirs (a RUNNING row is one that died after recording itself).
        attempt = recorded + died + (0 if row is not None and row.status == StepStatus.RUNNING
                                     else 1)
        if died:
            if attempt > x.function.retries + 1:
                self._fail(key, step_id, StepCrashedError(
                    f"step {step_id!r}: its execution died {attempt - 1} time(s) before it could "
                    "record a result (a crash, SIGKILL, OOM, sys.exit in the worker, or a lost "
                    "database); not retried again"), attempt - 1, started_at)
            # Record this attempt before it runs, so dying again is counted too.
            x.checkpoint(ops.StepStarted(key=key, name=step_id, attempts=attempt,
                                         started_at=started_at,
                                         died=tuple(range(attempt - died, attempt))))
        transaction = x.store.atomic() if transactional else contextlib.nullcontext()
        output = None
        self._in_step = step_id
        try:
            # A parallel branch of a concurrency-limited function holds a slot while its step
            # executes (taken before the transaction opens: waiting holds no database lock).
            with x.branch_slot(), transaction:
                with logsafe.log_context(step_key=key), \
                        tracing.get_tracer().step(x, key, attempt):
                    if chain:
                        args, kwargs = mw.before_step(chain, x.context, step_id, args, kwargs)
                        try:
                            result = yield (fn, args, kwargs)
                        except ENGINE_INTERRUPTS:
                            raise
                        except BaseException as exc:  # noqa: BLE001 - seen, then handled below
                            mw.after_step(chain, x.context, step_id, None, exc)
                            raise
                    else:
                        result = yield (fn, args, kwargs)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()  # never awaited: no "was never awaited" warning
                    raise StepUsageError(
                        f"function {x.function.id!r}, step {step_id!r}: the step function "
                        "returned an awaitable (a coroutine?) instead of a value; await it "
                        "in an 'async def' handler, or return a value")
                if chain:
                    result = mw.after_step(chain, x.context, step_id, result, None)
                output = x.account_output(step_id, encode_output(
                    result, what=f"step {step_id!r}", limit=x.output_limit))
                if transactional:
                    self._in_step = None
                    x.checkpoint(ops.StepRun(key=key, name=step_id, output=output,
                                             attempts=attempt, started_at=started_at))
        except ENGINE_INTERRUPTS:
            raise  # the engine's or the worker's control flow, not a failure of the step
        except StepUsageError:
            raise
        except (OutputTooLargeError, NotSerializableError) as exc:
            self._in_step = None
            if output is None:
                self._fail(key, step_id, exc, attempt, started_at,
                           attempt_started_at=attempt_started_at)
            self._fail_or_retry(key, step_id, exc, attempt, started_at, attempt_started_at)
        except BaseException as exc:  # noqa: BLE001 - user code: every error (sys.exit too) fails the attempt
            self._in_step = None
            self._fail_or_retry(key, step_id, exc, attempt, started_at, attempt_started_at)
        finally:
            self._in_step = None
        if not transactional:
            x.checkpoint(ops.StepRun(key=key, name=step_id, output=output, attempts=attempt,
                                     started_at=started_at), defer=True)
        return self._value(step_id, output)

    def _value(self, step_id: str, output: str | None) -> Any:
        """A stored result as the handler receives it, the same on the first execution as on
        replay: decoded (richer values re-created), then ``transform_stored`` middleware."""
        value = decode_value(output)
        chain = self._x.function.middleware
        return mw.transform_stored(chain, self._x.context, step_id, value) if chain else value

    def _fail(self, key: str, step_id: str, exc: BaseException, attempts: int,
              started_at: int | None, kind: StepKind = StepKind.RUN, *,
              attempt_started_at: int | None = None) -> NoReturn:
        err = error_dict(exc, stack=True)
        self._x.checkpoint(ops.StepFailed(key=key, name=step_id, error=err, attempts=attempts,
                                          started_at=started_at, kind=kind,
                                          attempt_started_at=attempt_started_at))
        raise StepError(step_id, err["message"], error_name=err["name"], attempts=attempts) from exc

    def _fail_or_retry(self, key: str, step_id: str, exc: BaseException, attempts: int,
                       started_at: int | None, attempt_started_at: int | None) -> NoReturn:
        x = self._x
        if isinstance(exc, NonRetriableError) or attempts > x.function.retries:
            self._fail(key, step_id, exc, attempts, started_at,
                       attempt_started_at=attempt_started_at)
        now = x.now()
        delay = retry_delay_ms(exc, attempts, base_ms=x.settings.retry_base_ms,
                               max_ms=x.settings.retry_max_ms, now=now)
        x.logger.warning("run %s step %r attempt %d failed (%s: %s); retrying in %d ms",
                         x.run_id, step_id, attempts, type(exc).__name__, exc, delay)
        raise Suspend([ops.RetryStep(key=key, name=step_id, wake_at=now + delay,
                                     attempts=attempts, error=error_dict(exc, stack=True),
                                     started_at=started_at,
                                     attempt_started_at=attempt_started_at)]) from exc

    # -- sleeps -------------------------------------------------------------------------
    def sleep(self, step_id: str, duration: Any) -> None:
        """Pause the run for ``duration`` ("45s", "1h", a timedelta); frees the worker."""
        try:
            ms = to_ms(duration)
        except ValueError as exc:
            raise StepUsageError(f"step.sleep({step_id!r}): {exc}") from None
        self._sleep(step_id, lambda now: now + ms, f"step.sleep({step_id!r})")

    def sleep_until(self, step_id: str, when: Any) -> None:
        """Pause the run until ``when`` (an aware datetime, epoch ms, or ISO 8601 text)."""
        try:
            target = to_epoch_ms(when)
        except ValueError as exc:
            raise StepUsageError(f"step.sleep_until({step_id!r}): {exc}") from None
        self._sleep(step_id, lambda now: target, f"step.sleep_until({step_id!r})")

    def _sleep(self, step_id: str, wake_at_from: Callable[[int], int], call: str) -> None:
        key = self._key(step_id)
        row = self._stored(key, StepKind.SLEEP)
        if row is not None and row.status == StepStatus.COMPLETED:
            return
        x = self._x
        now = x.now()
        if row is not None:
            wake_at, started_at = cast(int, row.wake_at), row.started_at
        else:
            wake_at, started_at = wake_at_from(now), now
            _within_a_year(call, wake_at - now)
            x.executing_new_step()
        if wake_at <= now:
            x.checkpoint(ops.SleepDone(key=key, name=step_id, started_at=started_at,
                                       wake_at=wake_at), defer=True)
            return
        raise Suspend([ops.Sleep(key=key, name=step_id, wake_at=wake_at, started_at=started_at)])

    # -- waiting on other things ---------------------------------------------------------
    def wait_for_event(self, step_id: str, *, event: str, timeout: Any,
                       if_exp: str | None = None,
                       match: str | None = None) -> dict[str, Any] | None:
        """Wait (holding no worker) for an event named ``event`` matching the CEL condition
        ``if_exp`` (over ``event``, this run's trigger, and ``async``, the incoming event),
        or ``match="data.paymentId"`` (the same field equal in both). Returns the event as a
        dict, or ``None`` when ``timeout`` (at most a year) passes first.

        Events received before the step is reached count too: any received at or after the
        run's previous step (or its trigger, for a first step), except the trigger and
        events earlier waits of this run returned (``docs/semantics.md``)."""
        call = f"step.wait_for_event({step_id!r})"
        if_exp = match_expression(call, match, if_exp)
        key = self._key(step_id)
        row = self._stored(key, StepKind.WAIT)
        x = self._x
        tracer = tracing.get_tracer()
        if row is not None and row.status == StepStatus.COMPLETED:
            if tracer.enabled and x.resumed_on(row):
                tracer.pending(x, "wait", key, cast(int, row.started_at),
                               row.ended_at or x.now(), "matched")
            return cast("dict[str, Any] | None", decode(row.output))
        now = x.now()
        if row is not None:
            if cast(int, row.wake_at) <= now:  # the timeout fired first
                tracer.pending(x, "wait", key, cast(int, row.started_at), now, "timed_out")
                x.clear_wait(key)
                x.checkpoint(ops.WaitTimedOut(key=key, name=step_id, started_at=row.started_at,
                                              wake_at=cast(int, row.wake_at)), defer=True)
                return None
            expires, started_at = cast(int, row.wake_at), row.started_at
        else:
            if not isinstance(event, str) or not event:
                raise StepUsageError(f"{call}: event must be an event name")
            if if_exp is not None:
                compile_expression(if_exp)
            expires = now + self._timeout_ms(call, timeout)
            x.executing_new_step()
            started_at = now
        wait = ops.WaitForEvent(key=key, name=step_id, wake_at=expires, started_at=started_at,
                                event=event, if_exp=if_exp)
        if row is None:  # an event received before this step was reached satisfies it?
            found = x.received_event(wait)
            if found is not None:
                tracer.pending(x, "wait", key, now, now, "matched")
                x.account_output(step_id, found, check=False)  # an event: counted, not refused
                x.checkpoint(ops.WaitMatched(key=key, name=step_id, output=found,
                                             started_at=started_at), defer=True)
                return cast("dict[str, Any] | None", decode(found))
        raise Suspend([wait])

    def invoke(self, step_id: str, *, function: str | FunctionDef[..., Any],
               data: dict[str, Any] | None = None, timeout: Any = "365d") -> Any:
        """Run another function as a child run and return its output (its failure raises
        :class:`StepError` here). This run holds no worker while the child runs."""
        key = self._key(step_id)
        row = self._stored(key, StepKind.INVOKE)
        x = self._x
        if row is not None and row.status == StepStatus.COMPLETED:
            return decode_value(row.output)
        if row is not None and row.status == StepStatus.FAILED:
            raise _step_error(step_id, row)
        now = x.now()
        if row is not None:
            if cast(int, row.wake_at) <= now:
                self._fail(key, step_id, TimeoutError("the invoked function did not finish "
                                                      "before the timeout"), 1, row.started_at,
                           kind=StepKind.INVOKE)
            raise Suspend([ops.Invoke(key=key, name=step_id, wake_at=cast(int, row.wake_at),
                                      started_at=row.started_at, start=False)])
        target = x.executor.registry.get(function) if isinstance(function, str) else function
        if data is not None and not isinstance(data, dict):
            raise StepUsageError(f"step.invoke({step_id!r}): data must be a dict")
        expires = now + self._timeout_ms(f"step.invoke({step_id!r})", timeout)
        x.executing_new_step()
        raise Suspend([ops.Invoke(key=key, name=step_id, wake_at=expires, started_at=now,
                                  function_id=target.id, app_id=target.app_id,
                                  data=data or {})])

    @staticmethod
    def _timeout_ms(call: str, timeout: Any) -> int:
        try:
            ms = to_ms(timeout)
        except ValueError as exc:
            raise StepUsageError(f"{call}: timeout {exc}") from None
        _within_a_year(call, ms)
        return ms

    # -- parallel branches --------------------------------------------------------------
    def parallel(self, branches: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run ``branches`` (callables, each usually one ``step.run``) at the same time and
        return their results in order, like ``Promise.all`` over steps in Inngest.

        Each branch runs in a thread of its own (with its own database connection); its
        steps are checkpointed and retried on their own. When a branch reaches something
        it must wait for (a sleep, a retry backoff, a wait, an invoke), the others still run
        to their end or their own wait; then the run suspends on every pending operation
        at once, keeping the branches that completed. On resume the completed branches
        replay their stored results. A branch that fails for good raises its
        :class:`StepError` here once every branch has stopped. Step ids must be distinct
        across the branches of one call (their keys would otherwise depend on timing)."""
        branches = list(branches)
        if not all(callable(b) for b in branches):
            raise StepUsageError("step.parallel takes a list of callables, e.g. "
                                 "[lambda: step.run('a', fa), lambda: step.run('b', fb)]")
        if not branches:
            return []
        self._parallel_section_start()
        x = self._x
        results: list[Any] = [None] * len(branches)
        pending: list[Any] = []
        failures: list[BaseException] = []

        def branch(i: int) -> None:
            try:
                results[i] = branches[i]()
            except Suspend as s:
                pending.extend(s.ops)
            except BaseException as exc:  # noqa: BLE001 - handed back to the handler's thread
                failures.append(exc)
            finally:
                x.store.close_thread_connection()

        with x.parallel_section(), ThreadPoolExecutor(
                max_workers=min(len(branches), x.settings.parallel_max),
                thread_name_prefix=f"tengo-parallel-{x.run_id}") as pool:
            list(pool.map(branch, range(len(branches))))
        return settle_branches(results, pending, failures)

    def _parallel_section_start(self) -> None:
        """What every ``parallel`` checks and does before its branches start."""
        if self._in_step is not None:
            raise StepUsageError(f"step.parallel was called inside step {self._in_step!r}; "
                                 "steps cannot be nested")
        self._x.flush()

    # -- events -------------------------------------------------------------------------
    def send_event(self, step_id: str, events: Any) -> list[str]:
        """Send events from inside a run, exactly once: ids are derived from the run and step."""
        x = self._x

        def send(key: str) -> list[str]:
            batch = [events] if not isinstance(events, (list, tuple)) else list(events)
            chain = x.function.middleware
            if chain:
                batch = mw.before_send(chain, batch)
            stamped = []
            for i, ev in enumerate(batch):
                ev = ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)
                ev.setdefault("id", f"{x.run_id}:{key}:{i}")
                stamped.append(ev)
            ids = x.send_events(stamped)
            if chain:
                mw.after_send(chain, stamped, ids)
            return ids

        key_preview = self._preview_key(step_id)
        return self.run(step_id, send, key_preview)

    def _preview_key(self, step_id: str) -> str:
        n = self._counts.get(step_id, 0)
        return step_id if n == 0 else f"{step_id}:{n}"


def _stub(value: Any) -> Callable[[], Any]:
    """The function a stubbed step runs instead of its own: returns ``value``, or raises it
    when it is an exception (to test a step's failure)."""
    def stub() -> Any:
        if isinstance(value, BaseException):
            raise value
        return value
    return stub


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


StepTools = Step  # the name before step operations became values

__all__ = ["Step", "StepTools"]
