"""Performance summaries, maintained by the scheduler (``store/stats.py``), so the dashboard's
performance and functions pages read a few hundred summary rows instead of scanning runs.

- ``tj_stats``: per function and 5-minute bucket (``bucket``: its start, epoch ms), and
  again per hour (``span``: the bucket's length, 300000 or 3600000 ms): runs
  ``started`` (created in the bucket), ``completed``, ``failed``, ``cancelled`` (ended in
  it), and three histograms — run duration (``d00``…``d21``), queue delay (event due to
  first step, ``q…``) and step duration (``s…``) — each with its count and sum (ms); the
  22 buckets' upper bounds are :data:`BOUNDS_MS` (the last one open).
- ``tj_stats_steps``: per function, hour and step name: count, failures, sum and the
  step-duration histogram (the slowest steps).
- ``tj_stats_errors``: per function, hour and error (name, message cut to 200
  characters): count and the latest failed run (top errors grouped by message).

Rolled up from the runs that ended since the last pass (``tj_maintenance`` row
``stats``: the watermarks), on the partial index on ``tj_runs.ended_at`` (m0009) and the
``created_at`` index; the hot path (complete, fail) writes nothing more.
"""

from __future__ import annotations

BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
             120_000, 300_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000,
             86_400_000)  # frozen here: 21 bounds, 22 buckets per histogram


def _hist(prefix: str) -> str:
    return ", ".join(f'"{prefix}{i:02d}" INTEGER NOT NULL DEFAULT 0'
                     for i in range(len(BOUNDS_MS) + 1))


def _statements(big: str) -> list[str]:
    return [
        f'CREATE TABLE "tj_stats" ("span" INTEGER NOT NULL, "bucket" {big} NOT NULL, '
        '"function_id" VARCHAR(128) NOT NULL, '
        '"started" INTEGER NOT NULL DEFAULT 0, "completed" INTEGER NOT NULL DEFAULT 0, '
        '"failed" INTEGER NOT NULL DEFAULT 0, "cancelled" INTEGER NOT NULL DEFAULT 0, '
        f'"duration_n" INTEGER NOT NULL DEFAULT 0, "duration_sum" {big} NOT NULL DEFAULT 0, '
        f'"queue_n" INTEGER NOT NULL DEFAULT 0, "queue_sum" {big} NOT NULL DEFAULT 0, '
        f'"step_n" INTEGER NOT NULL DEFAULT 0, "step_sum" {big} NOT NULL DEFAULT 0, '
        f'{_hist("d")}, {_hist("q")}, {_hist("s")}, '
        'PRIMARY KEY ("span", "bucket", "function_id"))',
        f'CREATE TABLE "tj_stats_steps" ("bucket" {big} NOT NULL, '
        '"function_id" VARCHAR(128) NOT NULL, "step" VARCHAR(256) NOT NULL, '
        '"n" INTEGER NOT NULL DEFAULT 0, "failed" INTEGER NOT NULL DEFAULT 0, '
        f'"total_ms" {big} NOT NULL DEFAULT 0, {_hist("s")}, '
        'PRIMARY KEY ("bucket", "function_id", "step"))',
        f'CREATE TABLE "tj_stats_errors" ("bucket" {big} NOT NULL, '
        '"function_id" VARCHAR(128) NOT NULL, "message" VARCHAR(200) NOT NULL, '
        '"name" VARCHAR(128) NOT NULL, "n" INTEGER NOT NULL DEFAULT 0, '
        f'"last_run_id" VARCHAR(32) NOT NULL, "last_at" {big} NOT NULL, '
        'PRIMARY KEY ("bucket", "function_id", "message"))',
    ]


STATEMENTS = {"sqlite": _statements("INTEGER"), "postgresql": _statements("BIGINT")}
