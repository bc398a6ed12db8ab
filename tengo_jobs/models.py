"""The system schema, written down in one module.

Tables: events, event_dedupe, runs, steps (keyed by run + step key), timers, waits
and cron_state.
Statuses are ``str`` Enums, times are epoch milliseconds, JSON is stored as text
so SQLite and PostgreSQL hold the same bytes.

All models are bound to :data:`database_proxy`; :func:`tengo_jobs.db.open_database`
initializes it. Applications derive their own tables from :class:`AppModel` and list
them in their :class:`~tengo_jobs.Extension`, so ``tengo-jobs migrate`` creates them too.
"""

from __future__ import annotations

import enum

import peewee as pw

database_proxy = pw.DatabaseProxy()


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(str, enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    SLEEPING = "sleeping"
    RETRYING = "retrying"
    WAITING = "waiting"


class StepKind(str, enum.Enum):
    RUN = "run"
    SLEEP = "sleep"
    WAIT = "wait"
    INVOKE = "invoke"


class TimerKind(str, enum.Enum):
    SLEEP = "sleep"
    RETRY = "retry"
    EVENT = "event"  # a future-dated event: its runs start at ``ts``
    TIMEOUT = "timeout"  # a wait_for_event / invoke that gives up


FINAL_RUN_STATUSES = tuple(s.value for s in RunStatus if s.is_final)


class EnumField(pw.CharField):
    """Stores a ``str`` Enum by value and gives the Enum back."""

    def __init__(self, enum_class, *args, **kwargs):
        self.enum_class = enum_class
        kwargs.setdefault("max_length", 16)
        super().__init__(*args, **kwargs)

    def db_value(self, value):
        if value is None:
            return None
        return self.enum_class(value).value

    def python_value(self, value):
        return None if value is None else self.enum_class(value)


class AppModel(pw.Model):
    """Base class of every table in the jobs database: the system tables below and an
    application's own (list them in its :class:`~tengo_jobs.Extension` to have them migrated)."""

    class Meta:
        database = database_proxy
        legacy_table_names = False


class Event(AppModel):
    id = pw.CharField(primary_key=True, max_length=32)
    name = pw.CharField(max_length=256, index=True)
    data = pw.TextField()  # JSON object
    user = pw.TextField(null=True)  # JSON object
    external_id = pw.CharField(max_length=256, null=True, index=True)
    ts = pw.BigIntegerField()  # when it happened / when its runs are due (ms)
    v = pw.CharField(max_length=64, null=True)
    received_at = pw.BigIntegerField(index=True)

    class Meta:
        table_name = "tj_events"


class EventDedupe(AppModel):
    """One row per user-supplied event id; a repeat within ``expires_at`` is a duplicate."""

    key = pw.CharField(primary_key=True, max_length=300)
    event_id = pw.CharField(max_length=32)
    expires_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_event_dedupe"


class Run(AppModel):
    id = pw.CharField(primary_key=True, max_length=32)
    app_id = pw.CharField(max_length=128)
    function_id = pw.CharField(max_length=128, index=True)
    event_id = pw.CharField(max_length=32, null=True, index=True)
    status = EnumField(RunStatus, index=True)
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

    class Meta:
        table_name = "tj_runs"
        indexes = ((("status", "wake_at"), False),)


class Step(AppModel):
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


class Timer(AppModel):
    """A wake-up the scheduler owes a run; claimed (deleted) when fired."""

    id = pw.AutoField()
    run_id = pw.CharField(max_length=32, unique=True)
    due_at = pw.BigIntegerField(index=True)
    kind = EnumField(TimerKind)

    class Meta:
        table_name = "tj_timers"


class Wait(AppModel):
    """A run waiting for an event (``step.wait_for_event``); resolved by the intake."""

    id = pw.AutoField()
    run_id = pw.CharField(max_length=32)
    step_key = pw.CharField(max_length=300)
    event_name = pw.CharField(max_length=256, index=True)
    expression = pw.TextField(null=True)  # CEL over `event` and `async`
    match_event = pw.TextField()  # the waiting run's triggering event, JSON
    expires_at = pw.BigIntegerField()
    created_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_waits"
        indexes = ((("run_id", "step_key"), True),)


class CronState(AppModel):
    """The last tick each cron function was scheduled for (epoch ms); see scheduler.py."""

    function_id = pw.CharField(primary_key=True, max_length=128)
    last_tick_ms = pw.BigIntegerField()
    updated_at = pw.BigIntegerField()

    class Meta:
        table_name = "tj_cron_state"


ENGINE_MODELS: list[type[pw.Model]] = [Event, EventDedupe, Run, Step, Timer, Wait, CronState]
