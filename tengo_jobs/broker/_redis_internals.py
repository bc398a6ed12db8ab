"""Where tengo_jobs relies on Dramatiq's Redis internals — here and nowhere else.

Dramatiq's public API cannot (1) change how its Redis consumer treats a message it cannot
decode, (2) enqueue many messages in one round trip, or (3) read a queue (its length, its
head, a consumer's ack set). Each needs a detail that is not part of that API: the consumer
class ``_RedisConsumer``, the broker's Lua dispatch (``do_nack``), and the key layout its
``dispatch.lua`` keeps::

    <ns>:<queue>                        list of message ids, oldest first
    <ns>:<queue>.msgs                   hash: message id -> encoded body
    <ns>:__acks__.<broker_id>.<queue>   set: ids a consumer fetched and has not acked yet

Checked against dramatiq 2.2.1 (``dramatiq/brokers/redis.py``, ``brokers/redis/dispatch.lua``).
Before upgrading Dramatiq, check this module: tests/test_broker_bulk.py,
tests/test_broker_malformed.py and tests/test_sweeper.py exercise all of it on a real Redis.
"""

from __future__ import annotations

import json
import logging
from typing import cast

from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import DecodeError

log = logging.getLogger(__name__)


def queue_key(broker: RedisBroker, queue_name: str) -> str:
    """The list of waiting message ids."""
    return f"{broker.namespace}:{queue_name}"


def bodies_key(broker: RedisBroker, queue_name: str) -> str:
    """The hash of message bodies by id."""
    return f"{queue_key(broker, queue_name)}.msgs"


def acks_key(broker: RedisBroker, queue_name: str) -> str:
    """The set of ids this broker's consumers fetched and have not acked."""
    return f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"


def push_bodies(broker: RedisBroker, queue_name: str, bodies: dict[str, bytes]) -> None:
    """Append encoded messages (by Redis message id) in one transaction: what Dramatiq's
    ``enqueue`` script does per message (HSET + RPUSH), for the whole batch at once."""
    pipe = broker.client.pipeline(transaction=True)
    pipe.hset(bodies_key(broker, queue_name), mapping=bodies)
    pipe.rpush(queue_key(broker, queue_name), *bodies)
    pipe.execute()


def waiting_count(broker: RedisBroker, queue_name: str) -> int:
    return int(broker.client.llen(queue_key(broker, queue_name)))


def oldest_body(broker: RedisBroker, queue_name: str) -> bytes | None:
    """The body of the message at the head of the queue: ``None`` when the queue is empty,
    ``b""`` when that message was consumed between the two reads."""
    head = broker.client.lindex(queue_key(broker, queue_name), 0)
    if head is None:
        return None
    return broker.client.hget(bodies_key(broker, queue_name), head) or b""


class TolerantConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, except that a message it cannot decode is dead-lettered
    instead of breaking the consumer: Dramatiq's own raises, the worker restarts the
    consumer, and every message it had prefetched stays in its ack set until the worker
    dies."""

    def __next__(self) -> MessageProxy | None:
        while True:
            try:
                return cast("MessageProxy | None",
                            super().__next__())  # type: ignore[no-untyped-call]
            except DecodeError as exc:
                self._dead_letter(exc)

    def _dead_letter(self, exc: DecodeError) -> None:
        data = getattr(exc, "data", b"")
        message_id = None
        try:
            message_id = json.loads(data).get("options", {}).get("redis_message_id")
        except Exception:  # noqa: BLE001 - a body that is not even JSON
            pass
        if not message_id:
            message_id = self._acked_id_of(data)
        log.error("dropping an undecodable message on queue %r%s: %s", self.queue_name,
                  f" (id {message_id})" if message_id else "", exc)
        if message_id:
            self.broker.do_nack(self.queue_name, message_id)

    def _acked_id_of(self, body: bytes) -> str | None:
        """The id of a body that names none: the message in this consumer's ack set (the
        few it fetched) stored with that body; without it the body would stay acked forever."""
        client = self.broker.client
        ids = list(client.smembers(acks_key(self.broker, self.queue_name)))
        bodies = client.hmget(bodies_key(self.broker, self.queue_name), ids) if ids else []
        for message_id, stored in zip(ids, bodies):
            if stored == body:
                return cast(bytes, message_id).decode()
        return None
