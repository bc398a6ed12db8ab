"""Acting on runs from outside an execution: cancel, replay (one run, or in bulk), invoking,
pausing and resuming a function, and the functions overview.

The REST API, the dashboard and the CLI call these; the state changes themselves are
the store's (:meth:`~tengo_jobs.store.RunStore.cancel`; a replay is a run started through
:meth:`~tengo_jobs.store.RunStore.start`, like every other),
and the runs they wake are enqueued after commit.

Bulk cancel and bulk replay walk the matching runs by keyset, :data:`BULK_PAGE` at a time
(:meth:`~tengo_jobs.store.Queries.bulk_page`): each run is cancelled in its own short
transaction, each page of replays is started in one, so 100,000 runs never hold one
transaction open. A replay names its original (``replay_of``) and says how it differs
(``replay_note``, JSON: ``from_step``, ``changed`` — ``input`` or ``output`` — with the
value supplied, ``bulk``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, cast

from ..core.cron import parse_cron
from ..core.events import FUNCTION_INVOKED_EVENT, validate_event
from ..core.expressions import compile_expression, matches
from ..core.registry import Registry
from ..core.ops import StepRecord
from ..core.states import FINAL_RUN_STATUSES, RUN_STATUSES
from ..durations import ms_to_iso
from ..errors import (ExpressionError, FunctionNotFoundError, InvalidRunStateError,
                      RunNotFoundError, ValidationError)
from ..store import RunStart, RunStatus, StepKind, StepStatus

if TYPE_CHECKING:
    from ..clock import Clock
    from ..core.functions import FunctionDef
    from ..store import Store

BULK_PAGE = 500  # runs read, and cancelled or replayed, per round
MAX_IDS_LISTED = 100  # new run ids a bulk replay answers with
UNFINISHED = tuple(s for s in RUN_STATUSES if s not in FINAL_RUN_STATUSES)
ABSENT: Any = object()  # "not given" for input/output, where null is a value


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _check_range(started_after: int | None, started_before: int | None) -> None:
    for name, value in (("started_after", started_after), ("started_before", started_before)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValidationError(f"{name} must be epoch milliseconds", field=name)
    if started_after is not None and started_before is not None \
            and started_after >= started_before:
        raise ValidationError("started_before must be later than started_after",
                              field="started_before")


class Control:
    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 enqueue: Callable[[Iterable[str]], object]):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.enqueue = enqueue

    def cancel(self, run_id: str, *, now: int | None = None) -> dict[str, Any]:
        """Cancel a run: final status ``cancelled``, its timer and wait deleted, its lease
        revoked — a worker executing it right now is stopped at its next checkpoint, which
        the fence refuses. An invoked child's parent resumes, its invoke step failed.
        Cancelling a cancelled run is a no-op; a completed or failed run cannot be cancelled."""
        run, woken = self.store.runs.cancel(run_id, self.clock.now() if now is None else now)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        if run.status.is_final and run.status != RunStatus.CANCELLED:
            raise InvalidRunStateError(
                f"run {run_id} is already {run.status.value}; only unfinished runs can be cancelled")
        if woken:
            self.enqueue([woken])
        return self.store.queries.get_run(run_id)

    def replay(self, run_id: str, *, from_step: str | None = None, input: Any = ABSENT,
               output: Any = ABSENT, now: int | None = None) -> dict[str, Any]:
        """Start a new run of the same function on the same event; returns the new run,
        which names ``run_id`` as the run it replays (``replay_of``).

        With ``from_step``, the steps stored before that step (by position) are copied into
        the new run, so they replay their stored outputs and execution resumes at
        ``from_step``. Without it the new run starts from the top. ``input`` (a JSON list of
        positional arguments, or an object of keyword arguments) replaces the arguments the
        ``step.run`` function of ``from_step`` is called with; ``output`` is stored as that
        step's result instead, so the step does not run at all."""
        if from_step is not None and (not isinstance(from_step, str) or not from_step):
            raise ValidationError("from_step must be a step key (a non-empty string)",
                                  field="from_step")
        changed = None
        if input is not ABSENT or output is not ABSENT:
            changed = "input" if input is not ABSENT else "output"
            if from_step is None:
                raise ValidationError(f"{changed} needs from_step: the step it is given to",
                                      field="from_step")
            if input is not ABSENT and output is not ABSENT:
                raise ValidationError("give input (new arguments for the step) or output (its "
                                      "result, the step not run), not both", field="output")
            if changed == "input" and not isinstance(input, (list, dict)):
                raise ValidationError("input must be a JSON array of positional arguments or "
                                      "an object of keyword arguments", field="input")
        now = self.clock.now() if now is None else now
        note: dict[str, Any] = {"from_step": from_step, "changed": changed}
        if changed is not None:
            note[changed] = input if changed == "input" else output
        with self.store.atomic():
            run = self.store.queries.run(run_id)
            copies: tuple[StepRecord, ...] = ()
            if from_step is not None:
                copies = self._copies(run_id, from_step, changed, output, now)
            [new_run_id] = self.store.runs.start([RunStart(
                function_id=run.function_id, app_id=run.app_id, event_id=run.event_id,
                steps=copies, replay_of=run_id, replay_note=_compact(note))], now)
        new_run_id = cast(str, new_run_id)  # a replay has no unique key: always started
        self.enqueue([new_run_id])
        return self.store.queries.get_run(new_run_id)

    def _copies(self, run_id: str, from_step: str, changed: str | None, output: Any,
                now: int) -> tuple[StepRecord, ...]:
        """The step rows a replay from ``from_step`` starts with: those before it, and with
        a supplied ``output``, ``from_step`` itself completed with that result."""
        steps = self.store.queries.steps(run_id)
        target = next((s for s in steps if s.key == from_step), None)
        if target is None:
            keys = [s.key for s in steps[:20]]
            raise ValidationError(
                f"run {run_id} has no step {from_step!r} (its steps: "
                f"{', '.join(keys) or 'none'})", field="from_step")
        if changed == "input" and target.kind != StepKind.RUN:
            raise ValidationError(
                f"step {from_step!r} is a {target.kind.value} step; input replaces the "
                "arguments of a step.run function (give output to supply its result)",
                field="input")
        copies = [StepRecord(key=s.key, name=s.name, kind=s.kind, position=s.position,
                             status=s.status, attempts=s.attempts, started_at=s.started_at,
                             ended_at=s.ended_at, output=s.output, error=s.error,
                             wake_at=s.wake_at)
                  for s in steps if s.position < target.position]
        if changed == "output":
            copies.append(StepRecord(key=target.key, name=target.name, kind=target.kind,
                                     position=target.position, status=StepStatus.COMPLETED,
                                     attempts=0, started_at=now, ended_at=now,
                                     output=_compact(output)))
        return tuple(copies)

    # -- in bulk ------------------------------------------------------------------------------
    def _check_function(self, function_id: Any) -> str:
        if not isinstance(function_id, str) or not function_id:
            raise ValidationError("function_id is required: the function whose runs to act on",
                                  field="function_id")
        if self.registry.find(function_id) is None and not self.store.queries.bulk_page(
                function_id=function_id, statuses=RUN_STATUSES, limit=1):
            raise ValidationError(f"no function {function_id!r} (none registered, no runs)",
                                  field="function_id")
        return function_id

    def _walk(self, function_id: str, statuses: tuple[str, ...], since: int | None,
              until: int | None, progress: Callable[[int], object] | None
              ) -> Iterator[list[Any]]:
        """Every page of matching runs, by keyset; ``progress`` hears how many runs each
        page held."""
        after = None
        while True:
            page = self.store.queries.bulk_page(function_id=function_id, statuses=statuses,
                                                since=since, until=until, after=after,
                                                limit=BULK_PAGE)
            if not page:
                return
            after = page[-1][0].id
            yield page
            if progress is not None:
                progress(len(page))

    def bulk_cancel(self, *, function_id: str, started_after: int | None = None,
                    started_before: int | None = None, if_exp: str | None = None,
                    all_runs: bool = False, now: int | None = None,
                    progress: Callable[[int], object] | None = None) -> dict[str, Any]:
        """Cancel every unfinished run of ``function_id`` created in ``[started_after,
        started_before)`` whose triggering event satisfies ``if_exp`` (CEL over ``event``);
        with no condition at all, only when ``all_runs``. Returns ``{"cancelled": n}``."""
        function_id = self._check_function(function_id)
        _check_range(started_after, started_before)
        if if_exp is not None:
            if not isinstance(if_exp, str) or not if_exp.strip():
                raise ValidationError("if must be a CEL expression over event", field="if")
            try:
                compile_expression(if_exp)
            except ExpressionError as exc:
                raise ValidationError(f"if: {exc}", field="if") from None
        if not all_runs and started_after is None and started_before is None and if_exp is None:
            raise ValidationError("give started_after, started_before or if to choose the runs "
                                  "to cancel, or all: true to cancel every unfinished run of "
                                  f"{function_id!r}", field="all")
        cancelled = 0
        for page in self._walk(function_id, UNFINISHED, started_after, started_before, progress):
            for run, event in page:
                if if_exp is not None and not matches(if_exp, event, {}):
                    continue
                at = self.clock.now() if now is None else now
                before, woken = self.store.runs.cancel(run.id, at)  # one short transaction each
                if before is not None and not before.status.is_final:
                    cancelled += 1
                if woken:
                    self.enqueue([woken])
        return {"cancelled": cancelled}

    def bulk_replay(self, *, function_id: str, status: Any = None,
                    started_after: int | None = None, started_before: int | None = None,
                    all_runs: bool = False, now: int | None = None,
                    progress: Callable[[int], object] | None = None) -> dict[str, Any]:
        """Replay from the top every finished run of ``function_id`` in ``status`` (one or a
        list of ``completed``, ``failed``, ``cancelled``; all three when absent) created in
        ``[started_after, started_before)``; with no filter at all, only when ``all_runs``.
        Each new run names its original. Returns ``{"replayed": n, "run_ids": [...]}`` (the
        first :data:`MAX_IDS_LISTED` new runs)."""
        function_id = self._check_function(function_id)
        _check_range(started_after, started_before)
        statuses = self._final_statuses(status)
        if not all_runs and status is None and started_after is None and started_before is None:
            raise ValidationError("give status, started_after or started_before to choose the "
                                  "runs to replay, or all: true to replay every finished run of "
                                  f"{function_id!r}", field="all")
        note = _compact({"from_step": None, "changed": None, "bulk": True})
        started: set[str] = set()  # the new runs: never replayed again by this walk
        listed: list[str] = []
        for page in self._walk(function_id, statuses, started_after, started_before, progress):
            at = self.clock.now() if now is None else now
            starts = [RunStart(function_id=run.function_id, app_id=run.app_id,
                               event_id=run.event_id, replay_of=run.id, replay_note=note)
                      for run, _ in page if run.id not in started]
            if not starts:
                continue
            with self.store.atomic():  # one page per transaction
                new_ids = [i for i in self.store.runs.start(starts, at) if i is not None]
            started.update(new_ids)
            listed += new_ids[:MAX_IDS_LISTED - len(listed)]
            self.enqueue(new_ids)
        return {"replayed": len(started), "run_ids": listed}

    @staticmethod
    def _final_statuses(status: Any) -> tuple[str, ...]:
        if status is None:
            return FINAL_RUN_STATUSES
        values = [status] if isinstance(status, str) else status
        if not isinstance(values, list) or not values or any(
                v not in FINAL_RUN_STATUSES for v in values):
            raise ValidationError(f"status must be one of {', '.join(FINAL_RUN_STATUSES)} (or a "
                                  f"list of them), got {status!r}; unfinished runs cannot be "
                                  "replayed", field="status")
        return tuple(dict.fromkeys(values))


    # -- pausing a function -------------------------------------------------------------------
    def _registered(self, function_id: str) -> str:
        if self.registry.find(function_id) is None:
            raise FunctionNotFoundError(f"no function {function_id!r} is registered")
        return function_id

    @staticmethod
    def _pause_fields(state: dict[str, Any] | None) -> dict[str, Any]:
        return {"paused": state is not None,
                **(state or {"paused_at": None, "skipped_cron_ticks": 0,
                             "last_skipped_tick": None})}

    def pause_state(self, function_id: str) -> dict[str, Any]:
        """``{id, paused, paused_at, skipped_cron_ticks, last_skipped_tick}`` of a function."""
        return {"id": function_id, **self._pause_fields(
            self.store.queries.paused_functions().get(function_id))}

    def pause(self, function_id: str, *, now: int | None = None) -> dict[str, Any]:
        """Pause a function in every process: events still create its runs, but none of
        them executes (a wake-up is consumed without executing; timers still fire, leaving
        the run queued), the sweeper leaves them alone and cron ticks are recorded as
        skipped. An execution already under way finishes its current invocation. Pausing a
        paused function changes nothing."""
        self.store.runs.pause(self._registered(function_id),
                              self.clock.now() if now is None else now)
        return self.pause_state(function_id)

    def resume(self, function_id: str, *, now: int | None = None) -> dict[str, Any]:
        """Resume a paused function: its due runs are enqueued, oldest due first; sleeping
        and waiting runs continue when their timers or events come. Resuming a function
        that is not paused changes nothing. The answer counts the runs enqueued."""
        now = self.clock.now() if now is None else now
        run_ids = self.store.runs.resume(self._registered(function_id), now)
        if run_ids:
            self.enqueue(run_ids)
        return {**self.pause_state(function_id), "resumed_runs": len(run_ids)}

    def invoke(self, function_id: str, data: Any = None, *, now: int | None = None) -> str | None:
        """Start a run of ``function_id`` now with ``data`` (a JSON object), as the "Invoke"
        button of Inngest's dashboard does: its event is ``inngest/function.invoked``. It is
        admitted as an invoked child is (``RunStore.start``): throttle and concurrency
        apply, the rules kept on events' keys (rate limit, idempotency, debounce, batch,
        singleton) do not. Returns the run's id (``None`` only if no run was started)."""
        fn = self.registry.find(function_id)
        if fn is None:
            raise FunctionNotFoundError(f"no function {function_id!r} is registered")
        event = validate_event({"name": FUNCTION_INVOKED_EVENT, "data": {} if data is None
                                else data}, internal=True)
        with self.store.atomic():
            started = self.store.runs.start([RunStart(function_id=fn.id, app_id=fn.app_id,
                                                      event=event)],
                                            self.clock.now() if now is None else now)
        run_id = next((r for r in started if r), None)
        if run_id is not None:
            self.enqueue([run_id])
        return run_id

    def functions(self, *, now: int | None = None) -> list[dict[str, Any]]:
        """The registered functions with triggers, next cron fire, whether each is paused,
        and recent run statistics."""
        now = self.clock.now() if now is None else now
        paused = self.store.queries.paused_functions()
        out = []
        for fn in sorted(self.registry.all(), key=lambda f: f.id):
            body = fn.describe()
            next_fire = parse_cron(fn.cron, function_id=fn.id).next_fire(now) if fn.cron else None
            body["next_cron_fire"] = ms_to_iso(next_fire)
            body.update(self._pause_fields(paused.get(fn.id)))
            body.update(self.store.queries.function_stats(fn.id, now=now))
            if fn.capacity is not None and fn.capacity.concurrency:
                body["limits"] = self.live_limits(fn, now=now)
            out.append(body)
        return out

    def live_limits(self, fn: FunctionDef[..., Any], *, now: int | None = None, top: int = 20) -> list[dict[str, Any]]:
        """Per concurrency limit of ``fn``: slots in use, runs waiting, and the key values
        at capacity or with a backlog (the ``top`` largest backlogs)."""
        now = self.clock.now() if now is None else now
        out = []
        assert fn.capacity is not None  # callers ask only about a function with limits
        for limit in fn.capacity.concurrency:
            if limit.key is None:
                prefix = f"c:fn:{fn.id}"
            elif limit.scope == "env":
                prefix = f"c:env:{limit.key}="
            else:
                prefix = f"c:fn:{fn.id}:{limit.key}="
            rows = [r for r in self.store.slots.usage(prefix, now)
                    if limit.key is not None or r[0] == prefix]
            busy = [r for r in rows if r[2] >= r[1] or r[3] > 0]
            busy.sort(key=lambda r: (-r[3], -r[2], r[0]))
            out.append({
                **limit.describe(),
                "slots_in_use": sum(r[2] for r in rows),
                "waiting": sum(r[3] for r in rows),
                "keys": [{"key": r[0][len(prefix):] if limit.key is not None else None,
                          "limit": r[1], "in_use": r[2], "waiting": r[3],
                          "at_capacity": r[2] >= r[1]} for r in busy[:top]],
            })
        return out
