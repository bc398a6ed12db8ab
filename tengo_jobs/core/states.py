"""The states of runs, steps and timers, as ``str`` Enums (rq's ``JobStatus`` style).

They are vocabulary, not storage: the store writes them by value, step operations
(:mod:`.ops`) name them, the API returns them. The life of a run::

    queued ──acquire──▶ running ──complete──▶ completed
      ▲                  │  │ └──fail──▶ failed
      │ wake / timer     │  └──suspend──▶ sleeping | waiting ──wake──▶ queued
      └── release ◀──────┘          (any unfinished run) ──cancel──▶ cancelled
"""

from __future__ import annotations

import enum


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
    RUNNING = "running"  # an attempt recorded before it ran (only after a crash)
    COMPLETED = "completed"
    FAILED = "failed"
    SLEEPING = "sleeping"
    RETRYING = "retrying"
    WAITING = "waiting"

    @property
    def is_final(self) -> bool:
        return self in (StepStatus.COMPLETED, StepStatus.FAILED)


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
    DEADLINE = "deadline"  # a run's ``timeouts``: cancelled if not started / finished by then


FINAL_RUN_STATUSES = tuple(s.value for s in RunStatus if s.is_final)
RUN_STATUSES = tuple(s.value for s in RunStatus)
STEP_STATUSES = tuple(s.value for s in StepStatus)

__all__ = ["RunStatus", "StepStatus", "StepKind", "TimerKind", "FINAL_RUN_STATUSES",
           "RUN_STATUSES", "STEP_STATUSES"]
