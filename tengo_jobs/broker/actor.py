"""The one Dramatiq actor, ``tengo_jobs_execute``: "execute run R now".

Dramatiq's retries are used for one thing only: a worker that cannot reach the database
to acquire a run puts the message back with a delay (:data:`DATABASE_RETRY_BACKOFF_MS`),
so an outage loses no wake-up; step retries are the engine's own, counted in the database.
"""

from __future__ import annotations

from typing import Callable, cast

import dramatiq

from ..errors import DatabaseUnavailableError

ACTOR_NAME = "tengo_jobs_execute"
# A run may execute for a long time (thousands of steps); the lease, not Dramatiq's
# time limit, guards against a stuck executor.
ACTOR_TIME_LIMIT_MS = 7 * 24 * 3_600_000
DATABASE_RETRY_BACKOFF_MS = (500, 15_000)
DATABASE_RETRIES = 40  # about 10 minutes of outage before the sweeper has to find the run


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailableError) and retries < DATABASE_RETRIES


def declare_actor(broker: dramatiq.Broker, execute: Callable[[str], object],
                  queue_name: str) -> dramatiq.Actor[[str], object]:
    """Declare the run-executing actor on ``broker`` (or point an existing one at ``execute``)."""
    existing = broker.actors.get(ACTOR_NAME) if hasattr(broker, "actors") else None
    if existing is not None:
        existing.fn = execute
        return cast("dramatiq.Actor[[str], object]", existing)
    actor = dramatiq.actor(  # type: ignore[call-overload]  # fn with options: not in stubs
        execute, actor_name=ACTOR_NAME, queue_name=queue_name, broker=broker,
        retry_when=_retry_when, min_backoff=DATABASE_RETRY_BACKOFF_MS[0],
        max_backoff=DATABASE_RETRY_BACKOFF_MS[1], time_limit=ACTOR_TIME_LIMIT_MS)
    return cast("dramatiq.Actor[[str], object]", actor)
