"""Event intake: store events and the runs they start in one transaction, then wake the runs.

This is the outbox: nothing is enqueued until the rows are committed, and a run
whose wake-up message is lost is found again by the sweeper.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import peewee as pw

from .events import DEDUPE_WINDOW_MS, Event, validate_batch
from .functions import FunctionDef
from .ids import new_id
from .models import Event as EventRow
from . import fastpath
from .models import Run, RunStatus, Timer, TimerKind
from .waits import resolve_waits

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
_CHUNK = 100


def _event_row(ev: Event, event_id: str, now: int) -> dict:
    return {
        "id": event_id,
        "name": ev.name,
        "data": json.dumps(ev.data, separators=(",", ":")),
        "user": json.dumps(ev.user) if ev.user is not None else None,
        "external_id": ev.id,
        "ts": ev.ts if ev.ts is not None else now,
        "v": ev.v,
        "received_at": now,
    }


def _run_row(fn: FunctionDef, event_id: str | None, due: int, now: int,
             unique_key: str | None = None, parent_run_id: str | None = None) -> dict:
    return {
        "id": new_id(now),
        "app_id": fn.app_id,
        "function_id": fn.id,
        "event_id": event_id,
        "status": RunStatus.QUEUED.value,
        "attempt": 0,
        "created_at": now,
        "wake_at": due,
        "enqueued_at": now if due <= now else None,
        "unique_key": unique_key,
        "parent_run_id": parent_run_id,
    }


_EVENT_COLUMNS = ("id", "name", "data", "user", "external_id", "ts", "v", "received_at")
_RUN_COLUMNS = ("id", "app_id", "function_id", "event_id", "status", "attempt", "created_at",
                "wake_at", "enqueued_at", "unique_key", "parent_run_id")


def _insert_runs(db, rows: list[dict]) -> None:
    for i in range(0, len(rows), _CHUNK):
        fastpath.insert_rows(db, "tj_runs", _RUN_COLUMNS,
                             [tuple(r[c] for c in _RUN_COLUMNS) for r in rows[i:i + _CHUNK]])
    timers = [{"run_id": r["id"], "due_at": r["wake_at"], "kind": TimerKind.EVENT.value}
              for r in rows if r["enqueued_at"] is None]
    for i in range(0, len(timers), _CHUNK):
        Timer.insert_many(timers[i:i + _CHUNK]).execute()


def send_events(runtime: "Runtime", payload: Any, *, now: int | None = None,
                internal: bool = False) -> list[str]:
    """Validate, store and start runs for one event or a list; returns one id per event.

    All or nothing: a bad event rejects the batch before anything is stored. An event
    whose ``id`` was seen in the last 24 h starts nothing and yields the original id.
    """
    events = validate_batch(payload, internal=internal)
    if not events:
        return []
    for attempt in range(3):
        now_ms = runtime.now() if now is None else now
        try:
            ids, runs, woken = _store(runtime, events, now_ms)
            break
        except pw.IntegrityError:
            if attempt == 2:
                raise
            # a concurrent producer recorded the same event id first: look again
            continue
    due_now = [r["id"] for r in runs if r["enqueued_at"] is not None]
    runtime.enqueue(due_now + woken)
    return ids


def _store(runtime: "Runtime", events: list[Event], now: int) -> tuple[list[str], list[dict], list[str]]:
    ids: list[str] = []
    event_rows: list[dict] = []
    run_rows: list[dict] = []
    stored: list[Event] = []
    db = runtime.db
    with db.atomic():
        for ev in events:
            event_id = new_id(now)
            if ev.id is not None:
                original = fastpath.claim_dedupe(db, ev.id, event_id, now, DEDUPE_WINDOW_MS)
                if original is not None:
                    ids.append(original)
                    continue
            ids.append(event_id)
            event_rows.append(_event_row(ev, event_id, now))
            stored.append(ev)
            due = ev.ts if ev.ts is not None and ev.ts > now else now
            for fn in runtime.registry.triggered_by(ev.name):
                run_rows.append(_run_row(fn, event_id, due, now))
        for i in range(0, len(event_rows), _CHUNK):
            fastpath.insert_rows(db, "tj_events", _EVENT_COLUMNS,
                                 [tuple(r[c] for c in _EVENT_COLUMNS)
                                  for r in event_rows[i:i + _CHUNK]])
        _insert_runs(db, run_rows)
        woken = []
        if event_rows and fastpath.any_waits(db, now):
            woken = resolve_waits([(row["id"], ev.to_dict())
                                   for row, ev in zip(event_rows, stored)], now)
    return ids, run_rows, woken


def start_run(runtime: "Runtime", fn: FunctionDef, event: Event, *, now: int,
              unique_key: str | None = None, parent_run_id: str | None = None,
              enqueue: bool = True) -> str | None:
    """Store an (internal) event and one run of ``fn`` for it; ``None`` if ``unique_key`` exists.

    Used for cron ticks (unique per function and tick) and failure handlers. Call it
    inside the caller's transaction with ``enqueue=False`` to commit it atomically with
    other changes, then enqueue the returned run id after commit.
    """
    with runtime.db.atomic():
        event_id = new_id(now)
        row = _run_row(fn, event_id, now, now, unique_key=unique_key, parent_run_id=parent_run_id)
        try:
            with runtime.db.atomic():
                Run.insert(**row).execute()
        except pw.IntegrityError:
            return None  # this tick (unique_key) already has its run
        EventRow.insert(**_event_row(event, event_id, now)).execute()
    if enqueue:
        runtime.enqueue([row["id"]])
    return row["id"]
