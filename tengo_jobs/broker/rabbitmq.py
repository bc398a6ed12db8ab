"""RabbitMQ, Dramatiq's first broker: its ``RabbitmqBroker`` and the adapter tengo_jobs asks.

Optional: ``pip install 'tengo-jobs[rabbitmq]'`` brings ``dramatiq[rabbitmq]`` (pika). A
broker URL ``amqp://…`` or ``amqps://…`` (``TENGO_BROKER_URL``) selects it; without the
extra that URL is a :class:`~tengo_jobs.errors.ConfigurationError` naming the extra.

What differs from Redis, and why:

- Sends are published with confirms (``confirm_delivery``): ``send`` returns once RabbitMQ
  has taken the message, so "committed, then sent" holds as it does with Redis. Dramatiq's
  queues are durable and its messages persistent, so a RabbitMQ restart keeps them.
- RabbitMQ cannot say when the oldest message waiting in a queue was sent, nor whether it
  lost its messages (a queue purged, or deleted and declared again, looks like an empty
  one): the sweeper's probe answers "unknown" (:class:`~tengo_jobs.engine.timekeeper.BrokerProbe`),
  so a lost wake-up is sent again once it is ``TENGO_REDELIVER_AFTER`` old, and one still
  queued younger than that is not sent twice (docs/operations.md, "RabbitMQ").
- No bulk path: RabbitMQ has no multi-message publish, so a batch is one publish per run on
  the sending thread's channel (Dramatiq keeps one connection and channel per thread).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar, cast

import dramatiq

from ..engine.timekeeper import BrokerProbe
from ..errors import ConfigurationError
from .base import BrokerAdapter

try:  # the optional extra
    import pika
    from dramatiq.brokers.rabbitmq import RabbitmqBroker as RabbitmqBroker  # re-exported
except ImportError:  # pragma: no cover - exercised only without the extra
    pika = None
    RabbitmqBroker = None  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)

SCHEMES = ("amqp", "amqps")
EXTRA_HINT = "pip install 'tengo-jobs[rabbitmq]'"

T = TypeVar("T")


def available() -> bool:
    """Whether the RabbitMQ client (the ``rabbitmq`` extra) is installed."""
    return RabbitmqBroker is not None


def make_rabbitmq_broker(url: str) -> "RabbitmqBroker":
    """Dramatiq's ``RabbitmqBroker`` on ``url`` (no connection opened yet)."""
    if RabbitmqBroker is None:
        raise ConfigurationError(
            f"the broker URL is {url.split('://', 1)[0]}://… (RabbitMQ) but its client is not "
            f"installed: {EXTRA_HINT}")
    return RabbitmqBroker(url=url, confirm_delivery=True)


def _connection_errors() -> tuple[type[BaseException], ...]:
    return (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError)


class RabbitmqAdapter(BrokerAdapter):
    """The :class:`~.base.BrokerAdapter` of a ``RabbitmqBroker``. Sends leave from the
    background :class:`~.waker.Waker` (each is a confirmed publish, a round trip); the
    probe is the base one, which knows nothing (see the module docstring)."""

    needs_waker = True
    broker: "RabbitmqBroker"

    def _with_channel(self, use: Callable[["pika.adapters.blocking_connection.BlockingChannel"], T]) -> T:
        """``use(channel)`` on this thread's channel; a connection that died while idle
        (RabbitMQ closes one that sent no heartbeat) is opened again once."""
        try:
            return use(self.broker.channel)
        except _connection_errors():
            del self.broker.connection  # also drops the channel
            return use(self.broker.channel)

    def ping(self) -> None:
        def check(channel: Any) -> None:
            channel.connection.process_data_events(time_limit=0)
            if not channel.is_open:
                raise pika.exceptions.ChannelWrongStateError("channel closed")

        self._with_channel(check)

    def queue_depth(self, queue_name: str) -> int | None:
        """Messages ready in ``queue_name`` (a passive declare: nothing is created; a queue
        nobody declared yet holds none). Messages delivered to a worker and not yet
        acknowledged are not counted, as with Redis."""
        def depth(channel: Any) -> int:
            return cast(int, channel.queue_declare(queue=queue_name, passive=True).method.message_count)

        try:
            return self._with_channel(depth)
        except pika.exceptions.ChannelClosedByBroker as exc:
            del self.broker.channel  # the broker closed it over the missing queue
            if exc.reply_code == 404:
                return 0
            raise

    def probe(self, queue_name: str) -> BrokerProbe:
        return BrokerProbe()

    def send_many(self, actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> bool:
        return False  # no multi-message publish in AMQP 0-9-1: one confirmed publish each
