"""One executor's hold on one run: the context, the memo of stored steps, and fenced writes.

Every write made on behalf of a run (a checkpoint, a suspension, the final
status) first renews the run's lease with a conditional UPDATE in the same
transaction; if this executor no longer holds the lease the write is refused
(:class:`LeaseLost`), so a worker that lost its lease cannot overwrite the
work of the one that took over.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any


from . import fastpath
from .errors import LeaseLost, Suspend
from .events import FUNCTION_FAILED_EVENT, FUNCTION_INVOKED_EVENT, Event
from .functions import FunctionDef
from .models import Run, RunStatus, Step, StepKind, StepStatus, Timer, TimerKind, Wait
from .serde import error_dict

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("tengo_jobs.run")


class ReplayAwareLogger(logging.LoggerAdapter):
    """``ctx.logger``: silent while stored steps are being replayed, so each line is logged once."""

    def __init__(self, logger: logging.Logger, execution: "Execution"):
        super().__init__(logger, {"run_id": execution.run_id, "function_id": execution.function.id})
        self._x = execution

    def isEnabledFor(self, level):
        return not self._x.replaying and self.logger.isEnabledFor(level)

    def log(self, level, msg, *args, **kwargs):
        if not self._x.replaying:
            super().log(level, msg, *args, **kwargs)


@dataclasses.dataclass
class Context:
    """What a handler receives as ``ctx``."""

    event: Event
    events: list[Event]
    run_id: str
    attempt: int
    function_id: str
    logger: logging.LoggerAdapter


class Execution:
    def __init__(self, runtime: "Runtime", run: Run, function: FunctionDef, token: str,
                 steps: list[Step]):
        self.runtime = runtime
        self.settings = runtime.settings
        self.run = run
        self.run_id = run.id
        self.function = function
        self.token = token
        self._memo = {s.key: s for s in steps}
        self._unvisited = len(self._memo)
        self._next_position = max((s.position for s in steps), default=-1) + 1
        self.output_limit = runtime.settings.output_limit
        self.logger = ReplayAwareLogger(log, self)

    # -- replay bookkeeping ----------------------------------------------------------------
    @property
    def replaying(self) -> bool:
        return self._unvisited > 0

    def memo_get(self, key: str) -> Step | None:
        row = self._memo.get(key)
        if row is not None and not getattr(row, "_visited", False):
            row._visited = True
            self._unvisited -= 1
        return row

    def executing_new_step(self) -> None:
        """New work is about to run: whatever was not replayed by now will not be."""
        self._unvisited = 0

    def now(self) -> int:
        return self.runtime.clock.now()

    # -- fenced writes ---------------------------------------------------------------------
    def _fence(self, now: int, **changes) -> None:
        changes.setdefault("lease_expires_at", now + self.settings.lease_ttl_ms)
        n = (Run.update(**changes)
             .where((Run.id == self.run_id) & (Run.lease_owner == self.token)
                    & (Run.lease_expires_at > now))
             .execute())
        if n != 1:
            raise LeaseLost(f"run {self.run_id}: lease lost by {self.token}")

    def checkpoint(self, *, key: str, name: str, kind: StepKind, status: StepStatus,
                   attempts: int, started_at: int, output: str | None = None,
                   error: str | None = None, wake_at: int | None = None) -> None:
        """Commit one step result (and renew the lease) before the next step starts."""
        now = self.now()
        existing = self._memo.get(key)
        position = existing.position if existing is not None else self._take_position()
        values = dict(run_id=self.run_id, key=key, name=name, kind=kind, position=position,
                      status=status, attempts=attempts, output=output, error=error,
                      started_at=started_at, ended_at=now, wake_at=wake_at)
        db = self.runtime.db
        fastpath.checkpoint(db, self.run_id, self.token, now, self.settings.lease_ttl_ms, values)
        self._memo[key] = Step(**values)
        self._memo[key]._visited = True

    def _take_position(self) -> int:
        position = self._next_position
        self._next_position += 1
        return position

    @staticmethod
    def _upsert_step(values: dict, exists: bool) -> None:
        if exists:
            (Step.update(**{k: v for k, v in values.items() if k not in ("run_id", "key")})
             .where((Step.run_id == values["run_id"]) & (Step.key == values["key"])).execute())
        else:
            Step.insert(**values).execute()

    _SUSPEND_AS = {  # Suspend.kind -> (step kind, step status, run status, timer kind)
        "sleep": (StepKind.SLEEP, StepStatus.SLEEPING, RunStatus.SLEEPING, TimerKind.SLEEP),
        "retry": (StepKind.RUN, StepStatus.RETRYING, RunStatus.SLEEPING, TimerKind.RETRY),
        "wait": (StepKind.WAIT, StepStatus.WAITING, RunStatus.WAITING, TimerKind.TIMEOUT),
        "invoke": (StepKind.INVOKE, StepStatus.WAITING, RunStatus.WAITING, TimerKind.TIMEOUT),
    }

    def suspend(self, s: Suspend) -> None:
        """Persist a sleep, retry backoff or wait: step row, timer, run status; let go of the run."""
        now = self.now()
        step_kind, step_status, run_status, timer_kind = self._SUSPEND_AS[s.kind]
        existing = self._memo.get(s.step_key)
        position = existing.position if existing is not None else self._take_position()
        step_values = dict(
            run_id=self.run_id, key=s.step_key, name=s.step_name, kind=step_kind,
            position=position, status=step_status, attempts=s.attempts,
            error=json.dumps(s.error) if s.error else None,
            started_at=existing.started_at if existing is not None and existing.started_at else now,
            ended_at=None, wake_at=s.wake_at, output=None)
        child_run_id = None
        with self.runtime.db.atomic():
            self._fence(now, status=run_status, wake_at=s.wake_at, lease_owner=None,
                        lease_expires_at=None, enqueued_at=None, attempt=s.attempts)
            self._upsert_step(step_values, existing is not None)
            (Timer.insert(run_id=self.run_id, due_at=s.wake_at, kind=timer_kind)
             .on_conflict(conflict_target=[Timer.run_id],
                          update={Timer.due_at: s.wake_at, Timer.kind: timer_kind.value})
             .execute())
            if s.kind == "wait":
                self._register_wait(s, now)
            elif s.kind == "invoke" and existing is None:
                child_run_id = self._start_child(s, now)
        if child_run_id:
            self.runtime.enqueue([child_run_id])

    def _register_wait(self, s: Suspend, now: int) -> None:
        values = dict(run_id=self.run_id, step_key=s.step_key, event_name=s.payload["event"],
                      expression=s.payload.get("if_exp"),
                      match_event=json.dumps(self.original_event_dict()),
                      expires_at=s.wake_at, created_at=now)
        (Wait.insert(**values)
         .on_conflict(conflict_target=[Wait.run_id, Wait.step_key],
                      update={Wait.expires_at: s.wake_at})
         .execute())

    def _start_child(self, s: Suspend, now: int) -> str | None:
        from .intake import start_run
        from .waits import invoke_unique_key

        event = Event(name=FUNCTION_INVOKED_EVENT, data=s.payload.get("data") or {})
        return start_run(self.runtime, s.payload["function"], event, now=now,
                         unique_key=invoke_unique_key(self.run_id, s.step_key),
                         parent_run_id=self.run_id, enqueue=False)

    def _finish(self, now: int, **changes) -> str | None:
        """The run's final write; also hands an invoked child's result to its parent."""
        from .waits import resolve_invoke_parent

        parent = None
        with self.runtime.db.atomic():
            self._fence(now, ended_at=now, lease_owner=None, lease_expires_at=None, **changes)
            if self.run.parent_run_id and changes["status"] != RunStatus.CANCELLED:
                parent = resolve_invoke_parent(self.run, output=changes.get("output"),
                                               error=changes.get("error"), now=now)
            started = self._after_final(now, changes)
        if parent:
            self.runtime.enqueue([parent])
        return started

    def complete(self, output: str) -> None:
        now = self.now()
        if not self.run.parent_run_id:
            if not fastpath.complete(self.runtime.db, self.run_id, self.token, now, output):
                raise LeaseLost(f"run {self.run_id}: lease lost by {self.token}")
            return
        self._finish(now, status=RunStatus.COMPLETED, output=output, error=None)

    def fail(self, exc: BaseException) -> str | None:
        """Fail the run; start its failure handler (as its own run) in the same transaction."""
        failure_run_id = self._finish(self.now(), status=RunStatus.FAILED,
                                      error=json.dumps(error_dict(exc)))
        if failure_run_id:
            self.runtime.enqueue([failure_run_id])
        return failure_run_id

    def _after_final(self, now: int, changes: dict) -> str | None:
        """Inside the final transaction: start the failure handler of a failed run."""
        handler = self.function.on_failure
        if changes["status"] != RunStatus.FAILED or handler is None or self.function.is_failure_handler:
            return None
        from .intake import start_run

        event = Event(name=FUNCTION_FAILED_EVENT, data={
            "function_id": self.function.id,
            "run_id": self.run_id,
            "error": json.loads(changes["error"]),
            "event": self.original_event_dict(),
        })
        return start_run(self.runtime, handler, event, now=now,
                         unique_key=f"failure:{self.run_id}", parent_run_id=self.run_id,
                         enqueue=False)

    def release(self) -> None:
        """Give the run back (e.g. the worker is shutting down) so another worker takes it."""
        try:
            (Run.update(lease_owner=None, lease_expires_at=None, status=RunStatus.QUEUED,
                        enqueued_at=None)
             .where((Run.id == self.run_id) & (Run.lease_owner == self.token)).execute())
        except Exception:  # noqa: BLE001 - best effort; the lease expires anyway
            log.exception("run %s: could not release its lease", self.run_id)

    # -- events -----------------------------------------------------------------------------
    def send_events(self, events: list[dict]) -> list[str]:
        from .intake import send_events

        return send_events(self.runtime, events)

    _event: Event | None = None

    def original_event_dict(self) -> dict[str, Any]:
        return self._event.to_dict() if self._event is not None else {}
