"""A malformed Dramatiq message does not strand the messages fetched with it (issue 8 item 7):
the consumer (tengo_jobs.broker._redis_internals.TolerantConsumer) dead-letters it and carries on, on a real
Redis. Dramatiq's own consumer raises, the worker restarts it, and the messages it had
prefetched stay in its ack set until the worker dies."""

from __future__ import annotations

import json
import threading
import uuid

import dramatiq
import pytest
from dramatiq import Worker

from procs import wait_until
from tengo_jobs.broker import TengoRedisBroker

pytestmark = pytest.mark.integration

MALFORMED = {
    "json-without-fields": lambda redis_id: json.dumps({"options": {"redis_message_id": redis_id},
                                                        "args": ["half a message"]}),
    "not-json": lambda redis_id: b"\x00\xff not a message at all",  # names no id
}


@pytest.fixture
def redis_broker(redis_url, queue_name):
    broker = TengoRedisBroker(url=redis_url)
    yield broker
    broker.close()
    for key in broker.client.keys(f"dramatiq:*{queue_name}*"):
        broker.client.delete(key)


def _push_raw(broker, queue_name: str, make_body) -> str:
    """Put a message body in the queue as Dramatiq's enqueue does (HSET + RPUSH)."""
    redis_id = str(uuid.uuid4())
    body = make_body(redis_id)
    broker.client.hset(f"dramatiq:{queue_name}.msgs", redis_id, body)
    broker.client.rpush(f"dramatiq:{queue_name}", redis_id)
    return redis_id


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_message_is_dead_lettered_and_the_others_are_processed(
        redis_broker, queue_name, kind):
    seen, lock = [], threading.Lock()

    @dramatiq.actor(queue_name=queue_name, broker=redis_broker, max_retries=0)
    def record(n):
        with lock:
            seen.append(n)

    record.send(0)
    bad_id = _push_raw(redis_broker, queue_name, MALFORMED[kind])
    for n in range(1, 6):
        record.send(n)

    worker = Worker(redis_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_until(lambda: len(seen) == 6, timeout=20, message="the six good messages")
        client = redis_broker.client
        acks = f"dramatiq:__acks__.{redis_broker.broker_id}.{queue_name}"
        wait_until(lambda: client.scard(acks) == 0, timeout=10,
                   message="an empty ack set (nothing stranded, the bad message included)")
    finally:
        worker.stop()
    assert sorted(seen) == list(range(6))  # every good message, once
    assert client.llen(f"dramatiq:{queue_name}") == 0
    assert client.zrange(f"dramatiq:{queue_name}.XQ", 0, -1) == [bad_id.encode()]
