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

import dataclasses
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, cast

import peewee as pw

from .. import middleware as mw
from ..core.events import validate_batch
from ..core.registry import Registry
from ..errors import DatabaseUnavailableError, EventValidationError
from ..serde import revive
from ..store.connection import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store

log = logging.getLogger(__name__)

_ATTEMPTS = 3  # a deadlock or serialization failure (nothing stored) is tried again


class Intake:
    """``send(events)``: the one path by which events enter (Python, HTTP, the CLI, steps).

    With ``group_commit`` (``TENGO_GROUP_COMMIT``), sends from several threads at once share
    statements: see :class:`GroupCommit`.
    """

    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock",
                 enqueue: Callable[[Iterable[str]], object], group_commit: bool = False,
                 group_window_ms: int = 0):
        self.store = store
        self.registry = registry
        self.clock = clock
        self.enqueue = enqueue
        self._group = GroupCommit(self._store_batch, window_ms=group_window_ms) \
            if group_commit else None

    def send(self, payload: Any, *, now: int | None = None, internal: bool = False,
             middleware: tuple[mw.Middleware, ...] = (),
             traceparent: str | None = None) -> list[str]:
        """Validate, store and start runs for one event or a list; returns one id per event.

        An event whose ``id`` was seen in the last 24 h starts nothing and yields the
        original id. Raises :class:`~tengo_jobs.EventValidationError` (nothing stored) or
        :class:`~tengo_jobs.errors.DatabaseUnavailableError` (nothing stored, or — when the
        connection died while the commit was in flight — not known; retrying with the same
        event ids is safe).

        ``middleware`` (the sending client's, :mod:`tengo_jobs.middleware`): its
        ``before_send_events`` hooks see the events before they are validated, its
        ``after_send_events`` hooks the ids once they are stored. A function declared with
        ``event_schema`` refuses (the whole batch, nothing stored) an event whose data does
        not validate, naming the field.

        ``traceparent`` (a W3C header, already checked by the caller): stored with every
        event and the runs they start, whose traces continue the caller's.
        """
        if middleware:
            payload = mw.before_send(middleware, payload)
        events = validate_batch(payload, internal=internal)
        if not events:
            return []
        if traceparent is not None:
            events = [event.copy(traceparent=traceparent) for event in events]
        batch = [(event, self.registry.triggered_by(event.name)) for event in events]
        for index, (event, functions) in enumerate(batch):
            for fn in functions:
                if fn.event_schema is not None:
                    check_event_schema(fn, event, index if len(batch) > 1 else None)
        if self._group is not None and now is None and not self.store.db.in_transaction():
            ids = self._group.submit(batch)
        else:
            ids = self._store_batch(batch, now)
        if middleware:
            mw.after_send(middleware, payload, ids)
        return ids

    def _store_batch(self, batch: list[Any], now: int | None) -> list[str]:
        """Store a validated batch (retrying a deadlock), enqueue its runs, return its ids."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                accepted = self.store.events.accept(batch, self.clock.now() if now is None else now)
                break
            except UNAVAILABLE_ERRORS as exc:
                if not cast(Any, self.store.db).is_healthy() or self.store.db.in_transaction():
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


def check_event_schema(fn: Any, event: Any, index: int | None) -> None:
    """Validate ``event.data`` against ``fn.event_schema`` (a pydantic model); an
    :class:`~tengo_jobs.EventValidationError` naming the first failing field (``data.<path>``)
    and the function otherwise."""
    try:
        fn.event_schema.model_validate(revive(event.data))
    except ValueError as exc:  # pydantic's ValidationError
        errors = exc.errors() if hasattr(exc, "errors") else []
        first = errors[0] if errors else {}
        path = ".".join(str(p) for p in first.get("loc", ()))
        field = f"data.{path}" if path else "data"
        where = "" if index is None else f" (event {index} in the batch)"
        raise EventValidationError(
            f"event {event.name!r}: {field}: {first.get('msg', exc)} (the event_schema "
            f"{fn.event_schema.__name__} of function {fn.id!r}){where}",
            field=field, index=index) from None


@dataclasses.dataclass
class _Request:
    batch: list[Any]
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    ids: list[str] | None = None
    error: BaseException | None = None


class GroupCommit:
    """Sends from many threads share one statement (and one commit) per group.

    One committer thread takes the first waiting request and, with it, every request
    that arrived meanwhile (and, with ``window_ms``, those arriving within that many
    milliseconds), up to :data:`MAX_GROUP_EVENTS` events, and stores them as one batch.
    An idle intake adds no wait but the hand-over; under load, a group is what arrived
    while the previous one was being committed. Each request gets its own ids; a group
    is all or nothing, and when it fails for a reason other than a lost connection each
    request is tried again on its own, so one request's bad data fails only that one.
    No caller is answered before its events' rows are committed.
    """

    MAX_GROUP_EVENTS = 1_000

    def __init__(self, store_batch: Callable[[list[Any], int | None], list[str]], *,
                 window_ms: int = 0):
        self._store_batch = store_batch
        self._window = window_ms / 1000
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.groups = 0  # statements made, for measurements
        self.requests = 0

    def submit(self, batch: list[Any]) -> list[str]:
        request = _Request(batch)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tengo-group-commit",
                                                daemon=True)
                self._thread.start()
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return cast("list[str]", request.ids)

    def _take_group(self) -> list[_Request]:
        group = [self._queue.get()]
        size = len(group[0].batch)
        deadline = time.monotonic() + self._window
        while size < self.MAX_GROUP_EVENTS:
            try:
                timeout = deadline - time.monotonic()
                request = (self._queue.get(timeout=timeout) if timeout > 0
                           else self._queue.get_nowait())
            except queue.Empty:
                break
            group.append(request)
            size += len(request.batch)
        return group

    def _loop(self) -> None:
        while True:
            group = self._take_group()
            self.groups += 1
            self.requests += len(group)
            try:
                ids = self._store_batch([item for r in group for item in r.batch], None)
            except BaseException as exc:  # noqa: BLE001 - handed to the callers
                self._fail(group, exc)
                continue
            start = 0
            for request in group:
                request.ids = ids[start:start + len(request.batch)]
                start += len(request.batch)
                request.done.set()

    def _fail(self, group: list[_Request], exc: BaseException) -> None:
        if len(group) == 1 or isinstance(exc, DatabaseUnavailableError):
            for request in group:  # nothing stored, or not known: each caller hears it
                request.error = exc
                request.done.set()
            return
        for request in group:  # the statement stored nothing: each on its own
            try:
                request.ids = self._store_batch(request.batch, None)
            except BaseException as own:  # noqa: BLE001
                request.error = own
            request.done.set()
