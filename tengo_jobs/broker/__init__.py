"""The broker: Dramatiq carries wake-ups ("look at run R now"), nothing else.

A URL picks the broker (:func:`make_broker`, ``TENGO_BROKER_URL`` or ``REDIS_URL``):
``redis://`` gives a :class:`~.redis.TengoRedisBroker`, ``amqp://`` Dramatiq's
``RabbitmqBroker`` (the ``rabbitmq`` extra), none the in-process ``StubBroker``
(``tengo-jobs dev``, tests). Whatever the broker — made here or passed in — :func:`adapter_for` gives its
:class:`~.base.BrokerAdapter`, the one way the rest of tengo_jobs asks a broker anything
beyond sending a message: ping, queue depth, the sweeper's probe, bulk send, whether sends
go through the background :class:`~.waker.Waker`. One actor, ``tengo_jobs_execute``,
executes runs (:mod:`.actor`).

Modules, one broker each plus what they share::

    base.py              BrokerAdapter: what every broker module provides
    redis.py             Redis (production): TengoRedisBroker, RedisProbe, RedisAdapter
    _redis_internals.py  the only module that touches Dramatiq's private Redis details
    rabbitmq.py          RabbitMQ (optional extra): RabbitmqAdapter, make_rabbitmq_broker
    stub.py              the in-process StubBroker and its adapter
    waker.py             the background sender
    actor.py             the run-executing actor
    middleware.py        BootOnWorkerStart (the worker process finishes its boot)

A new broker is one module with a ``make_…_broker(url)`` and an adapter, registered in
:data:`_SCHEMES` and :data:`_ADAPTERS` below (as ``rabbitmq.py`` is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from ..engine.timekeeper import BrokerProbe
from .actor import (ACTOR_NAME, ACTOR_TIME_LIMIT_MS, DATABASE_RETRIES, DATABASE_RETRY_BACKOFF_MS,
                    declare_actor)
from .base import BrokerAdapter
from .middleware import BootOnWorkerStart
from . import rabbitmq
from .rabbitmq import RabbitmqAdapter, make_rabbitmq_broker
from .redis import IDLE_POLL_MAX_MS, RedisAdapter, RedisProbe, TengoRedisBroker, make_redis_broker
from .stub import StubAdapter, StubProbe, make_stub_broker
from .waker import Waker

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    # choosing and describing a broker
    "make_broker", "adapter_for", "BrokerAdapter", "BrokerProbe",
    "ping", "queue_depth", "probe",
    # sending wake-ups
    "send_now", "send_many", "Waker",
    # the actor and the worker's boot
    "ACTOR_NAME", "ACTOR_TIME_LIMIT_MS", "DATABASE_RETRIES", "DATABASE_RETRY_BACKOFF_MS",
    "declare_actor", "BootOnWorkerStart",
    # the brokers
    "TengoRedisBroker", "RedisAdapter", "RedisProbe", "IDLE_POLL_MAX_MS",
    "StubAdapter", "StubProbe", "RabbitmqAdapter",
]

# URL scheme -> the broker module's constructor
_SCHEMES: dict[str, Callable[[str], dramatiq.Broker]] = {
    "redis": make_redis_broker, "rediss": make_redis_broker, "unix": make_redis_broker,
    **{scheme: make_rabbitmq_broker for scheme in rabbitmq.SCHEMES},
}
# Dramatiq broker class -> its adapter; the first match wins (subclasses included)
_ADAPTERS: tuple[tuple[type, type[BrokerAdapter]], ...] = (
    (RedisBroker, RedisAdapter),
    (StubBroker, StubAdapter),
) + (((rabbitmq.RabbitmqBroker, RabbitmqAdapter),) if rabbitmq.available() else ())


def make_broker(settings: "Settings") -> dramatiq.Broker:
    """The broker for these settings (not yet connected): ``TENGO_BROKER_URL`` (or
    ``REDIS_URL``), or in-process when neither is set."""
    url = settings.broker_url
    if not url:
        return make_stub_broker()
    scheme = url.split("://", 1)[0].lower()
    # any other URL goes to Redis, as it always did: its client says what is wrong with it
    return _SCHEMES.get(scheme, make_redis_broker)(url)


def adapter_for(broker: dramatiq.Broker) -> BrokerAdapter:
    """The adapter that answers tengo_jobs' questions about ``broker``."""
    for broker_class, adapter_class in _ADAPTERS:
        if isinstance(broker, broker_class):
            return adapter_class(broker)
    return BrokerAdapter(broker)


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached."""
    adapter_for(broker).ping()


def queue_depth(broker: dramatiq.Broker, queue_name: str) -> int | None:
    """Messages waiting in ``queue_name``; ``None`` when the broker cannot tell."""
    return adapter_for(broker).queue_depth(queue_name)


def probe(broker: dramatiq.Broker, queue_name: str) -> BrokerProbe:
    """The sweeper's probe of ``queue_name`` on ``broker``."""
    return adapter_for(broker).probe(queue_name)


def send_many(actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> bool:
    """Send many wake-ups in one round trip; ``False`` when the broker has no bulk path."""
    return adapter_for(actor.broker).send_many(actor, run_ids)


def send_now(actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> int:
    """Send one wake-up per run now, logging (not raising) a broker failure; returns how
    many were sent (:meth:`BrokerAdapter.send_now`)."""
    return adapter_for(actor.broker).send_now(actor, run_ids)
