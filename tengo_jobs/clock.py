"""Clocks. Every decision by time takes its ``now`` from one of these, so tests move time."""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time in epoch milliseconds."""

    def now(self) -> int:
        return int(time.time() * 1000)


class FakeClock(Clock):
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start_ms: int | None = None):
        self._now = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        with self._lock:
            self._now += int(ms)
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            self._now = int(ms)
