"""Pending operations: a run may owe several timers (one per step that waits), and a run
carries a signal counter.

- ``tj_timers.step_key``: the step a timer belongs to (``''`` for a timer of the run as a
  whole, which every existing row is). The uniqueness moves from ``run_id`` alone
  (``tj_timers_run_id``) to ``(run_id, step_key)`` (``tj_timers_run_id_step_key``).
- ``tj_runs.signal``: a counter on each run for the engine's pending operations; 0 for every
  existing run.
"""

from __future__ import annotations

STATEMENTS = {
    "sqlite": [
        'ALTER TABLE "tj_timers" ADD COLUMN "step_key" VARCHAR(300) NOT NULL DEFAULT \'\'',
        'DROP INDEX "tj_timers_run_id"',
        'CREATE UNIQUE INDEX "tj_timers_run_id_step_key" ON "tj_timers" ("run_id", "step_key")',
        'ALTER TABLE "tj_runs" ADD COLUMN "signal" INTEGER NOT NULL DEFAULT 0',
    ],
    "postgresql": [
        'ALTER TABLE "tj_timers" ADD COLUMN "step_key" VARCHAR(300) NOT NULL DEFAULT \'\'',
        'DROP INDEX "tj_timers_run_id"',
        'CREATE UNIQUE INDEX "tj_timers_run_id_step_key" ON "tj_timers" ("run_id", "step_key")',
        'ALTER TABLE "tj_runs" ADD COLUMN "signal" BIGINT NOT NULL DEFAULT 0',
    ],
}
