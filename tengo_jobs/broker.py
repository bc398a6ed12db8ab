"""Broker set-up: ``REDIS_URL`` gives a RedisBroker, otherwise an in-process StubBroker.

The broker only carries wake-ups: a message says "look at run R now". One actor,
``tengo_jobs_execute``, executes runs; Dramatiq's own retries are off because
retries are counted per step in the database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker
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
        return TengoRedisBroker(url=settings.redis_url)
    return StubBroker()


# An idle Dramatiq Redis consumer backs off up to the worker timeout (1 s, and the
# ``dramatiq`` CLI cannot change it) between polls of an empty queue, which adds up to
# a second to a wake-up that arrives after a quiet spell. Capping the backoff keeps
# the wake-up lag near the scheduler's poll interval for ten cheap polls a second.
IDLE_POLL_MAX_MS = 100


class TengoRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker with the idle poll backoff capped at ``IDLE_POLL_MAX_MS``."""

    def consume(self, queue_name, prefetch=1, timeout=5000):
        return super().consume(queue_name, prefetch=prefetch,
                               timeout=min(timeout, IDLE_POLL_MAX_MS))


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

    Dramatiq sends one message per call: a round trip and a Lua script run each, which
    was most of the cost of a 100-event batch. Its Redis layout is a hash of message
    bodies (``<ns>:<queue>.msgs``) and a list of their ids (``<ns>:<queue>``); its
    ``enqueue`` script writes exactly that (HSET + RPUSH). This writes the same two keys
    for the whole batch in two commands, with the bodies ``actor.send`` would encode.
    Middleware ``before/after_enqueue`` hooks would be skipped, so brokers that have
    any take the one-by-one path. Tested against a real worker (tests/test_broker_bulk.py).
    """
    broker = actor.broker
    if len(run_ids) < 2 or not isinstance(broker, RedisBroker) or _has_enqueue_hooks(broker):
        return False
    from uuid import uuid4

    from dramatiq.message import Message

    bodies = {}
    for run_id in run_ids:
        redis_id = str(uuid4())
        message = Message(queue_name=actor.queue_name, actor_name=actor.actor_name,
                          args=(run_id,), kwargs={}, options={"redis_message_id": redis_id})
        bodies[redis_id] = message.encode()
    queue_key = f"{broker.namespace}:{actor.queue_name}"
    pipe = broker.client.pipeline(transaction=True)
    pipe.hset(f"{queue_key}.msgs", mapping=bodies)
    pipe.rpush(queue_key, *bodies)
    pipe.execute()
    return True


def _has_enqueue_hooks(broker) -> bool:
    from dramatiq.middleware import Middleware

    return any(getattr(type(m), hook) is not getattr(Middleware, hook)
               for m in broker.middleware for hook in ("before_enqueue", "after_enqueue"))
