"""Broker set-up: ``REDIS_URL`` gives a RedisBroker, otherwise an in-process StubBroker.

The broker only carries wake-ups: a message says "look at run R now". One actor,
``tengo_jobs_execute``, executes runs; Dramatiq's own retries are off because
retries are counted per step in the database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import dramatiq
from dramatiq.brokers.stub import StubBroker

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

ACTOR_NAME = "tengo_jobs_execute"
# A run may execute for a long time (thousands of steps); the lease, not Dramatiq's
# time limit, guards against a stuck executor.
ACTOR_TIME_LIMIT_MS = 7 * 24 * 3_600_000


def make_broker(settings: "Settings") -> dramatiq.Broker:
    """The broker for these settings (not yet connected)."""
    if settings.redis_url:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=settings.redis_url)
    return StubBroker()


def declare_actor(broker: dramatiq.Broker, execute: Callable[[str], None], queue_name: str):
    """Declare the run-executing actor on ``broker``."""
    existing = broker.actors.get(ACTOR_NAME) if hasattr(broker, "actors") else None
    if existing is not None:
        existing.fn = execute
        return existing
    return dramatiq.actor(
        execute, actor_name=ACTOR_NAME, queue_name=queue_name, broker=broker,
        max_retries=0, time_limit=ACTOR_TIME_LIMIT_MS)


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached."""
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()
