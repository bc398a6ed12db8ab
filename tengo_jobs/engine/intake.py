"""Accepting events: validate the batch, store it with its runs, then wake the runs.

This is the outbox: nothing is enqueued until the rows are committed, and a run whose
wake-up is lost (the process died right after the commit, Redis lost it) is found
again by the sweeper. On PostgreSQL accepting a batch is one autocommitted statement
(:meth:`tengo_jobs.store.EventStore.accept`): one round trip; the wake-ups then leave
through the runtime's ``enqueue`` without adding a round trip to the caller's wait
(see :class:`tengo_jobs.broker.Waker`).

A batch is all or nothing: one bad event rejects the batch before anything is stored,
a statement that fails stores nothing, and a caller is never told an event was accepted
unless its row is committed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

import peewee as pw

from ..core.events import validate_batch
from ..core.registry import Registry
from ..errors import DatabaseUnavailableError
from ..store.connection import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store

log = logging.getLogger(__name__)

_ATTEMPTS = 3  # a deadlock or serialization failure (nothing stored) is tried again


class Intake:
    """``send(events)``: the one path by which events enter (Python, HTTP, the CLI, steps)."""

    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 enqueue: Callable[[Iterable[str]], object]):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.enqueue = enqueue

    def send(self, payload: Any, *, now: int | None = None, internal: bool = False) -> list[str]:
        """Validate, store and start runs for one event or a list; returns one id per event.

        An event whose ``id`` was seen in the last 24 h starts nothing and yields the
        original id. Raises :class:`~tengo_jobs.EventValidationError` (nothing stored) or
        :class:`~tengo_jobs.errors.DatabaseUnavailableError` (nothing stored, or — when the
        connection died while the commit was in flight — not known; retrying with the same
        event ids is safe).
        """
        events = validate_batch(payload, internal=internal)
        if not events:
            return []
        batch = [(event, self.registry.triggered_by(event.name)) for event in events]
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                accepted = self.store.events.accept(batch, self.clock.now() if now is None else now)
                break
            except UNAVAILABLE_ERRORS as exc:
                if not self.store.db.is_healthy() or self.store.db.in_transaction():
                    raise DatabaseUnavailableError(
                        f"the database is unavailable ({type(exc).__name__}: {exc})") from exc
                if attempt == _ATTEMPTS:
                    raise
                log.info("intake: %s; trying again", exc)  # a deadlock: nothing was stored
                time.sleep(0.005 * attempt)
            except pw.IntegrityError:
                if attempt == _ATTEMPTS or self.store.db.in_transaction():
                    raise
        self.enqueue(accepted.due_run_ids + accepted.woken_run_ids)
        return accepted.ids
