"""The run state machine: every write that moves a run, each written once.

A run is executed by one worker at a time. The worker *acquires* it, taking a lease
(an owner token and an expiry) in the run row, and every write it makes afterwards is
*fenced*: a conditional ``UPDATE … WHERE lease_owner = token AND lease_expires_at > now``
that refuses the write (:class:`~tengo_jobs.errors.LeaseLost`) once the lease was lost,
so a worker that stalled past its lease cannot overwrite the work of the one that took
over. The transitions (see the diagram in :mod:`.schema`):

- :meth:`RunStore.acquire` — queued → running, with the run, its event and its steps;
- :meth:`RunStore.checkpoint` — one step's result, before the next step starts;
- :meth:`RunStore.suspend` — running → sleeping / waiting (a sleep, a retry backoff, a
  wait for an event, an invoked child), with its timer;
- :meth:`RunStore.complete`, :meth:`RunStore.fail` — running → completed / failed; an
  invoked child hands its result to its parent and wakes it, a failure starts the
  ``on_failure`` handler's run, all in the same transaction;
- :meth:`RunStore.release` — running → queued (a worker shutting down, a function this
  worker does not know);
- :meth:`RunStore.wake` — sleeping / waiting → queued;
- :meth:`RunStore.cancel` — any unfinished state → cancelled (a cancelled child fails its
  parent's invoke step, so the parent resumes).

**Executions that die without a trace.** ``inflight`` counts the executions begun since
the run's last clean write: acquire adds one, a checkpoint sets it to 1 (this execution,
which made progress), suspend/complete/fail/release set it to 0. So an acquire that
finds it above 0 knows that many executions died since (SIGKILL, OOM, a segfault, a lost
database) without writing a step — :attr:`Acquired.unclean`. The executor charges those
attempts to the step that was running, and records the next attempt before it runs
(see :mod:`tengo_jobs.engine.steps`), so a step that kills its process is retried
``retries`` times and then fails, instead of forever; and the run itself fails when
executions keep dying outside any step. The common path pays nothing for this: the
count rides on statements that are made anyway.

**A lost database.** Each method's statements are retried across a lost connection
(reconnecting each time) for up to ``reconnect_window_ms``: the fenced writes are
idempotent for their owner (an acquire that may have committed can be repeated by the
same token, a step upsert writes the same row twice), and after an ambiguous failure a
final write first checks whether the run is still this worker's to write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Callable

import peewee as pw

from ..core.events import FUNCTION_FAILED_EVENT, Event
from ..errors import DatabaseUnavailableError, LeaseLost
from .connection import UNAVAILABLE_ERRORS
from .dialect import Dialect
from .schema import (EVENTS, FINAL_RUN_STATUSES, RUN_COLUMNS, RUNS, STEP_COLUMNS, STEPS, TIMERS,
                     WAITS, RunRow, RunStatus, StepKind, StepRow, StepStatus, TimerKind)

log = logging.getLogger(__name__)

INVOKE_PREFIX = "invoke:"
FAILURE_PREFIX = "failure:"

# The runnable predicate: due, and held by no live lease (two parameters: now, now).
RUNNABLE = ('"status" IN (\'queued\', \'running\') AND "wake_at" <= ? '
            'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < ?)')

_Q = ", ".join(f'"{c}"' for c in RUN_COLUMNS)
_S = ", ".join(f'"{c}"' for c in STEP_COLUMNS)

_ACQUIRE = (
    f'UPDATE "{RUNS}" SET "status" = \'running\', "lease_owner" = ?, "lease_expires_at" = ?, '
    '"started_at" = COALESCE("started_at", ?), '
    '"inflight" = CASE WHEN "lease_owner" = ? THEN "inflight" ELSE "inflight" + 1 END '
    'WHERE "id" = ? AND "status" IN (\'queued\', \'running\') AND "wake_at" <= ? '
    'AND ("lease_expires_at" IS NULL OR "lease_expires_at" < ? OR "lease_owner" = ?)')
_PG_ACQUIRE_AND_LOAD = (
    f'WITH r AS ({_ACQUIRE} RETURNING *) SELECT '
    + ", ".join(f'r."{c}"' for c in RUN_COLUMNS) + ', '
    'e."name", e."data", e."external_id", e."ts", e."v", e."user", '
    + ", ".join(f's."{c}"' for c in STEP_COLUMNS)
    + f' FROM r LEFT JOIN "{EVENTS}" e ON e."id" = r."event_id" '
    f'LEFT JOIN "{STEPS}" s ON s."run_id" = r."id"')
_SQLITE_ACQUIRE = f"{_ACQUIRE} RETURNING {_Q}"
_SELECT_STEPS = f'SELECT {_S} FROM "{STEPS}" WHERE "run_id" = ?'
_SELECT_EVENT = f'SELECT "name", "data", "external_id", "ts", "v", "user" FROM "{EVENTS}" WHERE "id" = ?'

_FENCE = 'WHERE "id" = ? AND "lease_owner" = ? AND "lease_expires_at" > ?'
_RENEW = f'UPDATE "{RUNS}" SET "lease_expires_at" = ? {_FENCE}'
_PROGRESS = f'UPDATE "{RUNS}" SET "lease_expires_at" = ?, "inflight" = 1, "attempt" = 0 {_FENCE}'
_UPSERT_STEP_TAIL = (
    ' ON CONFLICT ("run_id", "key") DO UPDATE SET "name" = EXCLUDED."name", '
    '"kind" = EXCLUDED."kind", "position" = EXCLUDED."position", "status" = EXCLUDED."status", '
    '"attempts" = EXCLUDED."attempts", "output" = EXCLUDED."output", "error" = EXCLUDED."error", '
    '"started_at" = EXCLUDED."started_at", "ended_at" = EXCLUDED."ended_at", '
    '"wake_at" = EXCLUDED."wake_at"')
_STEP_INSERT = f'INSERT INTO "{STEPS}" ({_S}) '
_UPSERT_STEP = _STEP_INSERT + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _UPSERT_STEP_TAIL
_PG_CHECKPOINT = (f'WITH fence AS ({_PROGRESS} RETURNING "id") ' + _STEP_INSERT
                  + 'SELECT "id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM fence' + _UPSERT_STEP_TAIL)

_PARK = (f'UPDATE "{RUNS}" SET "status" = ?, "wake_at" = ?, "lease_owner" = NULL, '
         '"lease_expires_at" = NULL, "enqueued_at" = NULL, "attempt" = ?, "inflight" = 0 ')
_UPSERT_TIMER = (f'INSERT INTO "{TIMERS}" ("run_id", "due_at", "kind") VALUES (?, ?, ?) '
                 'ON CONFLICT ("run_id") DO UPDATE SET "due_at" = EXCLUDED."due_at", '
                 '"kind" = EXCLUDED."kind"')
_PG_PARK = (f'WITH fence AS ({_PARK}{_FENCE} RETURNING "id") '
             f'INSERT INTO "{TIMERS}" ("run_id", "due_at", "kind") SELECT "id", ?, ? FROM fence '
             'ON CONFLICT ("run_id") DO UPDATE SET "due_at" = EXCLUDED."due_at", '
             '"kind" = EXCLUDED."kind"')
_PG_SUSPEND = (
    f'WITH fence AS ({_PARK}{_FENCE} RETURNING "id"), '
    f'st AS ({_STEP_INSERT}SELECT "id", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM fence'
    f'{_UPSERT_STEP_TAIL}) '
    f'INSERT INTO "{TIMERS}" ("run_id", "due_at", "kind") SELECT "id", ?, ? FROM fence '
    'ON CONFLICT ("run_id") DO UPDATE SET "due_at" = EXCLUDED."due_at", "kind" = EXCLUDED."kind"')

# The final write of a run; the fenced form for its executor, the other for cancel.
_END = (f'UPDATE "{RUNS}" SET "status" = ?, "output" = ?, "error" = ?, "ended_at" = ?, '
        '"lease_owner" = NULL, "lease_expires_at" = NULL, "enqueued_at" = NULL, "inflight" = 0 ')
_END_FENCED = _END + _FENCE
_END_UNFINISHED = (_END + 'WHERE "id" = ? AND "status" NOT IN ('
                   + ", ".join(f"'{s}'" for s in FINAL_RUN_STATUSES) + ")")
# An invoked child's result into its parent's step, and the parent woken (runs, then steps,
# then timers: the lock order every transition keeps).
_WAKE_PARENT = (
    f'UPDATE "{RUNS}" SET "status" = \'queued\', "wake_at" = ?, "enqueued_at" = ? '
    'WHERE "id" = ? AND "status" = \'waiting\' AND EXISTS (SELECT 1 FROM "' + STEPS + '" '
    'WHERE "run_id" = ? AND "key" = ? AND "status" = \'waiting\')')
_PARENT_STEP = (f'UPDATE "{STEPS}" SET "status" = ?, "output" = ?, "error" = ?, "ended_at" = ?, '
                '"attempts" = 1 WHERE "run_id" = ? AND "key" = ? AND "status" = \'waiting\'')
_PG_END_WITH_PARENT = (
    'WITH r AS ({end} RETURNING "id"), '
    f'pr AS ({_WAKE_PARENT} AND EXISTS (SELECT 1 FROM r) RETURNING "id"), '
    f'ps AS ({_PARENT_STEP} AND EXISTS (SELECT 1 FROM pr) RETURNING "run_id"), '
    f'pt AS (DELETE FROM "{TIMERS}" WHERE "run_id" IN (SELECT "id" FROM pr)) '
    'SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM pr)')

_RELEASE = (f'UPDATE "{RUNS}" SET "lease_owner" = NULL, "lease_expires_at" = NULL, '
            '"status" = \'queued\', "enqueued_at" = NULL, "wake_at" = ?, '
            '"inflight" = CASE WHEN ? THEN "inflight" ELSE 0 END '
            'WHERE "id" = ? AND "lease_owner" = ?')
_OWNER = f'SELECT "lease_owner" FROM "{RUNS}" WHERE "id" = ?'


@dataclasses.dataclass
class Acquired:
    """A run this worker now holds: the row, its triggering event, its stored steps, and
    how many executions before this one died without a trace (see the module docstring)."""

    run: RunRow
    event: Event
    steps: list[StepRow]
    unclean: int


@dataclasses.dataclass(frozen=True)
class StepWrite:
    """One step row as a checkpoint writes it."""

    key: str
    name: str
    kind: StepKind
    position: int
    status: StepStatus
    attempts: int
    started_at: int | None
    ended_at: int | None
    output: str | None = None
    error: str | None = None
    wake_at: int | None = None

    def params(self) -> tuple:
        return (self.key, self.name, self.kind.value, self.position, self.status.value,
                self.attempts, self.output, self.error, self.started_at, self.ended_at,
                self.wake_at)

    def row(self, run_id: str) -> StepRow:
        return StepRow(run_id=run_id, key=self.key, name=self.name, kind=self.kind,
                       position=self.position, status=self.status, attempts=self.attempts,
                       output=self.output, error=self.error, started_at=self.started_at,
                       ended_at=self.ended_at, wake_at=self.wake_at)


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


def run_from_row(values) -> RunRow:
    fields = dict(zip(RunRow._meta.sorted_field_names, values))
    fields["status"] = RunStatus(fields["status"])
    return RunRow(**fields)


def step_from_row(values) -> StepRow:
    fields = dict(zip(StepRow._meta.sorted_field_names, values))
    fields["kind"], fields["status"] = StepKind(fields["kind"]), StepStatus(fields["status"])
    return StepRow(**fields)


def _event(run: RunRow, row) -> Event:
    if run.event_id is None:
        return Event(name="", data={})
    if row is None or row[0] is None:
        return Event(name="", data={}, id=run.event_id)
    name, data, external_id, ts, v, user = row
    return Event(name=name, data=json.loads(data), id=external_id or run.event_id, ts=ts, v=v,
                 user=json.loads(user) if user else None)


class RunStore:
    """The run transitions of the module docstring, on one database."""

    def __init__(self, dialect: Dialect, *, lease_ttl_ms: int, reconnect_window_ms: int,
                 start_run: Callable[..., str | None]):
        self.d = dialect
        self.db = dialect.db
        self.lease_ttl_ms = lease_ttl_ms
        self.reconnect_window_ms = reconnect_window_ms
        self._start_run = start_run  # EventStore.start_run: failure handlers, invoked children

    # -- surviving a lost connection --------------------------------------------------------
    def _retrying(self, write: Callable[[], Any], *, run_id: str | None = None,
                  token: str | None = None, final: bool = False):
        """Call ``write``; across a lost connection, reconnect and call it again (see the
        module docstring). With ``final``, an ambiguous failure is followed by a check that
        the run is still ``token``'s to write; if it is not, the write happened or another
        worker took over, and either way this worker is done (``None`` is returned)."""
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
                        owner = self.d.execute(_OWNER, (run_id,)).fetchone()
                    except UNAVAILABLE_ERRORS:
                        continue
                    if owner is None or owner[0] != token:
                        return None

    # -- acquire ------------------------------------------------------------------------------
    def acquire(self, run_id: str, token: str, now: int) -> Acquired | None:
        """Take the lease of ``run_id`` if it is due and free: the run, its event and its
        steps (one round trip on PostgreSQL); ``None`` if the run is not this worker's to run.
        The same token may acquire again (a retry after a lost reply)."""
        params = (token, now + self.lease_ttl_ms, now, token, run_id, now, now, token)
        return self._retrying(lambda: self._acquire(run_id, params))

    def _acquire(self, run_id: str, params: tuple) -> Acquired | None:
        n = len(RUN_COLUMNS)
        if self.d.postgres:
            rows = self.d.execute(_PG_ACQUIRE_AND_LOAD, params).fetchall()
            if not rows:
                return None
            run = run_from_row(rows[0][:n])
            event = _event(run, rows[0][n:n + 6])
            steps = [step_from_row(r[n + 6:]) for r in rows if r[n + 6] is not None]
        else:
            with self.d.transaction():
                rows = self.d.execute(_SQLITE_ACQUIRE, params).fetchall()  # ends the statement
                if not rows:
                    return None
                run = run_from_row(rows[0])
                steps = [step_from_row(r) for r in self.d.execute(_SELECT_STEPS, (run_id,))]
                event_row = (self.d.execute(_SELECT_EVENT, (run.event_id,)).fetchone()
                             if run.event_id is not None else None)
            event = _event(run, event_row)
        return Acquired(run=run, event=event, steps=steps, unclean=max(0, run.inflight - 1))

    def renew(self, run_id: str, token: str, now: int) -> bool:
        """Extend a held lease (the lease keeper); ``False`` if it is no longer held."""
        cursor = self.d.execute(_RENEW, (now + self.lease_ttl_ms, run_id, token, now))
        return cursor.rowcount == 1

    # -- progress -------------------------------------------------------------------------------
    def checkpoint(self, run_id: str, token: str, now: int, step: StepWrite) -> None:
        """Commit one step row and renew the lease, fenced; :class:`LeaseLost` writes nothing.
        Inside a caller's transaction (``step.transaction``) it joins that transaction."""
        fence = (now + self.lease_ttl_ms, run_id, token, now)
        self._retrying(lambda: self._checkpoint(run_id, token, fence, step.params()))

    def _checkpoint(self, run_id, token, fence, step_params) -> None:
        if self.d.postgres:
            if self.d.execute(_PG_CHECKPOINT, fence + step_params).rowcount != 1:
                raise LeaseLost(f"run {run_id}: lease lost by {token}")
            return
        with self.d.transaction():
            if self.d.execute(_PROGRESS, fence).rowcount != 1:
                raise LeaseLost(f"run {run_id}: lease lost by {token}")
            self.d.execute(_UPSERT_STEP, (run_id,) + step_params)

    def suspend(self, run: RunRow, token: str, now: int, step: StepWrite | None, *,
                status: RunStatus, wake_at: int | None = None,
                timer: TimerKind, attempt: int, wait: Callable[[], None] | None = None,
                child: Callable[[], str | None] | None = None) -> str | None:
        """Park the run until ``step.wake_at`` (or ``wake_at`` without a step: a retry of the
        whole function): the step row, the run's status and a timer, fenced and in one
        transaction; ``wait``/``child`` add a wait row or start an invoked child in it.
        Returns the child's run id (to enqueue after commit)."""
        wake_at = step.wake_at if step is not None else wake_at
        park = (status.value, wake_at, attempt, run.id, token, now)
        timer_params = (wake_at, timer.value)

        def write():
            with self.db.atomic():
                if self.d.postgres and step is None:
                    fenced = self.d.execute(_PG_PARK, park + timer_params).rowcount
                elif self.d.postgres:
                    fenced = self.d.execute(_PG_SUSPEND, park + step.params() + timer_params).rowcount
                else:
                    fenced = self.d.execute(_PARK + _FENCE, park).rowcount
                    if fenced == 1:
                        if step is not None:
                            self.d.execute(_UPSERT_STEP, (run.id,) + step.params())
                        self.d.execute(_UPSERT_TIMER, (run.id,) + timer_params)
                if fenced != 1:
                    raise LeaseLost(f"run {run.id}: lease lost by {token}")
                if wait is not None:
                    wait()
                return child() if child is not None else None

        return self._retrying(write, run_id=run.id, token=token, final=True)

    # -- the end ----------------------------------------------------------------------------
    def complete(self, run: RunRow, token: str, now: int, output: str) -> None:
        """Fenced final write of a completed run; an invoked child's output goes to its
        parent's step and wakes the parent, in the same statement. Returns the woken parent."""
        return self._retrying(
            lambda: self._end(run, now, RunStatus.COMPLETED, output, None, token=token),
            run_id=run.id, token=token, final=True)

    def fail(self, run: RunRow, token: str, now: int, error: dict, *,
             failure_handler=None, failure_event: dict | None = None) -> list[str]:
        """Fenced final write of a failed run, in one transaction with: the parent's invoke
        step failed and the parent woken (an invoked child), and the failure handler's run
        started (once: its unique key is ``failure:<run id>``). Returns the runs to enqueue."""
        error_text = json.dumps(error)

        def write():
            with self.db.atomic():
                woken = self._end(run, now, RunStatus.FAILED, None, error_text, token=token)
                started = None
                if failure_handler is not None:
                    started = self._start_run(
                        failure_handler, Event(name=FUNCTION_FAILED_EVENT, data=failure_event),
                        now=now, unique_key=FAILURE_PREFIX + run.id, parent_run_id=run.id)
                return [r for r in (woken, started) if r]

        return self._retrying(write, run_id=run.id, token=token, final=True) or []

    def _end(self, run: RunRow, now: int, status: RunStatus, output: str | None,
             error: str | None, *, token: str | None) -> str | None:
        """The final write (fenced by ``token``, or for any unfinished run when ``None``) and
        the parent's step; returns the parent's id when it was woken."""
        end = (status.value, output, error, now)
        where = (run.id, token, now) if token is not None else (run.id,)
        parent = Parent.of(run)
        if parent is None:
            if self.d.execute(_END_FENCED if token else _END_UNFINISHED, end + where).rowcount != 1:
                raise LeaseLost(f"run {run.id}: lease lost by {token}")
            return None
        step_status = StepStatus.COMPLETED if status == RunStatus.COMPLETED else StepStatus.FAILED
        wake = (now, now, parent.run_id, parent.run_id, parent.step_key)
        step = (step_status.value, output, error, now, parent.run_id, parent.step_key)
        if self.d.postgres:
            statement = _PG_END_WITH_PARENT.format(end=_END_FENCED if token else _END_UNFINISHED)
            ended, woken = self.d.execute(statement, end + where + wake + step).fetchone()
            if ended != 1:
                raise LeaseLost(f"run {run.id}: lease lost by {token}")
            return parent.run_id if woken else None
        with self.d.transaction():
            if self.d.execute(_END_FENCED if token else _END_UNFINISHED, end + where).rowcount != 1:
                raise LeaseLost(f"run {run.id}: lease lost by {token}")
            if self.d.execute(_WAKE_PARENT, wake).rowcount != 1:
                return None
            self.d.execute(_PARENT_STEP, step)
            self.d.execute(f'DELETE FROM "{TIMERS}" WHERE "run_id" = ?', (parent.run_id,))
        return parent.run_id

    def release(self, run_id: str, token: str, now: int, *, crashed: bool = False,
                delay_ms: int = 0) -> None:
        """Give the run back, queued again at ``now + delay_ms``. ``crashed`` keeps the
        execution counted as one that died (its attempt is charged on the next acquire)."""
        self._retrying(lambda: self.d.execute(_RELEASE, (now + delay_ms, crashed, run_id, token)),
                       run_id=run_id, token=token, final=True)

    def release_orphans(self) -> int:
        """Give back every lease and pending wake-up a previous process of a single-process
        deployment (``tengo-jobs dev``) left behind; executions it had running still count
        as died (``inflight`` is kept). Returns how many runs."""
        return self.d.execute(
            f'UPDATE "{RUNS}" SET "status" = \'queued\', "lease_owner" = NULL, '
            '"lease_expires_at" = NULL, "enqueued_at" = NULL '
            'WHERE "status" IN (\'queued\', \'running\') '
            'AND ("lease_owner" IS NOT NULL OR "enqueued_at" IS NOT NULL)').rowcount

    # -- from outside an execution ------------------------------------------------------------
    def wake(self, run_ids: list[str], now: int) -> None:
        """Waiting runs to queued, due now, their timers gone (inside the caller's transaction)."""
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            self.d.execute(f'UPDATE "{RUNS}" SET "status" = \'queued\', "wake_at" = ?, '
                           f'"enqueued_at" = ? WHERE "id" IN ({marks}) AND "status" = \'waiting\'',
                           (now, now, *chunk))
            self.d.execute(f'DELETE FROM "{TIMERS}" WHERE "run_id" IN ({marks})', tuple(chunk))

    def cancel(self, run_id: str, now: int) -> tuple[RunRow | None, str | None]:
        """Cancel an unfinished run: final status ``cancelled``, its lease revoked (its worker
        stops at its next checkpoint, which the fence refuses), its timer and wait deleted; an
        invoked child fails its parent's step and wakes the parent. Returns the run as it was
        (``None`` if there is none) and the woken parent."""
        with self.db.atomic():
            run = RunRow.select().where(RunRow.id == run_id).first()
            if run is None or run.status.is_final:
                return run, None
            error = json.dumps({"name": "RunCancelled", "message": f"run {run_id} was cancelled"})
            # waits before runs (the lock order): an event resolving this wait right now
            # holds the wait and then wants the run
            self.d.execute(f'DELETE FROM "{WAITS}" WHERE "run_id" = ?', (run_id,))
            try:
                woken = self._end(run, now, RunStatus.CANCELLED, None,
                                  error if Parent.of(run) else None, token=None)
            except LeaseLost:  # finished between the read and the write
                return RunRow.get_by_id(run_id), None
            self.d.execute(f'DELETE FROM "{TIMERS}" WHERE "run_id" = ?', (run_id,))
        return run, woken
