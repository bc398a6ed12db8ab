"""Redis, the production broker: Dramatiq's ``RedisBroker`` with two changes, and its adapter.

:class:`TengoRedisBroker` caps the idle poll and consumes with a consumer that survives
undecodable messages. :class:`RedisAdapter` answers tengo_jobs' questions about any
``RedisBroker`` (a plain one passed in by a test or an application too): ``PING``, the
queue's length, a :class:`RedisProbe` for the sweeper, and the bulk send. What these need
of Dramatiq's private details lives in :mod:`._redis_internals`.
"""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from ..engine.timekeeper import BrokerProbe
from . import _redis_internals as internals
from .base import BrokerAdapter

# An idle Dramatiq Redis consumer backs off up to the worker timeout (1 s, and the
# ``dramatiq`` CLI cannot change it) between polls of an empty queue, which adds up to
# a second to a wake-up that arrives after a quiet spell. Capping the backoff keeps
# the wake-up lag near the scheduler's poll interval for ten cheap polls a second.
IDLE_POLL_MAX_MS = 100


class TengoRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker with the idle poll backoff capped at ``IDLE_POLL_MAX_MS`` and a
    consumer that survives undecodable messages."""

    @property
    def consumer_class(self) -> type[internals.TolerantConsumer]:
        return internals.TolerantConsumer

    def consume(self, queue_name: str, prefetch: int = 1,
                timeout: int = 5000) -> Consumer:
        return super().consume(queue_name, prefetch, min(timeout, IDLE_POLL_MAX_MS))


def make_redis_broker(url: str) -> TengoRedisBroker:
    return TengoRedisBroker(url=url)  # type: ignore[no-untyped-call]  # dramatiq: untyped


class RedisProbe(BrokerProbe):
    """Tells the sweeper whether Redis lost its data, and when the oldest message still in
    the queue was sent.

    A marker key is set in Redis; when it is gone, Redis restarted without persistence
    (or was flushed) and every message it held is lost. The oldest waiting message is the
    head of Dramatiq's queue list; its body carries ``message_timestamp``."""

    def __init__(self, broker: RedisBroker, queue_name: str):
        self.broker = broker
        self.queue_name = queue_name
        self.client = broker.client
        self.marker = f"{broker.namespace}:{queue_name}.tengo-marker"
        self._seen = False

    def lost_data(self) -> bool:
        created = bool(self.client.set(self.marker, "1", nx=True))
        lost, self._seen = created and self._seen, True
        return lost

    def oldest_pending_ms(self) -> object:
        body = internals.oldest_body(self.broker, self.queue_name)
        if body is None:
            return None
        try:
            return int(Message.decode(body).message_timestamp)
        except Exception:  # noqa: BLE001 - gone meanwhile, or undecodable: cannot tell
            return self.UNKNOWN


class RedisAdapter(BrokerAdapter):
    """The :class:`~.base.BrokerAdapter` of a ``RedisBroker``: sends leave from the
    background :class:`~.waker.Waker`, since each is a network round trip."""

    needs_waker = True
    broker: RedisBroker

    def ping(self) -> None:
        self.broker.client.ping()

    def queue_depth(self, queue_name: str) -> int | None:
        return internals.waiting_count(self.broker, queue_name)

    def probe(self, queue_name: str) -> BrokerProbe:
        return RedisProbe(self.broker, queue_name)

    def send_many(self, actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> bool:
        """Send many wake-ups in one Redis round trip.

        Dramatiq sends one message per call: a round trip and a Lua script run each, which
        was most of the cost of a 100-event batch. This writes the queue's two keys for the
        whole batch in two commands (:func:`._redis_internals.push_bodies`), with the bodies
        ``actor.send`` would encode. Middleware ``before/after_enqueue`` hooks would be
        skipped, so brokers that have any take the one-by-one path. Tested against a real
        worker (tests/test_broker_bulk.py)."""
        if len(run_ids) < 2 or _has_enqueue_hooks(self.broker):
            return False
        bodies = {}
        for run_id in run_ids:
            redis_id = str(uuid.uuid4())
            message: Message[Any] = Message(
                queue_name=actor.queue_name, actor_name=actor.actor_name, args=(run_id,),
                kwargs={}, options={"redis_message_id": redis_id})
            bodies[redis_id] = message.encode()
        internals.push_bodies(self.broker, actor.queue_name, bodies)
        return True


def _has_enqueue_hooks(broker: dramatiq.Broker) -> bool:
    return any(getattr(type(m), hook) is not getattr(Middleware, hook)
               for m in broker.middleware for hook in ("before_enqueue", "after_enqueue"))
