"""The worker process: ``dramatiq actors`` (or ``dramatiq MODULE``), Dramatiq's own CLI.

Dramatiq imports the function modules, whose :class:`~tengo_jobs.Jobs` client binds the
process runtime and so declares the run-executing actor on its broker — opening no
connection. When the worker process has booted, :class:`BootOnWorkerStart` (a broker
middleware the runtime installs, :mod:`tengo_jobs.broker.middleware`) finishes the boot
the way every process kind does (:func:`tengo_jobs.runtime.boot`): extensions' secrets
redacted, the production check, migrations. A worker that must not start (production
with unsafe settings) exits with status 2 before it consumes anything.

There is no loop of ours here: Dramatiq's worker is the loop. This module only names the
process kind in ``process/`` beside ``web/``, ``scheduler.py`` and ``dev.py``.
"""

from __future__ import annotations

from ..broker import BootOnWorkerStart

__all__ = ["BootOnWorkerStart"]
