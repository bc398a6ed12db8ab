"""Run and event queries, cancel and replay: the engine side the REST API and the CLI share.

Everything here works on the database alone (no registry needed), takes ``now=``
where time matters, and returns plain dicts in the shapes DESIGN.md gives for the
HTTP API (times as ISO 8601 UTC, JSON columns decoded).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import peewee as pw

from .durations import ms_to_iso
from .errors import InvalidRunStateError, RunNotFoundError, ValidationError
from .ids import new_id
from .models import FINAL_RUN_STATUSES
from .models import Event as EventRow
from .models import Run, RunStatus, Step, Timer, Wait

if TYPE_CHECKING:
    from .runtime import Runtime

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
DURATION_SAMPLE = 1_000  # runs per function used for the p50/p95 durations
RUN_STATUSES = tuple(s.value for s in RunStatus)


class EventNotFoundError(RunNotFoundError):
    """No event with that id."""


# -- serialization ------------------------------------------------------------------------
def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def step_dict(step: Step) -> dict:
    return {
        "key": step.key,
        "name": step.name,
        "kind": step.kind.value,
        "status": step.status.value,
        "attempts": step.attempts,
        "output": _json(step.output),
        "error": _json(step.error),
        "started_at": ms_to_iso(step.started_at),
        "ended_at": ms_to_iso(step.ended_at),
    }


def run_dict(run: Run, steps: list[Step] | None = None) -> dict:
    body = {
        "id": run.id,
        "function_id": run.function_id,
        "app_id": run.app_id,
        "event_id": run.event_id,
        "status": run.status.value,
        "output": _json(run.output),
        "error": _json(run.error),
        "attempt": run.attempt,
        "created_at": ms_to_iso(run.created_at),
        "started_at": ms_to_iso(run.started_at),
        "ended_at": ms_to_iso(run.ended_at),
    }
    if steps is not None:
        body["steps"] = [step_dict(s) for s in steps]
    return body


def event_dict(row: EventRow, runs: list[Run] | None = None) -> dict:
    body = {
        "id": row.id,
        "name": row.name,
        "data": _json(row.data),
        "user": _json(row.user),
        "external_id": row.external_id,
        "ts": row.ts,
        "v": row.v,
        "received_at": ms_to_iso(row.received_at),
    }
    if runs is not None:
        body["runs"] = [run_dict(r) for r in runs]
    return body


# -- argument checks ----------------------------------------------------------------------
def check_limit(limit: Any) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}",
                              field="limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {value}",
                              field="limit")
    return value


def check_status(status: Any) -> str | None:
    if status is None:
        return None
    if status not in RUN_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}",
                              field="status")
    return status


def check_cursor(cursor: Any) -> str | None:
    if cursor in (None, ""):
        return None
    if not isinstance(cursor, str) or len(cursor) != 26 or not cursor.isalnum():
        raise ValidationError("cursor must be the next_cursor of a previous page", field="cursor")
    return cursor.upper()


# -- queries ------------------------------------------------------------------------------
def _page(query, model, limit: int, cursor: str | None) -> tuple[list, str | None]:
    """Newest first, keyed on the sortable id; ``next_cursor`` is the last id when more remain."""
    if cursor:
        query = query.where(model.id < cursor)
    rows = list(query.order_by(model.id.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def list_runs(*, status: str | None = None, function_id: str | None = None,
              since: int | None = None, until: int | None = None, event_id: str | None = None,
              limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict:
    """Runs newest first, filtered by status, function and creation time ``[since, until)``."""
    query = Run.select()
    if check_status(status) is not None:
        query = query.where(Run.status == status)
    if function_id:
        query = query.where(Run.function_id == function_id)
    if event_id:
        query = query.where(Run.event_id == event_id)
    if since is not None:
        query = query.where(Run.created_at >= since)
    if until is not None:
        query = query.where(Run.created_at < until)
    rows, next_cursor = _page(query, Run, check_limit(limit), check_cursor(cursor))
    return {"data": [run_dict(r) for r in rows], "next_cursor": next_cursor}


def get_run(run_id: str) -> dict:
    """One run with its steps in execution order."""
    run = Run.get_or_none(Run.id == run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    steps = list(Step.select().where(Step.run_id == run_id).order_by(Step.position))
    return run_dict(run, steps)


def list_events(*, name: str | None = None, since: int | None = None, until: int | None = None,
                limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> dict:
    query = EventRow.select()
    if name:
        query = query.where(EventRow.name == name)
    if since is not None:
        query = query.where(EventRow.received_at >= since)
    if until is not None:
        query = query.where(EventRow.received_at < until)
    rows, next_cursor = _page(query, EventRow, check_limit(limit), check_cursor(cursor))
    return {"data": [event_dict(r) for r in rows], "next_cursor": next_cursor}


def get_event(event_id: str) -> dict:
    """One event with the runs it started (oldest first)."""
    row = EventRow.get_or_none(EventRow.id == event_id)
    if row is None:
        raise EventNotFoundError(f"no event {event_id!r}")
    runs = list(Run.select().where(Run.event_id == event_id).order_by(Run.id).limit(MAX_LIMIT))
    return event_dict(row, runs)


# -- functions ----------------------------------------------------------------------------
def _percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def function_stats(function_id: str) -> dict:
    """Counts by status and p50/p95 duration (ms) of the latest finished runs."""
    counts = {s: 0 for s in RUN_STATUSES}
    for status, n in (Run.select(Run.status, pw.fn.COUNT(Run.id))
                      .where(Run.function_id == function_id)
                      .group_by(Run.status).tuples()):
        counts[RunStatus(status).value] = n
    durations = sorted(r[0] for r in (
        Run.select(Run.ended_at - Run.started_at)
        .where((Run.function_id == function_id) & Run.ended_at.is_null(False)
               & Run.started_at.is_null(False)
               & Run.status.in_([RunStatus.COMPLETED.value, RunStatus.FAILED.value]))
        .order_by(Run.ended_at.desc()).limit(DURATION_SAMPLE).tuples()))
    return {"counts": counts,
            "duration_ms": {"p50": _percentile(durations, 0.50), "p95": _percentile(durations, 0.95),
                            "sample": len(durations)}}


def list_functions(runtime: "Runtime", *, now: int | None = None) -> list[dict]:
    """The registered functions with triggers, next cron fire and run statistics."""
    from .cron import parse_cron

    now = runtime.now() if now is None else now
    out = []
    for fn in sorted(runtime.registry.all(), key=lambda f: f.id):
        body = fn.describe()
        next_fire = parse_cron(fn.cron, function_id=fn.id).next_fire(now) if fn.cron else None
        body["next_cron_fire"] = ms_to_iso(next_fire)
        body.update(function_stats(fn.id))
        out.append(body)
    return out


# -- control ------------------------------------------------------------------------------
def cancel_run(runtime: "Runtime", run_id: str, *, now: int | None = None) -> dict:
    """Cancel a run: final status ``cancelled``, its timer deleted, its lease revoked.

    A worker executing the run right now is stopped at its next checkpoint: every
    checkpoint is fenced on the lease owner, which this clears. Cancelling a cancelled
    run is a no-op; a completed or failed run cannot be cancelled.
    """
    now = runtime.now() if now is None else now
    with runtime.db.atomic():
        run = Run.get_or_none(Run.id == run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        if run.status == RunStatus.CANCELLED:
            return get_run(run_id)
        if run.status.is_final:
            raise InvalidRunStateError(
                f"run {run_id} is already {run.status.value}; only unfinished runs can be cancelled")
        n = (Run.update(status=RunStatus.CANCELLED, ended_at=now, lease_owner=None,
                        lease_expires_at=None, enqueued_at=None)
             .where((Run.id == run_id) & Run.status.not_in(list(FINAL_RUN_STATUSES)))
             .execute())
        if n != 1:  # finished between our read and our write
            raise InvalidRunStateError(f"run {run_id} finished before it could be cancelled")
        Timer.delete().where(Timer.run_id == run_id).execute()
        Wait.delete().where(Wait.run_id == run_id).execute()
    return get_run(run_id)


def replay_run(runtime: "Runtime", run_id: str, *, from_step: str | None = None,
               now: int | None = None) -> dict:
    """Start a new run of the same function on the same event.

    With ``from_step``, the steps stored before that step (by position) are copied into
    the new run, so they replay their stored outputs and execution resumes at
    ``from_step``. Without it the new run starts from the top.
    """
    now = runtime.now() if now is None else now
    if from_step is not None and (not isinstance(from_step, str) or not from_step):
        raise ValidationError("from_step must be a step key (a non-empty string)", field="from_step")
    with runtime.db.atomic():
        run = Run.get_or_none(Run.id == run_id)
        if run is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        copies: list[dict] = []
        new_run_id = new_id(now)
        if from_step is not None:
            target = Step.get_or_none((Step.run_id == run_id) & (Step.key == from_step))
            if target is None:
                keys = [s[0] for s in Step.select(Step.key).where(Step.run_id == run_id)
                        .order_by(Step.position).limit(20).tuples()]
                raise ValidationError(
                    f"run {run_id} has no step {from_step!r} (its steps: {', '.join(keys) or 'none'})",
                    field="from_step")
            for s in Step.select().where((Step.run_id == run_id)
                                         & (Step.position < target.position)).order_by(Step.position):
                copies.append(dict(run_id=new_run_id, key=s.key, name=s.name, kind=s.kind.value,
                                   position=s.position, status=s.status.value, attempts=s.attempts,
                                   output=s.output, error=s.error, started_at=s.started_at,
                                   ended_at=s.ended_at, wake_at=s.wake_at))
        Run.insert(id=new_run_id, app_id=run.app_id, function_id=run.function_id,
                   event_id=run.event_id, status=RunStatus.QUEUED.value, attempt=0,
                   created_at=now, wake_at=now, enqueued_at=now).execute()
        for i in range(0, len(copies), 100):
            Step.insert_many(copies[i:i + 100]).execute()
    runtime.enqueue([new_run_id])
    return get_run(new_run_id)


__all__ = ["list_runs", "get_run", "list_events", "get_event", "list_functions", "cancel_run",
           "replay_run", "run_dict", "event_dict", "step_dict", "EventNotFoundError"]
