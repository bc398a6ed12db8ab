"""Runs waiting on something else: ``step.wait_for_event`` and ``step.invoke``.

A waiting run holds no worker. ``wait_for_event`` stores a wait row (event name,
CEL condition, expiry) and a timeout timer; the intake resolves matching waits in
the same transaction that stores the incoming event. ``invoke`` starts a child
run whose completion or failure writes the parent's step result.

Conditions are CEL expressions (cel-python) over ``event`` (the waiting run's
triggering event) and ``async`` (the incoming event) — never Python ``eval``.
"""

from __future__ import annotations

import functools
import json
import logging
import celpy

from .errors import ValidationError
from .models import Run, RunStatus, Step, StepStatus, Timer, Wait

log = logging.getLogger(__name__)
INVOKE_PREFIX = "invoke:"


class ExpressionError(ValidationError):
    """A CEL expression that does not parse."""


@functools.lru_cache(maxsize=512)
def compile_expression(expression: str):
    """Compile a CEL expression once; a syntax error is a clear :class:`ExpressionError`."""
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression))
    except Exception as exc:  # celpy raises its own parse errors
        raise ExpressionError(f"invalid CEL expression {expression!r}: {exc}",
                              field="if_exp") from None


def matches(expression: str | None, event: dict, incoming: dict) -> bool:
    """Does ``incoming`` satisfy ``expression`` for a run triggered by ``event``?"""
    if not expression:
        return True
    program = compile_expression(expression)
    try:
        result = program.evaluate({"event": celpy.json_to_cel(event),
                                   "async": celpy.json_to_cel(incoming)})
    except Exception:  # noqa: BLE001 - a missing field means "no match", as in Inngest
        return False
    return bool(result) if not isinstance(result, Exception) else False


def _wake(run_ids: list[str], now: int) -> None:
    if not run_ids:
        return
    Timer.delete().where(Timer.run_id.in_(run_ids)).execute()
    (Run.update(status=RunStatus.QUEUED, wake_at=now, enqueued_at=now)
     .where(Run.id.in_(run_ids) & (Run.status == RunStatus.WAITING.value)).execute())


def resolve_waits(stored: list[tuple[str, dict]], now: int) -> list[str]:
    """Resolve waits matched by newly stored events ``(event_id, event_dict)``; call inside the
    intake's transaction. Returns the run ids to enqueue after commit."""
    woken: list[str] = []
    by_name: dict[str, list[tuple[str, dict]]] = {}
    for event_id, ev in stored:
        by_name.setdefault(ev["name"], []).append((event_id, ev))
    waits = list(Wait.select().where(Wait.event_name.in_(list(by_name)) & (Wait.expires_at > now))
                 .order_by(Wait.id))
    for wait in waits:
        trigger = json.loads(wait.match_event)
        for event_id, ev in by_name[wait.event_name]:
            if not matches(wait.expression, trigger, ev):
                continue
            if Wait.delete().where(Wait.id == wait.id).execute() != 1:
                break  # resolved by a concurrent producer
            output = json.dumps({**ev, "id": ev.get("id") or event_id}, separators=(",", ":"))
            (Step.update(status=StepStatus.COMPLETED, output=output, ended_at=now, attempts=1)
             .where((Step.run_id == wait.run_id) & (Step.key == wait.step_key)
                    & (Step.status == StepStatus.WAITING.value)).execute())
            woken.append(wait.run_id)
            break
    _wake(woken, now)
    return woken


def resolve_invoke_parent(child: Run, *, output: str | None, error: str | None, now: int) -> str | None:
    """Write a finished child run's result into its parent's invoke step; call inside the
    child's final transaction. Returns the parent run id to enqueue after commit."""
    key = child.unique_key or ""
    if not key.startswith(INVOKE_PREFIX) or not child.parent_run_id:
        return None
    step_key = key[len(INVOKE_PREFIX) + len(child.parent_run_id) + 1:]
    status = StepStatus.FAILED if error is not None else StepStatus.COMPLETED
    n = (Step.update(status=status, output=output, error=error, ended_at=now, attempts=1)
         .where((Step.run_id == child.parent_run_id) & (Step.key == step_key)
                & (Step.status == StepStatus.WAITING.value)).execute())
    if n != 1:
        return None  # the parent timed out already, or was cancelled
    _wake([child.parent_run_id], now)
    return child.parent_run_id


def invoke_unique_key(parent_run_id: str, step_key: str) -> str:
    return f"{INVOKE_PREFIX}{parent_run_id}:{step_key}"


def clear_wait(run_id: str, step_key: str) -> None:
    Wait.delete().where((Wait.run_id == run_id) & (Wait.step_key == step_key)).execute()

