"""``tengo-jobs check-replay``: will the code now deployed resume the unfinished runs?

A run resumes by replaying its stored steps from the top (the handler is called again and
each step call with a stored result returns it). A deploy that renames a step, or inserts
one before steps already stored, breaks that replay for the runs parked in between: their
next execution meets a step the history does not hold where it holds another. This
module replays each unfinished run's history against the registered handlers *without
executing anything*: the handler gets a :class:`ReplayStep` whose calls return the stored
results, and the first call without one stops the replay there.

Per run, the verdict is one of:

- **compatible, continues at step K**: every stored step was reached, each with the kind
  it was recorded as, and K is the first step the next execution will run (or wait on);
- **compatible, completes on resume** (every step stored; the handler returns), or
  **compatible, ends on resume** (the handler raises outside any step: a stored failure it
  does not catch, or an error the engine retries as a function error);
- **incompatible**: a stored step is called as another kind, or the code reaches a new step
  while stored steps remain unreached (renamed, inserted before them, removed) — the
  message names the recorded step (kind, name) and what the code calls instead; or the
  function is no longer registered.

Only the handler's code between steps runs (as on every real replay); step functions,
sleeps, waits, invokes and sent events are never executed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, cast

from ..core.events import Event
from ..core.registry import Registry
from ..serde import decode
from ..store import StepKind, StepRow, StepStatus
from .invocation import Context
from .steps import Step, _step_error

if TYPE_CHECKING:
    from ..store import RunRow, Store

_silent = logging.getLogger("tengo_jobs.replaycheck.silent")
_silent.disabled = True


class _Reached(BaseException):
    """The replay reached a step without a stored result (or one still pending)."""

    def __init__(self, key: str, kind: StepKind):
        super().__init__(key)
        self.key, self.kind = key, kind


class _Mismatch(BaseException):
    """A stored step is called as another kind than it was recorded as."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class ReplayVerdict:
    """What replaying one run's history against the deployed code found."""

    run_id: str
    function_id: str
    status: str  # the run's status
    compatible: bool
    message: str
    continues_at: str | None = None

    def line(self) -> str:
        return f"{self.run_id}  {self.function_id}  ({self.status}): {self.message}"


class _History:
    """A run's stored steps, as the replay visits them."""

    def __init__(self, steps: list[StepRow]):
        self.by_key = {s.key: s for s in steps}
        self.visited: set[str] = set()

    def get(self, key: str, kind: StepKind, step_id: str) -> StepRow | None:
        row = self.by_key.get(key)
        if row is None:
            return None
        if row.kind != kind:
            raise _Mismatch(f"incompatible: step {key!r} was recorded as kind {row.kind.value} / "
                            f"name {row.name!r}, the code now calls it as a {kind.value} step "
                            f"({step_id!r})")
        self.visited.add(key)
        return row

    def unreached(self) -> list[StepRow]:
        return sorted((s for k, s in self.by_key.items() if k not in self.visited),
                      key=lambda s: s.position)


class ReplayStep(Step):
    """A ``step`` that returns stored results and never executes anything: a step without a
    stored result (or one still pending: sleeping, waiting, retrying) stops the replay."""

    def __init__(self, history: _History):
        super().__init__(invocation=cast(Any, None))
        self._history = history

    def _replayed(self, step_id: str, kind: StepKind) -> StepRow:
        key = self._key(step_id)
        row = self._history.get(key, kind, step_id)
        if row is None or row.status not in (StepStatus.COMPLETED, StepStatus.FAILED):
            raise _Reached(key, kind)
        if row.status == StepStatus.FAILED:
            raise _step_error(step_id, row)
        return row

    def run(self, step_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return decode(self._replayed(step_id, StepKind.RUN).output)

    transaction = run

    def sleep(self, step_id: str, duration: Any) -> None:
        self._replayed(step_id, StepKind.SLEEP)

    def sleep_until(self, step_id: str, when: Any) -> None:
        self._replayed(step_id, StepKind.SLEEP)

    def wait_for_event(self, step_id: str, *, event: str, timeout: Any,
                       if_exp: str | None = None, match: str | None = None) -> Any:
        return decode(self._replayed(step_id, StepKind.WAIT).output)

    def invoke(self, step_id: str, *, function: Any, data: dict[str, Any] | None = None,
               timeout: Any = "365d") -> Any:
        return decode(self._replayed(step_id, StepKind.INVOKE).output)

    def parallel(self, branches: Sequence[Callable[[], Any]]) -> list[Any]:
        """Each branch in turn; the first that reaches a new step stops the replay once
        the others have replayed theirs (as the engine runs them all)."""
        results, reached = [], None
        for branch in branches:
            try:
                results.append(branch())
            except _Reached as stop:
                reached = reached or stop
                results.append(None)
        if reached is not None:
            raise reached
        return results


class ReplayChecker:
    """Replays unfinished runs' histories against the functions in ``registry``."""

    def __init__(self, *, store: "Store", registry: Registry):
        self.store = store
        self.registry = registry

    def check_all(self, function_id: str | None = None) -> Iterator[ReplayVerdict]:
        """A verdict per unfinished run with stored steps (of ``function_id``), oldest first."""
        for run, event, steps in self.store.queries.unfinished_histories(function_id):
            yield self.check(run, event, steps)

    def check(self, run: "RunRow", event: Event, steps: list[StepRow]) -> ReplayVerdict:
        verdict = functools.partial(ReplayVerdict, run.id, run.function_id, run.status.value)
        function = self.registry.find(run.function_id)
        if function is None:
            return verdict(False, f"incompatible: function {run.function_id!r} is not "
                                  "registered in the code now deployed")
        if function.runtime != "python":
            return verdict(True, f"not checked: runtime {function.runtime!r} is served "
                                 "outside this process")
        history = _History(steps)
        ctx = Context(event=event, events=[event], run_id=run.id, attempt=run.attempt,
                      function_id=function.id, logger=logging.LoggerAdapter(_silent, {}))
        try:
            function.handler(ctx, ReplayStep(history))
        except _Mismatch as bad:
            return verdict(False, bad.message)
        except _Reached as stop:
            unreached = history.unreached()
            if unreached:
                return verdict(False, _skipped(unreached[0], f"calls step {stop.key!r} "
                                                             f"(kind {stop.kind.value})"))
            return verdict(True, f"compatible, continues at step {stop.key!r}", stop.key)
        except Exception as exc:  # noqa: BLE001 - the handler's own ending (a StepError too)
            unreached = history.unreached()
            if unreached:
                return verdict(False, _skipped(unreached[0], f"raises {type(exc).__name__}"))
            return verdict(True, f"compatible, ends on resume (the code raises "
                                 f"{type(exc).__name__}: {exc})")
        unreached = history.unreached()
        if unreached:
            return verdict(False, _skipped(unreached[0], "returns"))
        return verdict(True, "compatible, completes on resume")


def _skipped(row: StepRow, what: str) -> str:
    return (f"incompatible: step {row.key!r} was recorded as kind {row.kind.value} / name "
            f"{row.name!r} (position {row.position}), but the code now {what} before "
            "reaching it")


__all__ = ["ReplayChecker", "ReplayStep", "ReplayVerdict"]
