"""Cancellation by event and run deadlines (``cancel_on``, ``timeouts``).

- ``tj_waits.kind``: ``'step'`` for a ``step.wait_for_event`` (every existing row), or
  ``'cancel'`` for a run's ``cancel_on`` matcher (step key ``cancel:<n>``), found through
  the same index (event name, match path, match key).
- ``tj_runs.cancel_requested``: the error (JSON ``{name, message}``) of a cancellation that
  reached the run while one of its steps executed; the execution keeps that step's result
  and stops before the next one. ``NULL`` for every existing run.
"""

from __future__ import annotations

STATEMENTS = {
    "sqlite": [
        'ALTER TABLE "tj_waits" ADD COLUMN "kind" VARCHAR(16) NOT NULL DEFAULT \'step\'',
        'ALTER TABLE "tj_runs" ADD COLUMN "cancel_requested" TEXT',
    ],
    "postgresql": [
        'ALTER TABLE "tj_waits" ADD COLUMN "kind" VARCHAR(16) NOT NULL DEFAULT \'step\'',
        'ALTER TABLE "tj_runs" ADD COLUMN "cancel_requested" TEXT',
    ],
}
