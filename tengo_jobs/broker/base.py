"""What tengo_jobs asks of a broker beyond Dramatiq's own API: :class:`BrokerAdapter`.

Dramatiq's ``Broker`` sends and consumes messages; tengo_jobs also checks that the broker
answers (``/healthz``), counts the messages waiting (``/metrics``), asks whether it lost
its data (the sweeper's :class:`~tengo_jobs.engine.timekeeper.BrokerProbe`), sends many
wake-ups at once, and decides whether sends leave from a background thread. Each broker
module (``redis.py``, ``stub.py``; ``rabbitmq.py`` later) provides an adapter that
answers these for its broker; the rest of tengo_jobs only talks to adapters, and never
asks which broker it has.

This base class is the answer for a broker nobody wrote an adapter for: it is always
reachable, its depth unknown, its probe knows nothing, and messages go one by one.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import dramatiq

from ..engine.timekeeper import BrokerProbe

log = logging.getLogger(__name__)


class BrokerAdapter:
    """One broker's answers to tengo_jobs' questions (see the module docstring)."""

    #: Whether sends should leave from a background thread (:class:`~.waker.Waker`): true
    #: for a broker across the network, false for an in-process one, whose send is a
    #: queue put that tests expect to have happened when ``send`` returns.
    needs_waker: ClassVar[bool] = False

    def __init__(self, broker: dramatiq.Broker):
        self.broker = broker

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""

    def queue_depth(self, queue_name: str) -> int | None:
        """Messages waiting in ``queue_name``; ``None`` when the broker cannot tell."""
        return None

    def probe(self, queue_name: str) -> BrokerProbe:
        """What the sweeper asks about ``queue_name`` (lost data, oldest waiting message)."""
        return BrokerProbe()

    def send_many(self, actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> bool:
        """Send a wake-up per run in one round trip; ``False`` when this broker has no bulk
        path (the caller then sends one by one)."""
        return False

    def send_now(self, actor: dramatiq.Actor[..., Any], run_ids: list[str]) -> int:
        """Send one wake-up per run (the rows are committed); returns how many were sent.

        A broker failure here loses nothing (the sweeper finds the runs), so it is logged,
        not raised: a caller whose event was accepted must not be told otherwise."""
        if not run_ids:
            return 0
        try:
            if self.send_many(actor, run_ids):
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
