"""Dramatiq middleware of tengo_jobs: finishing the boot when a worker process starts.

``dramatiq actors`` imports the function modules, whose :class:`~tengo_jobs.Jobs` client
binds the process runtime and so declares the run-executing actor — opening no
connection. The runtime adds :class:`BootOnWorkerStart` to its broker so that, once the
worker process has booted, it finishes the boot the way every process kind does
(:func:`tengo_jobs.runtime.boot`): extensions' secrets redacted, the production check,
migrations. It lives here, below the runtime, because the runtime installs it.
"""

from __future__ import annotations

import logging
from typing import Callable

from dramatiq import Broker
from dramatiq.middleware import Middleware

from ..errors import TengoJobsError

log = logging.getLogger(__name__)


class BootOnWorkerStart(Middleware):
    """Calls ``boot()`` once, when a Dramatiq worker process has booted. A worker that must
    not start (production with unsafe settings) exits with status 2 before it consumes."""

    def __init__(self, boot: Callable[[], object]):
        self._boot = boot

    def after_process_boot(self, broker: Broker) -> None:
        try:
            self._boot()
        except TengoJobsError as exc:
            log.critical("worker: %s", exc)
            # Not an Exception, so Dramatiq does not log it and carry on: this worker process
            # exits, and Dramatiq's main process shuts down with its code.
            raise SystemExit(2) from None
