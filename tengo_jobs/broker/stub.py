"""The in-process broker (``tengo-jobs dev``, tests): Dramatiq's ``StubBroker``.

Its queues are Python queues in this process, so a send is immediate (no background
thread), it always answers, and the sweeper can tell only whether a queue is empty.
"""

from __future__ import annotations

from dramatiq.brokers.stub import StubBroker

from ..engine.timekeeper import BrokerProbe
from .base import BrokerAdapter


def make_stub_broker() -> StubBroker:
    return StubBroker()


class StubProbe(BrokerProbe):
    """Only "empty" is known about an in-process queue: its messages carry no send time
    the sweeper could read cheaply."""

    def __init__(self, broker: StubBroker, queue_name: str):
        self.broker = broker
        self.queue_name = queue_name

    def oldest_pending_ms(self) -> object:
        queues = self.broker.queues
        if self.queue_name in queues:
            return None if queues[self.queue_name].qsize() == 0 else self.UNKNOWN
        return self.UNKNOWN


class StubAdapter(BrokerAdapter):
    """The :class:`~.base.BrokerAdapter` of a ``StubBroker``."""

    broker: StubBroker

    def queue_depth(self, queue_name: str) -> int | None:
        queues = self.broker.queues
        return queues[queue_name].qsize() if queue_name in queues else None

    def probe(self, queue_name: str) -> BrokerProbe:
        return StubProbe(self.broker, queue_name)
