"""A process's heartbeat: a thread that writes the process's row every interval.

Workers start one when their process has booted (``Runtime.start_heartbeat``, called by
the worker's boot); the scheduler beats from its own loop (:meth:`Heartbeat.beat_now`).
A beat that fails (the database is down) is logged and tried again at the next interval:
a process that cannot reach the database is rightly seen as down by the others.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Callable

from ..store import Beat

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats for this process (``kind``: ``worker`` or ``scheduler``) every ``interval_ms``;
    ``busy()`` says how many of its threads are executing runs."""

    def __init__(self, *, store: "Store", clock: "Clock", kind: str, version: str,
                 interval_ms: int, busy: Callable[[], int] = lambda: 0):
        self.store = store
        self.clock = clock
        self.kind = kind
        self.version = version
        self.interval_ms = interval_ms
        self.busy = busy
        self.started_at = clock.now()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat_now(self) -> bool:
        """Write this process's row now; ``False`` (logged once per outage) if it failed."""
        beat = Beat(host=socket.gethostname(), pid=os.getpid(), kind=self.kind,
                    version=self.version, threads_busy=self.busy(), started_at=self.started_at,
                    interval_ms=self.interval_ms)
        try:
            self.store.heartbeats.beat(beat, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            if not self._failing:
                log.warning("heartbeat failed (%s: %s); retrying every %d ms",
                            type(exc).__name__, exc, self.interval_ms)
            self._failing = True
            return False
        self._failing = False
        return True

    def start(self) -> "Heartbeat":
        """Beat now, then every interval from a daemon thread."""
        if self._thread is None:
            self.beat_now()
            self._thread = threading.Thread(target=self._run, name=f"tengo-heartbeat-{self.kind}",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_ms / 1000):
            self.beat_now()
        self.store.close_thread_connection()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
