"""The broker: Dramatiq carries wake-ups ("look at run R now"), nothing else.

``REDIS_URL`` gives a :class:`TengoRedisBroker`, otherwise an in-process ``StubBroker``
(``tengo-jobs dev``, tests). One actor, ``tengo_jobs_execute``, executes runs.
Dramatiq's retries are used for one thing only: a worker that cannot reach the
database to acquire a run puts the message back with a delay
(:data:`DATABASE_RETRY_BACKOFF_MS`), so an outage loses no wake-up; step retries are
the engine's own, counted in the database.

Sending does not hold the caller: with Redis, :class:`Waker` sends wake-ups from a
background thread right after the rows committed (batched when many are waiting).
A wake-up lost because the process died before it was sent is found by the sweeper.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
import uuid
from typing import TYPE_CHECKING, Callable, Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import DecodeError
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from .errors import DatabaseUnavailableError
from .engine.timekeeper import BrokerProbe

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

ACTOR_NAME = "tengo_jobs_execute"
# A run may execute for a long time (thousands of steps); the lease, not Dramatiq's
# time limit, guards against a stuck executor.
ACTOR_TIME_LIMIT_MS = 7 * 24 * 3_600_000
DATABASE_RETRY_BACKOFF_MS = (500, 15_000)
DATABASE_RETRIES = 40  # about 10 minutes of outage before the sweeper has to find the run
# An idle Dramatiq Redis consumer backs off up to the worker timeout (1 s, and the
# ``dramatiq`` CLI cannot change it) between polls of an empty queue, which adds up to
# a second to a wake-up that arrives after a quiet spell. Capping the backoff keeps
# the wake-up lag near the scheduler's poll interval for ten cheap polls a second.
IDLE_POLL_MAX_MS = 100


def make_broker(settings: "Settings") -> dramatiq.Broker:
    """The broker for these settings (not yet connected)."""
    if settings.redis_url:
        return TengoRedisBroker(url=settings.redis_url)
    return StubBroker()


class _TolerantConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, except that a message it cannot decode is dead-lettered
    instead of breaking the consumer: Dramatiq's own raises, the worker restarts the
    consumer, and every message it had prefetched stays in its ack set until the worker
    dies."""

    def __next__(self):
        while True:
            try:
                return super().__next__()
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

    def _acked_id_of(self, body) -> str | None:
        """The id of a body that names none: the message in this consumer's ack set (the
        few it fetched) stored with that body; without it the body would stay acked forever."""
        client, ns = self.broker.client, self.broker.namespace
        ids = list(client.smembers(f"{ns}:__acks__.{self.broker.broker_id}.{self.queue_name}"))
        bodies = client.hmget(f"{ns}:{self.queue_name}.msgs", ids) if ids else []
        for message_id, stored in zip(ids, bodies):
            if stored == body:
                return message_id.decode()
        return None


class TengoRedisBroker(RedisBroker):
    """Dramatiq's RedisBroker with the idle poll backoff capped at ``IDLE_POLL_MAX_MS`` and a
    consumer that survives undecodable messages."""

    @property
    def consumer_class(self):
        return _TolerantConsumer

    def consume(self, queue_name, prefetch=1, timeout=5000):
        return _TolerantConsumer(self, queue_name, prefetch, min(timeout, IDLE_POLL_MAX_MS))


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailableError) and retries < DATABASE_RETRIES


def declare_actor(broker: dramatiq.Broker, execute: Callable[[str], object], queue_name: str):
    """Declare the run-executing actor on ``broker`` (or point an existing one at ``execute``)."""
    existing = broker.actors.get(ACTOR_NAME) if hasattr(broker, "actors") else None
    if existing is not None:
        existing.fn = execute
        return existing
    return dramatiq.actor(
        execute, actor_name=ACTOR_NAME, queue_name=queue_name, broker=broker,
        retry_when=_retry_when, min_backoff=DATABASE_RETRY_BACKOFF_MS[0],
        max_backoff=DATABASE_RETRY_BACKOFF_MS[1], time_limit=ACTOR_TIME_LIMIT_MS)


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached."""
    client = getattr(broker, "client", None)
    if client is not None:
        client.ping()


def queue_depth(broker: dramatiq.Broker, queue_name: str) -> int | None:
    """Messages waiting in ``queue_name`` (Redis list length or stub queue size)."""
    client = getattr(broker, "client", None)
    if client is not None:
        return int(client.llen(f"{broker.namespace}:{queue_name}"))
    queues = getattr(broker, "queues", None)
    if queues is not None and queue_name in queues:
        return queues[queue_name].qsize()
    return None


class RedisProbe(BrokerProbe):
    """Tells the sweeper whether Redis lost its data, and when the oldest message still in
    the queue was sent.

    A marker key is set in Redis; when it is gone, Redis restarted without persistence
    (or was flushed) and every message it held is lost. The oldest waiting message is the
    head of Dramatiq's queue list; its body carries ``message_timestamp``."""

    def __init__(self, broker: dramatiq.Broker, queue_name: str):
        self.broker = broker
        self.queue_name = queue_name
        self.client = getattr(broker, "client", None)
        self.marker = f"{getattr(broker, 'namespace', 'dramatiq')}:{queue_name}.tengo-marker"
        self._seen = False

    def lost_data(self) -> bool:
        if self.client is None:
            return False
        created = bool(self.client.set(self.marker, "1", nx=True))
        lost, self._seen = created and self._seen, True
        return lost

    def oldest_pending_ms(self):
        if self.client is None:
            queues = getattr(self.broker, "queues", {})
            if self.queue_name in queues:  # the in-process broker: only "empty" is known
                return None if queues[self.queue_name].qsize() == 0 else self.UNKNOWN
            return self.UNKNOWN
        key = f"{self.broker.namespace}:{self.queue_name}"
        head = self.client.lindex(key, 0)
        if head is None:
            return None
        body = self.client.hget(f"{key}.msgs", head)
        try:
            return int(Message.decode(body).message_timestamp)
        except Exception:  # noqa: BLE001 - gone meanwhile, or undecodable: cannot tell
            return self.UNKNOWN


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
    bodies = {}
    for run_id in run_ids:
        redis_id = str(uuid.uuid4())
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
    return any(getattr(type(m), hook) is not getattr(Middleware, hook)
               for m in broker.middleware for hook in ("before_enqueue", "after_enqueue"))


def send_now(actor, run_ids: list[str]) -> int:
    """Send one wake-up per run (the rows are committed); returns how many were sent.

    A broker failure here loses nothing (the sweeper finds the runs), so it is logged,
    not raised: a caller whose event was accepted must not be told otherwise."""
    if not run_ids:
        return 0
    try:
        if send_many(actor, run_ids):
            return len(run_ids)
    except Exception:  # noqa: BLE001 - fall back to one message at a time
        log.warning("bulk enqueue of %d runs failed; sending one by one", len(run_ids),
                    exc_info=True)
    count = 0
    for run_id in run_ids:
        try:
            actor.send(run_id)
        except Exception:  # noqa: BLE001 - the rows are the source of truth
            log.error("could not enqueue run %s; the sweeper will send it again", run_id,
                      exc_info=True)
            continue
        count += 1
    return count


class Waker:
    """Sends wake-ups from a background thread, so callers do not wait on the broker.

    Run ids handed to :meth:`wake` leave in order, right away, in batches when several
    are waiting. :meth:`flush` (called at exit and by ``Runtime.close``) sends what is
    left; a process killed before that loses the wake-ups, not the runs."""

    def __init__(self, actor):
        self.actor = actor
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        atexit.register(self.flush)

    def wake(self, run_ids: Iterable[str]) -> None:
        run_ids = list(run_ids)
        if not run_ids:
            return
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tengo-waker",
                                                daemon=True)
                self._thread.start()
        self._queue.put(run_ids)

    def _loop(self) -> None:
        while True:
            batches = [self._queue.get()]
            while len(batches) < 100:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            send_now(self.actor, [r for batch in batches for r in batch])
            with self._lock:
                self._pending -= len(batches)
                if self._pending == 0:
                    self._idle.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every wake-up handed over so far was sent; ``False`` on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)
