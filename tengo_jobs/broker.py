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


def send_many(actor, run_ids: list[str]) -> bool:
    """Send many wake-ups in one Redis round trip; ``False`` when the broker has no bulk path.

    Dramatiq sends one message per call (one round trip each); a batch of 100 events
    would pay 100 round trips. This pipelines Dramatiq's own ``enqueue`` dispatch
    script, so the messages are exactly what ``actor.send`` would have written.
    Middleware ``before/after_enqueue`` hooks are not run on this path; the default
    middleware has none that matter for this actor.
    """
    broker = actor.broker
    if len(run_ids) < 2 or type(broker).__name__ != "RedisBroker" or _has_enqueue_hooks(broker):
        return False
    from uuid import uuid4

    from dramatiq.common import current_millis

    dispatch = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    unpack = broker._max_unpack_size()
    for run_id in run_ids:
        message = actor.message(run_id)
        redis_id = str(uuid4())
        message = message.copy(options={"redis_message_id": redis_id})
        dispatch(keys=[broker.namespace],
                 args=["enqueue", current_millis(), message.queue_name, broker.broker_id,
                       broker.heartbeat_timeout, broker.dead_message_ttl, 0, unpack,
                       redis_id, message.encode()],
                 client=pipe)
    pipe.execute()
    return True


def _has_enqueue_hooks(broker) -> bool:
    from dramatiq.middleware import Middleware

    return any(getattr(type(m), hook) is not getattr(Middleware, hook)
               for m in broker.middleware for hook in ("before_enqueue", "after_enqueue"))
