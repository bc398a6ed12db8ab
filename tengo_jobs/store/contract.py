"""The store contract: every run state transition, what it promises, on any database.

:class:`RunStore`, :class:`EventStore` and :class:`TimerStore` are the contract; each
database implements it in its own module (:mod:`.postgres`, :mod:`.sqlite`), with no
dialect branch inside a transition. Methods that are the same SQL on both databases are
written here once; the others are abstract, and their docstrings are the promise both
implementations keep (the ``backend`` test suite runs every promise on both).

**Leases and the fence.** A run is executed by one worker at a time. The worker
*acquires* it, taking a lease (an owner token and an expiry) in the run row, and every
write it makes afterwards is *fenced* on that lease: a worker that stalled past its
lease writes nothing (:class:`~tengo_jobs.errors.LeaseLost`), so it cannot overwrite the
work of the one that took over. The lease keeper renews leases on its own clock
(:meth:`RunStore.renew`); checkpoints do not touch the run row.

**Pending operations and the signal.** A suspension parks the run on a list of pending
step operations (:mod:`tengo_jobs.core.ops`), each with a timer keyed by run and step.
Anything that resolves one of them from outside an execution (a timer fired, a wait
matched, a child ended) moves the run's ``signal``; a suspension is fenced on the value
its acquire read, so an execution cannot park a run whose pending operations moved
meanwhile: the run is queued again instead (:attr:`Parked.requeued`).

**Executions that die without a trace.** ``inflight`` counts the executions begun since
the run's last clean write: acquire adds one, suspend/complete/fail/release set it to 0,
and the first checkpoint of an execution that found earlier ones dead sets it to 1. An
acquire that finds it above 0 knows that many executions died without writing a step
(:attr:`Acquired.unclean`); the engine charges them to the step that was running.

**Lock order.** Every transition that touches several tables takes rows in the order
waits → runs → steps → timers, so two transitions never wait on each other in a cycle.

**A lost database.** The run transitions are retried across a lost connection for up to
``reconnect_window_ms`` (:meth:`RunStore._retrying`): an acquire by the same token, a
step upsert and a fenced final write are safe to repeat.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, cast

from ..core.events import FUNCTION_FAILED_EVENT, FUNCTION_INVOKED_EVENT, Event
from ..core.ops import Invoke, PendingOp, RetryStep, StepRecord, WaitForEvent
from ..ids import new_id
from ..errors import DatabaseUnavailableError, LeaseLost
from .connection import UNAVAILABLE_ERRORS
from .dialect import Dialect
from .schema import RunRow, RunStatus, StepKind, StepRow, StepStatus
from . import statements as sql

if TYPE_CHECKING:
    from .admission import Admission
    from .cancellation import Cancelled
    from .waits import WaitStore

log = logging.getLogger(__name__)

INVOKE_PREFIX = "invoke:"
FAILURE_PREFIX = "failure:"


# -- values --------------------------------------------------------------------------------
@dataclasses.dataclass
class Acquired:
    """A run this worker now holds: the row, its triggering event, its stored steps, and
    how many executions before this one died without a trace. ``slot``: ``(scope key,
    limit)`` of the concurrency slot the acquire took with the lease (the function's
    ``solo`` function-wide key had room: :mod:`.slots`), else ``None``."""

    run: RunRow
    event: Event
    steps: list[StepRow]
    unclean: int
    slot: tuple[str, int] | None = None


@dataclasses.dataclass(frozen=True)
class Parked:
    """What a suspension did: the invoked children it started (to enqueue after commit),
    and whether the run was queued again instead of parked (its pending operations moved
    while it executed: enqueue it)."""

    children: list[str]
    requeued: bool = False
    # A cancellation was requested while it executed: the run ended cancelled instead
    # (``woken``: an invoked child's parent to enqueue).
    cancelled: bool = False
    woken: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunStart:
    """A run about to start — the one shape every path that starts runs uses (the intake,
    cron ticks, failure handlers, invoked children, replays), so admission rules hang in
    one place (:mod:`.admission`).

    ``event`` is stored with the run (an internal event); ``event_id`` names one already
    stored (a replay). ``unique_key`` makes the start happen once; ``steps`` are results
    copied into the new run (a replay from a step); ``replay_of`` names the run a replay
    replays and ``replay_note`` (JSON text) says how."""

    function_id: str
    app_id: str
    event: Event | None = None
    event_id: str | None = None
    due: int | None = None
    unique_key: str | None = None
    parent_run_id: str | None = None
    steps: tuple[StepRecord, ...] = ()
    replay_of: str | None = None
    replay_note: str | None = None
    traceparent: str | None = None  # the caller's trace, which the run's continues


@dataclasses.dataclass(frozen=True)
class Admitted:
    """A run that will start: its id, its event's id, when it is due, and whether it is
    due now (``enqueued_at`` set: the caller wakes it after commit) or later (a timer)."""

    start: RunStart
    run_id: str
    event_id: str | None
    due: int
    enqueued_at: int | None
    now: int
    # The function, when its runs carry cancel matchers or deadlines (``cancel_on``,
    # ``timeouts``): the store registers them with the run (store/cancellation.py).
    lifecycle: object = None

    def run_row(self) -> tuple[Any, ...]:
        """The run row's values in :data:`.statements.RUN_ROW` order: the one row shape
        every path that starts a run writes."""
        s = self.start
        return (self.run_id, s.app_id, s.function_id, self.event_id, RunStatus.QUEUED.value, 0,
                self.now, self.due, self.enqueued_at, s.unique_key, s.parent_run_id, 0,
                s.replay_of, s.replay_note, s.traceparent)


def admit_one(start: RunStart, now: int, *, due: int | None = None,
              lifecycle: object = None) -> Admitted:
    """``start`` as an admitted run: new ids, due at ``due`` (default its own ``due``; now
    at the earliest)."""
    if due is None:
        due = start.due if start.due is not None and start.due > now else now
    event_id = start.event_id if start.event is None else new_id(now)
    return Admitted(start=start, run_id=new_id(now), event_id=event_id, due=due,
                    enqueued_at=now if due <= now else None, now=now, lifecycle=lifecycle)


@dataclasses.dataclass
class Accepted:
    """What :meth:`EventStore.accept` did: one id per input event (the original id for a
    duplicate), and the runs to wake after commit (due now, and resolved waits)."""

    ids: list[str]
    due_run_ids: list[str]
    woken_run_ids: list[str]


@dataclasses.dataclass(frozen=True)
class Parent:
    """Where an invoked child's result goes: the parent run and its invoke step."""

    run_id: str
    step_key: str

    @classmethod
    def of(cls, run: RunRow) -> "Parent | None":
        key = run.unique_key or ""
        if not run.parent_run_id or not key.startswith(INVOKE_PREFIX):
            return None
        return cls(run.parent_run_id, key[len(INVOKE_PREFIX) + len(run.parent_run_id) + 1:])


def invoke_unique_key(parent_run_id: str, step_key: str) -> str:
    return f"{INVOKE_PREFIX}{parent_run_id}:{step_key}"


def run_from_row(values: Iterable[Any]) -> RunRow:
    fields = dict(zip(RunRow._meta.sorted_field_names, values))
    fields["status"] = RunStatus(fields["status"])
    return RunRow(**fields)


def step_from_row(values: Iterable[Any]) -> StepRow:
    fields = dict(zip(StepRow._meta.sorted_field_names, values))
    fields["kind"], fields["status"] = StepKind(fields["kind"]), StepStatus(fields["status"])
    return StepRow(**fields)


def event_of(run: RunRow, row: Any) -> Event:
    """The triggering event of ``run`` from its stored row (name, data, external id, ts,
    v, user)."""
    if run.event_id is None:
        return Event(name="", data={})
    if row is None or row[0] is None:
        return Event(name="", data={}, id=run.event_id)
    name, data, external_id, ts, v, user = row
    return Event(name=name, data=json.loads(data), id=external_id or run.event_id, ts=ts, v=v,
                 user=json.loads(user) if user else None)


def event_params(event_id: str, event: Event, now: int) -> tuple[Any, ...]:
    """An event row's values in :data:`.statements.EVENT_ROW` order."""
    return (event_id, event.name, json.dumps(event.data, separators=(",", ":")),
            json.dumps(event.user) if event.user is not None else None, event.id,
            event.ts if event.ts is not None else now, event.v, now, event.traceparent)


def resolve_parent(d: Dialect, parent: Parent, status: RunStatus, output: str | None,
                   error: str | None, now: int) -> str | None:
    """An invoked child ended: the parent's invoke step gets its result and the parent is
    nudged (runs, then steps, then timers: the lock order). Returns the parent's id when it
    was queued."""
    nudged = d.execute(sql.NUDGE_FOR_STEP, (now, now, parent.run_id, parent.run_id,
                                            parent.step_key)).fetchall()
    if not nudged:
        return None
    step_status = StepStatus.COMPLETED if status == RunStatus.COMPLETED else StepStatus.FAILED
    d.execute(sql.RESOLVE_STEP, (step_status.value, output, error, now, parent.run_id,
                                 parent.step_key))
    d.execute(sql.DELETE_STEP_TIMER, (parent.run_id, parent.step_key))
    return parent.run_id if nudged[0][0] == "queued" else None


def timer_rows(run_id: str, pending: Iterable[PendingOp]) -> list[tuple[Any, ...]]:
    """``(run id, step key, due, kind)`` for each pending operation's timer."""
    return [(run_id, op.key, op.wake_at, op.timer.value) for op in pending]


def mark_sent(d: Dialect, run_ids: list[str], now: int) -> None:
    """Record that a wake-up for each of ``run_ids`` is sent now (``enqueued_at``)."""
    for i in range(0, len(run_ids), 500):
        chunk = run_ids[i:i + 500]
        d.execute(f'UPDATE "{sql.RUNS}" SET "enqueued_at" = ? WHERE "id" IN '
                  f'({sql.marks(len(chunk))})', (now, *chunk))


# -- the run state machine -------------------------------------------------------------------
class RunStore(abc.ABC):
    """The run transitions (see the module docstring), on one database."""

    def __init__(self, dialect: Dialect, *, lease_ttl_ms: int, reconnect_window_ms: int,
                 waits: WaitStore, admission: Admission) -> None:
        self.d = dialect
        self.db = dialect.db
        self.lease_ttl_ms = lease_ttl_ms
        self.reconnect_window_ms = reconnect_window_ms
        self.waits = waits
        self.admission = admission

    # -- surviving a lost connection ---------------------------------------------------------
    def _retrying(self, write: Callable[[], Any], *, run_id: str | None = None,
                  token: str | None = None, final: bool = False) -> Any:
        """Call ``write``; across a lost connection, reconnect and call it again. With
        ``final``, an ambiguous failure is followed by a check that the run is still
        ``token``'s to write; if it is not, the write happened or another worker took over,
        and either way this worker is done (``None`` is returned)."""
        deadline = time.monotonic() + self.reconnect_window_ms / 1000
        delay = 0.05
        while True:
            try:
                return write()
            except UNAVAILABLE_ERRORS as exc:
                if self.db.in_transaction():  # the caller's transaction is gone: let it decide
                    raise
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailableError(
                        f"the database did not answer for {self.reconnect_window_ms} ms "
                        f"({type(exc).__name__}: {exc})") from exc
                log.warning("database unavailable (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay)
                delay = min(1.0, delay * 2)
                if final and run_id is not None:
                    try:
                        owner = self.d.execute(sql.OWNER, (run_id,)).fetchone()
                    except UNAVAILABLE_ERRORS:
                        continue
                    if owner is None or owner[0] != token:
                        return None

    def _lost(self, run_id: str, token: str | None) -> LeaseLost:
        return LeaseLost(f"run {run_id}: lease lost by {token}")

    # -- acquire -----------------------------------------------------------------------------
    def acquire(self, run_id: str, token: str, now: int) -> Acquired | None:
        """Take the lease of ``run_id`` if it is due and free: the run, its event and its
        steps; ``None`` if the run is not this worker's to run. The same token may acquire
        again (a retry after a lost reply)."""
        params = (token, now + self.lease_ttl_ms, now, token, run_id, now, now, token)
        return cast("Acquired | None", self._retrying(lambda: self._acquire(run_id, params)))

    @abc.abstractmethod
    def _acquire(self, run_id: str, params: tuple[Any, ...]) -> Acquired | None:
        """One acquire attempt (``params`` in :data:`.statements.ACQUIRE` order)."""

    def batch_events(self, run: RunRow) -> list[Event]:
        """The events of a ``batch_events`` run in the order they joined (``ctx.events``);
        read after the acquire, in a statement of its own, so it sees every event that
        joined before the lease was taken."""
        return [Event(name=name, data=json.loads(data), id=external_id or event_id, ts=ts, v=v,
                      user=json.loads(user) if user else None)
                for event_id, name, data, external_id, ts, v, user
                in self.d.execute(sql.SELECT_BATCH_EVENTS, (run.id,)).fetchall()
                if name is not None]

    def renew(self, run_id: str, token: str, now: int) -> bool:
        """Extend a held lease (the lease keeper); ``False`` if it is no longer held."""
        cursor = self.d.execute(sql.RENEW, (now + self.lease_ttl_ms, run_id, token, now))
        return cast(bool, cursor.rowcount == 1)

    # -- progress ----------------------------------------------------------------------------
    def checkpoint(self, run_id: str, token: str, now: int, step: StepRecord, *,
                   progress: bool = False) -> dict[str, Any] | None:
        """Commit one step row, fenced on the lease (:class:`LeaseLost` writes nothing).
        ``progress`` also resets the run's crash and retry counters (the first checkpoint
        after executions died or the function was retried). Inside a caller's transaction
        (``step.transaction``) it joins that transaction. Returns the error of a
        cancellation requested meanwhile (:mod:`.cancellation`; the row is written all the
        same), else ``None``."""
        def write() -> str | None:
            if not step.failed:
                return self._checkpoint(run_id, token, now, step, progress)
            with self.db.atomic():  # a failure: the step row and its failed attempts
                requested = self._checkpoint(run_id, token, now, step, progress)
                self._log_attempts(run_id, [step])
                return requested

        requested = self._retrying(write)
        return json.loads(requested) if requested else None

    def _log_attempts(self, run_id: str, records: list[StepRecord]) -> None:
        """The failed attempts ``records`` log (``tj_step_attempts``), in the caller's
        transaction; nothing for records of attempts that did not fail."""
        rows = [(run_id, r.key, f.attempt, f.started_at, f.ended_at, f.retry_at, f.error)
                for r in records for f in r.failed]
        if rows:
            self.d.executemany(sql.INSERT_ATTEMPT, rows)

    @abc.abstractmethod
    def _checkpoint(self, run_id: str, token: str, now: int, step: StepRecord,
                    progress: bool) -> str | None:
        """One checkpoint attempt; returns the run's ``cancel_requested``."""

    def suspend(self, run: RunRow, token: str, now: int, pending: list[PendingOp], *,
                status: RunStatus, attempt: int, trigger: dict[str, Any],
                record: StepRecord | None = None) -> Parked:
        """Park the run on ``pending`` (each with its step row and timer; waits registered,
        invoked children started), with ``record`` (a finished step not yet committed)
        first — fenced on the lease and on the signal its acquire read, in one
        transaction. When only the signal moved, the run is queued again instead.

        Each wait registered looks back, in the same transaction and with event arrivals
        held (:meth:`_hold_event_arrivals`), for an event already received that it matches
        (:meth:`.waits.WaitStore.lookback`); one found resolves it at once, and the run is
        queued again (``requeued``) instead of staying parked. No event can arrive unseen
        between the look-back and the wait row."""

        waits = [op for op in pending if isinstance(op, WaitForEvent)]
        starts = any(isinstance(op, Invoke) and op.start for op in pending)

        def write() -> Parked:
            with self.db.atomic():
                if waits:
                    self._hold_event_arrivals(starts_runs=starts)
                parked = self._park(run, token, now, pending, status, attempt, record)
                if not parked:
                    requested = self.d.execute(sql.CANCEL_REQUESTED,
                                               (run.id, token, now)).fetchone()
                    if requested is not None and requested[0] is not None:
                        if record is not None:  # the step it finished is kept
                            self.d.execute(sql.UPSERT_STEP, (run.id,) + record.params())
                        woken = self._stop(run, token, now, requested[0])
                        return Parked(children=[], cancelled=True,
                                      woken=(woken,) if woken else ())
                    if not self._requeue(run.id, token, now):
                        raise self._lost(run.id, token)
                    return Parked(children=[], requeued=True)
                self._log_attempts(run.id, ([record] if record is not None else []) + [
                    op.record(now) for op in pending if isinstance(op, RetryStep)])
                children, matched = [], False
                for op in pending:
                    if isinstance(op, WaitForEvent):
                        wait_id = self.waits.register(
                            run_id=run.id, step_key=op.key, event_name=op.event,
                            expression=op.if_exp, trigger=trigger, expires_at=op.wake_at,
                            now=now)
                        found = self.waits.lookback(run.id, event_name=op.event,
                                                    expression=op.if_exp, trigger=trigger,
                                                    since=op.since, seen=op.seen)
                        if found is not None:
                            matched |= bool(self.waits.resolve_registered(
                                wait_id, run.id, op.key, found, now))
                    elif isinstance(op, Invoke) and op.start:
                        started = self.start([RunStart(
                            function_id=op.function_id, app_id=op.app_id,
                            event=Event(name=FUNCTION_INVOKED_EVENT, data=op.data),
                            unique_key=invoke_unique_key(run.id, op.key),
                            parent_run_id=run.id)], now)
                        children += [r for r in started if r]
                return Parked(children=children, requeued=matched)

        return self._retrying(write, run_id=run.id, token=token, final=True) or Parked([])

    @abc.abstractmethod
    def _hold_event_arrivals(self, *, starts_runs: bool) -> None:
        """First thing in a suspension that registers waits: from here to its commit, no
        event is being stored concurrently — every event whose write began earlier is
        committed (the look-back sees it) and every later one waits for this commit (its
        matching sees the wait row). ``starts_runs``: the same transaction will store
        events itself (invoked children)."""

    @abc.abstractmethod
    def _park(self, run: RunRow, token: str, now: int, pending: list[PendingOp],
              status: RunStatus, attempt: int, record: StepRecord | None) -> bool:
        """The fenced park (run row, step rows, timers); ``False`` when the fence refused."""

    def _requeue(self, run_id: str, token: str, now: int) -> bool:
        """The lease is still ours but the signal moved: queue the run again, due now."""
        return cast(bool, self.d.execute(sql.RELEASE, (now, False, run_id, token)).rowcount == 1)

    # -- the end -----------------------------------------------------------------------------
    def complete(self, run: RunRow, token: str, now: int, output: str, *,
                 record: StepRecord | None = None, cleanup: bool = False) -> str | None:
        """Fenced final write of a completed run, with ``record`` (its last step, not yet
        committed) in the same transaction; an invoked child's output goes to its parent's
        step and wakes the parent. ``cleanup`` (a function with ``cancel_on`` or
        ``timeouts``) also deletes the run's cancel matchers and deadlines. Returns the
        woken parent's id."""

        def write() -> str | None:
            with self._cleaning(run.id, cleanup):
                return self._end(run, now, RunStatus.COMPLETED, output, None, token=token,
                                 record=record)

        return cast("str | None", self._retrying(write, run_id=run.id, token=token, final=True))

    @contextlib.contextmanager
    def _cleaning(self, run_id: str, cleanup: bool) -> Iterator[None]:
        """Around a final write: with ``cleanup``, the run's waits go first and its timers
        last (the lock order), all in one transaction."""
        if not cleanup:
            yield
            return
        with self.db.atomic():
            self.d.execute(sql.DELETE_WAITS, (run_id,))
            yield
            self.d.execute(sql.DELETE_TIMERS, (run_id,))

    def fail(self, run: RunRow, token: str, now: int, error: dict[str, Any], *,
             failure_handler: Any = None, failure_event: dict[str, Any] | None = None,
             record: StepRecord | None = None, cleanup: bool = False) -> list[str]:
        """Fenced final write of a failed run, in one transaction with ``record``, the
        parent's invoke step failed and the parent woken (an invoked child), and the
        failure handler's run started (once: its unique key is ``failure:<run id>``).
        Returns the runs to enqueue."""
        error_text = json.dumps(error)

        def write() -> list[str]:
            with self.db.atomic(), self._cleaning(run.id, cleanup):
                woken = self._end(run, now, RunStatus.FAILED, None, error_text, token=token,
                                  record=record)
                started = []
                if failure_handler is not None:
                    started = self.start([RunStart(
                        function_id=failure_handler.id, app_id=failure_handler.app_id,
                        event=Event(name=FUNCTION_FAILED_EVENT,
                                    data=cast("dict[str, Any]", failure_event)),
                        unique_key=FAILURE_PREFIX + run.id, parent_run_id=run.id)], now)
                return [r for r in (woken, *started) if r]

        return self._retrying(write, run_id=run.id, token=token, final=True) or []

    def _end(self, run: RunRow, now: int, status: RunStatus, output: str | None,
             error: str | None, *, token: str | None, record: StepRecord | None = None
             ) -> str | None:
        """The final write (fenced by ``token``, or for any unfinished run when ``None``)
        and the parent's step; returns the parent's id when it was woken."""
        parent = Parent.of(run)
        failed = record is not None and bool(record.failed)
        if parent is None and not failed:
            if not self._finish(run.id, token, now, status, output, error, record):
                raise self._lost(run.id, token)
            return None
        with self.db.atomic():
            if not self._finish(run.id, token, now, status, output, error, record):
                raise self._lost(run.id, token)
            if record is not None:
                self._log_attempts(run.id, [record])
            return None if parent is None else self._resolve_parent(
                parent, status, output, error, now)

    @abc.abstractmethod
    def _finish(self, run_id: str, token: str | None, now: int, status: RunStatus,
                output: str | None, error: str | None, record: StepRecord | None) -> bool:
        """The final write of the run row (and ``record``); ``False`` when fenced off."""

    def _resolve_parent(self, parent: Parent, status: RunStatus, output: str | None,
                        error: str | None, now: int) -> str | None:
        return resolve_parent(self.d, parent, status, output, error, now)

    def stop_cancelled(self, run: RunRow, token: str, now: int,
                       error: dict[str, Any]) -> str | None:
        """The execution holding ``run`` found a cancellation requested (its last step is
        committed): the run ends ``cancelled`` with ``error``, fenced on the lease, its
        waits and timers deleted. Returns the woken parent (an invoked child)."""

        def write() -> str | None:
            with self.db.atomic():
                return self._stop(run, token, now, json.dumps(error))

        return cast("str | None", self._retrying(write, run_id=run.id, token=token, final=True))

    def _stop(self, run: RunRow, token: str, now: int, error_text: str) -> str | None:
        self.d.execute(sql.DELETE_WAITS, (run.id,))  # waits → runs → timers
        woken = self._end(run, now, RunStatus.CANCELLED, None, error_text, token=token)
        self.d.execute(sql.DELETE_TIMERS, (run.id,))
        return woken

    def request_cancel(self, run_id: str, now: int, error: dict[str, Any], *,
                       unstarted_only: bool = False, deadline: str | None = None) -> Cancelled:
        """Cancel ``run_id`` from outside its execution (``cancel_on``, ``timeouts``): at
        once, or, while a worker executes one of its steps, at that worker's next step
        boundary (:mod:`.cancellation`). Returns a :class:`~.cancellation.Cancelled`."""
        return self.waits.cancellation.cancel(run_id, now, error, unstarted_only=unstarted_only,
                                              deadline=deadline)

    def due_deadlines(self, now: int, limit: int) -> list[tuple[str, str, str]]:
        """``(run id, deadline key, function id)`` of the ``timeouts`` deadlines due."""
        return self.waits.cancellation.due_deadlines(now, limit)

    def started(self, run_id: str, started_at: int, function: Any) -> None:
        """A run of a function with ``timeouts`` executes: its start deadline goes, its
        finish deadline (``started_at`` + ``finish``) is set once."""
        self.waits.cancellation.register_started(run_id, started_at, function)

    def release(self, run_id: str, token: str, now: int, *, crashed: bool = False,
                delay_ms: int = 0) -> None:
        """Give the run back, queued again at ``now + delay_ms``. ``crashed`` keeps the
        execution counted as one that died (its attempt is charged on the next acquire)."""
        self._retrying(lambda: self.d.execute(sql.RELEASE, (now + delay_ms, crashed, run_id,
                                                            token)),
                       run_id=run_id, token=token, final=True)

    def release_orphans(self) -> int:
        """Give back every lease and pending wake-up a previous process of a single-process
        deployment (``tengo-jobs dev``) left behind; executions it had running still count
        as died (``inflight`` is kept). Returns how many runs."""
        return cast(int, self.d.execute(sql.RELEASE_ORPHANS).rowcount)

    # -- starting runs -----------------------------------------------------------------------
    def start(self, starts: list[RunStart], now: int) -> list[str | None]:
        """Start runs (cron ticks, failure handlers, invoked children, replays) through the
        admission (:mod:`.admission`): each run row with its event, copied steps and, when
        due later, its timer. A start whose ``unique_key`` exists starts nothing (``None``
        in its place). Joins the caller's transaction."""
        admitted = self.admission.admit(starts, now)
        out: list[str | None] = []
        with self.d.transaction():
            for a in admitted:
                if self.d.execute(sql.INSERT_RUN_ONCE, a.run_row()).rowcount != 1:
                    out.append(None)
                    continue
                if a.start.event is not None:
                    self.d.execute(sql.INSERT_EVENT,
                                   event_params(cast(str, a.event_id), a.start.event, now))
                if a.start.steps:
                    self.d.executemany(sql.INSERT_STEP,
                                       [(a.run_id,) + s.params() for s in a.start.steps])
                if a.enqueued_at is None:
                    self.d.execute(sql.INSERT_EVENT_TIMER, (a.run_id, a.due))
                if a.lifecycle is not None:
                    self.waits.cancellation.register(a.run_id, a.lifecycle, self._trigger(a),
                                                     a.due, now)
                out.append(a.run_id)
        return out

    # -- pausing a function ------------------------------------------------------------------
    def pause(self, function_id: str, now: int) -> bool:
        """Pause ``function_id`` from ``now``: its runs are still created, but neither the
        acquire nor the runnable predicate takes them (``statements.NOT_PAUSED``), in every
        process, until :meth:`resume`. An execution already under way finishes its current
        invocation (to its next park or its end). ``False`` when it was paused already (the
        first ``paused_at`` is kept)."""
        return cast(bool, self.d.execute(sql.PAUSE, (function_id, now)).rowcount == 1)

    def resume(self, function_id: str, now: int) -> list[str]:
        """Resume ``function_id``: the pause row is deleted and the function's due runs held
        by no live lease (queued while paused, or woken by a timer meanwhile) are returned
        oldest due first, marked as sent now, to enqueue after commit. Empty when it was
        not paused."""
        with self.d.transaction():
            if self.d.execute(sql.UNPAUSE, (function_id,)).rowcount != 1:
                return []
            ids = [r for (r,) in self.d.execute(sql.DUE_OF_FUNCTION, (function_id, now, now))]
            mark_sent(self.d, ids, now)
        return ids

    def skip_ticks(self, function_id: str, ticks: list[int]) -> bool:
        """Record ``ticks`` (cron ticks due now) as skipped when ``function_id`` is paused;
        ``False`` (nothing written) when it is not. Joins the caller's transaction."""
        if not ticks:
            return False
        return cast(bool, self.d.execute(sql.SKIP_TICKS, (len(ticks), max(ticks),
                                                          function_id)).rowcount == 1)

    def _trigger(self, admitted: Admitted) -> dict[str, Any]:
        """The triggering event of a run being started, as its cancel conditions see it."""
        if admitted.start.event is not None:
            return admitted.start.event.to_dict()
        row = self.d.execute(sql.SELECT_EVENT, (admitted.event_id,)).fetchone()
        if row is None:
            return {"name": "", "data": {}}
        return event_of(RunRow(event_id=admitted.event_id), row).to_dict()

    # -- from outside an execution -------------------------------------------------------------
    def cancel(self, run_id: str, now: int) -> tuple[RunRow | None, str | None]:
        """Cancel an unfinished run: final status ``cancelled``, its lease revoked (its
        worker stops at its next write, which the fence refuses), its timers and waits
        deleted; an invoked child fails its parent's step and wakes the parent. Returns the
        run as it was (``None`` if there is none) and the woken parent."""
        with self.db.atomic():
            run = RunRow.select().where(RunRow.id == run_id).first()
            if run is None or run.status.is_final:
                return run, None
            error = json.dumps({"name": "RunCancelled", "message": f"run {run_id} was cancelled"})
            # waits before runs (the lock order): an event resolving this wait right now
            # holds the wait and then wants the run
            self.d.execute(sql.DELETE_WAITS, (run_id,))
            try:
                woken = self._end(run, now, RunStatus.CANCELLED, None,
                                  error if Parent.of(run) else None, token=None)
            except LeaseLost:  # finished between the read and the write
                return RunRow.get_by_id(run_id), None
            self.d.execute(sql.DELETE_TIMERS, (run_id,))
        return run, woken


class EventStore(abc.ABC):
    """Events, their dedupe claims, the runs they start and the waits they resolve.

    :meth:`accept` is the intake's write, all or nothing: each event with an ``id`` claims
    it for 24 h (a repeat stores nothing and answers the original event's id); the event
    rows, and one run per triggered function through the admission (due now, or at a
    future ``ts`` with a timer); the waits the events resolve, found through their index
    (event name, ``data`` path, key), so the cost does not grow with the waiting runs.
    When it returns, the rows are durable."""

    def __init__(self, dialect: Dialect, waits: WaitStore, admission: Admission) -> None:
        self.d = dialect
        self.db = dialect.db
        self.waits = waits
        self.admission = admission

    @abc.abstractmethod
    def accept(self, batch: Iterable[tuple[Event, list[Any]]], now: int) -> Accepted:
        """Store ``batch`` (each event with the functions it triggers), all or nothing; a
        concurrent producer of the same event id makes one of the two a duplicate."""


class TimerStore(abc.ABC):
    """The scheduler's side: due timers, and the sweeper's view of the runs."""

    def __init__(self, dialect: Dialect):
        self.d = dialect
        self.db = dialect.db

    @abc.abstractmethod
    def fire_due(self, now: int, limit: int = 1_000) -> list[str]:
        """Claim up to ``limit`` due timers (sleeps, retry backoffs, future-dated events,
        wait and invoke timeouts): a finished sleep's step is completed, the run's signal
        moves and a parked run is queued. Returns the queued runs (to enqueue after
        commit). Safe to call from several schedulers at once."""

    def next_due(self) -> int | None:
        """When the earliest timer is due (epoch ms), or ``None``."""
        return cast("int | None", self.d.execute(sql.NEXT_DUE).fetchone()[0])

    def unsent(self, now: int, sent_before: int, limit: int) -> list[str]:
        """Due runs held by no live lease whose last wake-up was sent before ``sent_before``
        (or never), oldest due first; each is marked as sent now."""
        with self.d.transaction():
            ids = [r for (r,) in self.d.execute(sql.UNSENT, (now, now, sent_before, limit))]
            mark_sent(self.d, ids, now)
        return ids

    def runnable(self, now: int, limit: int = 100_000) -> list[str]:
        """Due runs held by no live lease, oldest first (the in-process tester drives these)."""
        return [r for (r,) in self.d.execute(sql.RUNNABLE_IDS, (now, now, limit))]


__all__ = ["RunStore", "EventStore", "TimerStore", "Acquired", "Parked", "RunStart", "Accepted",
           "Parent", "invoke_unique_key", "run_from_row", "step_from_row", "event_of",
           "event_params", "timer_rows", "mark_sent", "resolve_parent", "INVOKE_PREFIX",
           "FAILURE_PREFIX"]
