"""The background sender of wake-ups, so callers do not wait on the broker.

The rows are committed before a wake-up is handed over; sending it is the broker's
round trip, which an HTTP caller or a finishing run should not pay. A wake-up lost
because the process died before it was sent is found by the sweeper.
"""

from __future__ import annotations

import atexit
import queue
import threading
from typing import Any, Callable, Iterable

BATCH_MAX = 100  # hand-overs merged into one send when several are waiting


class Waker:
    """Sends wake-ups from a background thread through ``send(run_ids)``.

    Run ids handed to :meth:`wake` leave in order, right away, in batches when several
    are waiting. :meth:`flush` (called at exit and by ``Runtime.close``) sends what is
    left; a process killed before that loses the wake-ups, not the runs."""

    def __init__(self, send: Callable[[list[str]], object]):
        self._send = send
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
            while len(batches) < BATCH_MAX:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._send([r for batch in batches for r in batch])
            with self._lock:
                self._pending -= len(batches)
                if self._pending == 0:
                    self._idle.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every wake-up handed over so far was sent; ``False`` on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)
