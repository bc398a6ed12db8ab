"""The system schema, written down in one module (as DBOS keeps its system schema).

Tables: events, event_dedupe, runs, steps (keyed by run + step key), timers, waits,
wait_keys, cron_state and paused_functions. Statuses are ``str`` Enums, times are epoch milliseconds,
JSON is stored as text so SQLite and PostgreSQL hold the same bytes.

The classes here are Peewee models named ``…Row`` (a stored event is an
:class:`EventRow`; :class:`tengo_jobs.Event` is what producers send). Only the store
package reads and writes them. All models are bound to :data:`database_proxy`, which
:func:`tengo_jobs.store.connection.open_database` initializes; applications derive their
own tables from :class:`AppModel` and list them in their :class:`~tengo_jobs.Extension`.

The statuses are :mod:`tengo_jobs.core.states` (re-exported here); the life of a run is
drawn there, and its transitions are the store contract's (:mod:`.contract`).
"""

from __future__ import annotations

import enum
from typing import Any

import peewee as pw

from ..core.states import FINAL_RUN_STATUSES as FINAL_RUN_STATUSES
from ..core.states import RUN_STATUSES as RUN_STATUSES
from ..core.states import RunStatus as RunStatus
from ..core.states import StepKind as StepKind
from ..core.states import StepStatus as StepStatus
from ..core.states import TimerKind as TimerKind

database_proxy = pw.DatabaseProxy()


class EnumField(pw.CharField):
    """Stores a ``str`` Enum by value and gives the Enum back."""

    def __init__(self, enum_class: type[enum.Enum], *args: Any, **kwargs: Any) -> None:
        self.enum_class = enum_class
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return self.enum_class(value).value

    def python_value(self, value: Any) -> Any:
        return None if value is None else self.enum_class(value)


class AppModel(pw.Model):
    """Base class of every table in the jobs database: the system tables below and an
    application's own (list them in its :class:`~tengo_jobs.Extension` to have them migrated)."""

    class Meta:
        database = database_proxy
        legacy_table_names = False


class EventRow(AppModel):
    id = pw.CharField(primary_key=True, max_length=32)
    name = pw.CharField(max_length=256, index=True)
    data = pw.TextField()  # JSON object
    user = pw.TextField(null=True)  # JSON object
    external_id = pw.CharField(max_length=256, null=True, index=True)
    ts = pw.BigIntegerField()  # when it happened / when its runs are due (ms)
    v = pw.CharField(max_length=64, null=True)
    received_at = pw.BigIntegerField(index=True)
    # The W3C traceparent it was sent with (migration 0012): its runs continue that trace.
    traceparent = pw.CharField(max_length=64, null=True)

    class Meta:
        table_name = "tj_events"


class DedupeRow(AppModel):
    """One row per user-supplied event id; a repeat within ``expires_at`` is a duplicate.
    Expired rows are deleted by the pruning (``store/retention.py``)."""

    key = pw.CharField(primary_key=True, max_length=300)
    event_id = pw.CharField(max_length=32)
    expires_at = pw.BigIntegerField(index=True)  # index: migration 0009

    class Meta:
        table_name = "tj_event_dedupe"


class RunRow(AppModel):
    id = pw.CharField(primary_key=True, max_length=32)
    app_id = pw.CharField(max_length=128)
    function_id = pw.CharField(max_length=128)
    event_id = pw.CharField(max_length=32, null=True, index=True)
    status = EnumField(RunStatus)
    output = pw.TextField(null=True)
    error = pw.TextField(null=True)  # JSON {name, message}
    attempt = pw.IntegerField(default=0)
    created_at = pw.BigIntegerField(index=True)
    started_at = pw.BigIntegerField(null=True)
    ended_at = pw.BigIntegerField(null=True)
    wake_at = pw.BigIntegerField()  # not to be executed before this
    enqueued_at = pw.BigIntegerField(null=True)  # last wake-up message sent
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_expires_at = pw.BigIntegerField(null=True)
    unique_key = pw.CharField(max_length=300, null=True, unique=True)
    parent_run_id = pw.CharField(max_length=32, null=True)
    # Executions begun since the run's last write that ended them or recorded progress:
    # 1 while one executes; more means executions died without a trace (see contract.py).
    inflight = pw.IntegerField(default=0)
    # Bumped by every change made from outside an execution to a pending operation (a
    # timer fired, a wait resolved, a child ended): a suspension fenced on the value its
    # acquire read cannot park a run whose pending operations moved meanwhile.
    signal = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    # A replay names the run it replays and how (JSON: from_step, what it changed); see
    # migration m0004 and ``Control.replay``.
    replay_of = pw.CharField(max_length=32, null=True)
    replay_note = pw.TextField(null=True)
    # A cancellation (``cancel_on``, ``timeouts``) that reached the run while a step executed:
    # the run's error, JSON; the execution stops at its next step boundary.
    cancel_requested = pw.TextField(null=True)
    # The caller's W3C traceparent (its event's; migration 0012): the run's trace continues it.
    traceparent = pw.CharField(max_length=64, null=True)

    class Meta:
        table_name = "tj_runs"
        # As migration 0003 left them: (function_id, created_at), (status, id), and a partial
        # index on wake_at over unfinished runs (written in the migration, not here); 0009
        # adds partial indexes on ended_at and parent_run_id (retention), also there only.
        indexes = ((("function_id", "created_at"), False), (("status", "id"), False))


class StepRow(AppModel):
    run_id = pw.CharField(max_length=32)
    key = pw.CharField(max_length=300)
    name = pw.CharField(max_length=256)
    kind = EnumField(StepKind)
    position = pw.IntegerField()
    status = EnumField(StepStatus)
    attempts = pw.IntegerField(default=0)
    output = pw.TextField(null=True)
    error = pw.TextField(null=True)
    started_at = pw.BigIntegerField(null=True)
    ended_at = pw.BigIntegerField(null=True)
    wake_at = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "tj_steps"
        primary_key = pw.CompositeKey("run_id", "key")


class StepAttemptRow(AppModel):
    """A failed attempt of a step (migration 0015), written with the step row that records
    the failure; a successful attempt writes none (its times are the step row's). ``error``:
    JSON; ``retry_at``: when the next attempt was due (the end of the backoff)."""

    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    attempt = pw.IntegerField()
    started_at = pw.BigIntegerField(null=True)
    ended_at = pw.BigIntegerField(null=True)
    retry_at = pw.BigIntegerField(null=True)
    error = pw.TextField(null=True)

    class Meta:
        table_name = "tj_step_attempts"
        primary_key = pw.CompositeKey("run_id", "step_key", "attempt")


class TimerRow(AppModel):
    """A wake-up the scheduler owes a run, one per pending step (``step_key``; ``''`` for
    the run itself: a retry of the whole function, a future-dated event); claimed
    (deleted) when fired."""

    id = pw.AutoField()
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300, default="", constraints=[pw.SQL("DEFAULT ''")])
    due_at = pw.BigIntegerField(index=True)
    kind = EnumField(TimerKind)

    class Meta:
        table_name = "tj_timers"
        indexes = ((("run_id", "step_key"), True),)


class WaitRow(AppModel):
    """A run waiting for an event (``step.wait_for_event``), or listening for one that
    cancels it (``cancel_on``: ``kind`` 'cancel'); resolved by the intake.

    ``match_path``/``match_key`` index the condition's equality (see
    :mod:`tengo_jobs.core.expressions`): the path in the incoming event's ``data`` and the
    key the waiting run's trigger holds; ``exact`` when the equality is the whole condition.
    """

    id = pw.AutoField()
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    event_name = pw.CharField(max_length=256, index=True)
    expression = pw.TextField(null=True)  # CEL over `event` and `async`
    match_event = pw.TextField()  # the waiting run's triggering event, JSON
    expires_at = pw.BigIntegerField()
    created_at = pw.BigIntegerField()
    match_path = pw.CharField(max_length=300, null=True)
    match_key = pw.CharField(max_length=300, null=True)
    exact = pw.BooleanField(default=False)
    # 'step' (a step.wait_for_event) or 'cancel' (a cancel_on matcher, key ``cancel:<n>``).
    kind = pw.CharField(max_length=16, default="step", constraints=[pw.SQL("DEFAULT 'step'")])

    class Meta:
        table_name = "tj_waits"
        indexes = ((("run_id", "step_key"), True),
                   (("event_name", "match_path", "match_key"), False))


class WaitKeyRow(AppModel):
    """The ``data`` paths that waits on an event name are indexed by (a handful per name)."""

    event_name = pw.CharField(max_length=256)
    match_path = pw.CharField(max_length=300)

    class Meta:
        table_name = "tj_wait_keys"
        primary_key = pw.CompositeKey("event_name", "match_path")


class CronStateRow(AppModel):
    """The last tick each cron function was scheduled for (epoch ms)."""

    function_id = pw.CharField(primary_key=True, max_length=128)
    last_tick_ms = pw.BigIntegerField()
    updated_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_cron_state"


class PausedFunctionRow(AppModel):
    """A paused function (``POST /api/functions/<id>/pause``): its runs are created but not
    executed until it is resumed (the row deleted)."""

    function_id = pw.CharField(primary_key=True, max_length=128)
    paused_at = pw.BigIntegerField()
    # cron ticks the scheduler skipped while paused (not started on resume either)
    skipped_ticks = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    last_skipped_tick = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "tj_paused_functions"


class FlowKeyRow(AppModel):
    """The state of one admission rule for one key value of a function (migration 0007):
    an idempotency claim, a rate limit's GCRA arrival time (``value``), the singleton's
    holder, the debounce's pending run or the open batch (``run_id``; ``value`` its size,
    ``first_at`` its first event)."""

    function_id = pw.CharField(max_length=128)
    kind = pw.CharField(max_length=16)
    key = pw.CharField(max_length=300)
    run_id = pw.CharField(max_length=32, null=True)
    value = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    first_at = pw.BigIntegerField(null=True)
    expires_at = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "tj_flow_keys"
        primary_key = pw.CompositeKey("function_id", "kind", "key")


class SkipRow(AppModel):
    """Why an event started no run of a function (``reason``: ``rate_limit``,
    ``idempotency``, ``singleton``), or the run it was folded into (``debounced``,
    ``batched``; ``run_id``)."""

    id = pw.AutoField()
    event_id = pw.CharField(max_length=32, index=True)
    function_id = pw.CharField(max_length=128)
    reason = pw.CharField(max_length=16)
    run_id = pw.CharField(max_length=32, null=True)
    at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_skips"
        indexes = ((("function_id", "at"), False),)


class BatchEventRow(AppModel):
    """The events of a ``batch_events`` run, in order (``ctx.events``)."""

    run_id = pw.CharField(max_length=32)
    position = pw.IntegerField()
    event_id = pw.CharField(max_length=32, index=True)  # index: migration 0009 (retention)

    class Meta:
        table_name = "tj_batch_events"
        primary_key = pw.CompositeKey("run_id", "position")


class SlotKeyRow(AppModel):
    """A concurrency scope key: its current limit, its round-robin turn (fair keys), its
    slot counter and whether runs may wait on it. See ``migrations/m0008_capacity.py`` and
    ``migrations/m0011_slot_counters.py``."""

    scope_key = pw.CharField(primary_key=True, max_length=300)
    capacity = pw.IntegerField()
    served = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    used = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    waiting = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    solo = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])

    class Meta:
        table_name = "tj_slot_keys"


class SlotRow(AppModel):
    """A concurrency slot held by an executing run; a lease like the run's."""

    scope_key = pw.CharField(max_length=300)
    run_id = pw.CharField(max_length=32, index=True)
    lease_expires_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_slots"
        primary_key = pw.CompositeKey("scope_key", "run_id")


class SlotWaiterRow(AppModel):
    """A queued run refused a slot, waiting on one scope key in ``queue_at`` order."""

    run_id = pw.CharField(primary_key=True, max_length=32)
    scope_key = pw.CharField(max_length=300)
    queue_at = pw.BigIntegerField()
    fair_key = pw.CharField(max_length=300, null=True)
    since = pw.BigIntegerField()

    class Meta:
        table_name = "tj_slot_waiters"
        indexes = ((("scope_key", "queue_at"), False),)


class ThrottleRow(AppModel):
    """GCRA state of one throttle key: its theoretical arrival time (epoch ms)."""

    key = pw.CharField(primary_key=True, max_length=300)
    tat = pw.BigIntegerField()

    class Meta:
        table_name = "tj_throttles"


class HeartbeatRow(AppModel):
    """A worker or scheduler process, as it last said it was alive (migration 0009)."""

    host = pw.CharField(max_length=255)
    pid = pw.IntegerField()
    kind = pw.CharField(max_length=16)
    version = pw.CharField(max_length=64)
    threads_busy = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    started_at = pw.BigIntegerField()
    last_seen = pw.BigIntegerField(index=True)
    interval_ms = pw.IntegerField()

    class Meta:
        table_name = "tj_heartbeats"
        primary_key = pw.CompositeKey("host", "pid")


class MaintenanceRow(AppModel):
    """The last result of a maintenance duty (``prune``): when, and what it did (JSON)."""

    name = pw.CharField(primary_key=True, max_length=32)
    ran_at = pw.BigIntegerField()
    detail = pw.TextField()

    class Meta:
        table_name = "tj_maintenance"


class CounterRow(AppModel):
    """Monotonic totals of ended runs per function, spread over ``shard`` rows (sum them):
    added to by a trigger in the transaction that ends a run (migration 0012, where the
    trigger is written; ``store/counters.py`` reads them)."""

    function_id = pw.CharField(max_length=128)
    shard = pw.IntegerField()
    completed = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    failed = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    cancelled = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    started = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    output_bytes = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])

    class Meta:
        table_name = "tj_counters"
        primary_key = pw.CompositeKey("function_id", "shard")


class SdkAppRow(AppModel):
    """An Inngest SDK app synced with ``POST /fn/register`` (migration 0010): its serve URL,
    SDK, framework, the function configurations it sent (JSON) and what the sync refused."""

    app_id = pw.CharField(primary_key=True, max_length=128)
    url = pw.TextField()
    sdk = pw.CharField(max_length=64)
    framework = pw.CharField(max_length=64)
    functions = pw.TextField()
    unsupported = pw.TextField()
    synced_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_apps"


# The upper bounds (ms) of the performance histograms' buckets; the last bucket is open.
# The same tuple is frozen in migration 0013, which made the columns.
STATS_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
                   120_000, 300_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000,
                   86_400_000)


def hist_columns(prefix: str) -> tuple[str, ...]:
    """A histogram's column names: ``d00`` … ``d21`` for ``prefix`` ``"d"``."""
    return tuple(f"{prefix}{i:02d}" for i in range(len(STATS_BOUNDS_MS) + 1))


def _add_histogram(model: type[pw.Model], prefix: str) -> None:
    for column in hist_columns(prefix):
        model._meta.add_field(column, pw.IntegerField(default=0,
                                                      constraints=[pw.SQL("DEFAULT 0")]))


class StatsRow(AppModel):
    """Per function and 5-minute bucket (and per hour: ``span``): runs started, completed,
    failed, cancelled, and the
    histograms of run duration (``d…``), queue delay (``q…``) and step duration (``s…``)
    (migration 0013; maintained by ``store/stats.py``)."""

    span = pw.IntegerField()  # the bucket's length: 5 minutes or an hour
    bucket = pw.BigIntegerField()
    function_id = pw.CharField(max_length=128)
    started = pw.IntegerField(default=0)
    completed = pw.IntegerField(default=0)
    failed = pw.IntegerField(default=0)
    cancelled = pw.IntegerField(default=0)
    duration_n = pw.IntegerField(default=0)
    duration_sum = pw.BigIntegerField(default=0)
    queue_n = pw.IntegerField(default=0)
    queue_sum = pw.BigIntegerField(default=0)
    step_n = pw.IntegerField(default=0)
    step_sum = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "tj_stats"
        primary_key = pw.CompositeKey("span", "bucket", "function_id")


class StatsStepRow(AppModel):
    """Per function, hour and step name: how many ran, failed, their total time and the
    step-duration histogram (migration 0013)."""

    bucket = pw.BigIntegerField()
    function_id = pw.CharField(max_length=128)
    step = pw.CharField(max_length=256)
    n = pw.IntegerField(default=0)
    failed = pw.IntegerField(default=0)
    total_ms = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "tj_stats_steps"
        primary_key = pw.CompositeKey("bucket", "function_id", "step")


class StatsErrorRow(AppModel):
    """Per function, hour and error message: how many runs failed with it, and the latest."""

    bucket = pw.BigIntegerField()
    function_id = pw.CharField(max_length=128)
    message = pw.CharField(max_length=200)
    name = pw.CharField(max_length=128)
    n = pw.IntegerField(default=0)
    last_run_id = pw.CharField(max_length=32)
    last_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_stats_errors"
        primary_key = pw.CompositeKey("bucket", "function_id", "message")


for _prefix in ("d", "q", "s"):
    _add_histogram(StatsRow, _prefix)
_add_histogram(StatsStepRow, "s")


SYSTEM_MODELS: list[type[pw.Model]] = [EventRow, DedupeRow, RunRow, StepRow, TimerRow, WaitRow,
                                       WaitKeyRow, CronStateRow, PausedFunctionRow, FlowKeyRow,
                                       SkipRow, BatchEventRow, SlotKeyRow, SlotRow, SlotWaiterRow,
                                       ThrottleRow, HeartbeatRow, MaintenanceRow, SdkAppRow,
                                       CounterRow, StatsRow, StatsStepRow, StatsErrorRow,
                                       StepAttemptRow]

# Table names for the store's hand-written SQL (never spelled anywhere else).
EVENTS = EventRow._meta.table_name
DEDUPE = DedupeRow._meta.table_name
RUNS = RunRow._meta.table_name
STEPS = StepRow._meta.table_name
STEP_ATTEMPTS = StepAttemptRow._meta.table_name
TIMERS = TimerRow._meta.table_name
WAITS = WaitRow._meta.table_name
WAIT_KEYS = WaitKeyRow._meta.table_name
CRON_STATE = CronStateRow._meta.table_name
PAUSED = PausedFunctionRow._meta.table_name
FLOW_KEYS = FlowKeyRow._meta.table_name
SKIPS = SkipRow._meta.table_name
BATCH_EVENTS = BatchEventRow._meta.table_name
SLOT_KEYS = SlotKeyRow._meta.table_name
SLOTS = SlotRow._meta.table_name
SLOT_WAITERS = SlotWaiterRow._meta.table_name
THROTTLES = ThrottleRow._meta.table_name
HEARTBEATS = HeartbeatRow._meta.table_name
MAINTENANCE = MaintenanceRow._meta.table_name
SDK_APPS = SdkAppRow._meta.table_name
COUNTERS = CounterRow._meta.table_name
STATS = StatsRow._meta.table_name
STATS_STEPS = StatsStepRow._meta.table_name
STATS_ERRORS = StatsErrorRow._meta.table_name

RUN_COLUMNS = tuple(f.column_name for f in RunRow._meta.sorted_fields)
STEP_COLUMNS = tuple(f.column_name for f in StepRow._meta.sorted_fields)
EVENT_COLUMNS = tuple(f.column_name for f in EventRow._meta.sorted_fields)
