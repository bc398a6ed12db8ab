"""Retention and heartbeats.

- ``tj_heartbeats``: one row per worker or scheduler process (primary key ``(host, pid)``),
  written every ``TENGO_HEARTBEAT_INTERVAL`` by the process itself: its kind, version,
  threads busy, when it started, when it was last seen, and its interval (a reader judges a
  process down after three of *its* intervals without a beat).
- ``tj_maintenance``: the last result of a maintenance duty (``name`` 'prune': when it ran
  and what it deleted, JSON), so ``/healthz`` reports it without counting tables.
- Indexes the pruning walks instead of scanning tables: finished runs by ``ended_at``
  (partial: unfinished runs are not in it), runs by ``parent_run_id`` (partial: only invoked
  children), the events a batch run holds (``tj_batch_events.event_id``), and the dedupe
  claims by expiry.
"""

from __future__ import annotations

_COMMON = [
    'CREATE TABLE "tj_heartbeats" ("host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, '
    '"kind" VARCHAR(16) NOT NULL, "version" VARCHAR(64) NOT NULL, '
    '"threads_busy" INTEGER NOT NULL DEFAULT 0, "started_at" BIGINT NOT NULL, '
    '"last_seen" BIGINT NOT NULL, "interval_ms" INTEGER NOT NULL, PRIMARY KEY ("host", "pid"))',
    'CREATE INDEX "tj_heartbeats_last_seen" ON "tj_heartbeats" ("last_seen")',
    'CREATE TABLE "tj_maintenance" ("name" VARCHAR(32) NOT NULL PRIMARY KEY, '
    '"ran_at" BIGINT NOT NULL, "detail" TEXT NOT NULL)',
    'CREATE INDEX "tj_runs_finished_ended_at" ON "tj_runs" ("ended_at") '
    'WHERE "ended_at" IS NOT NULL',
    'CREATE INDEX "tj_runs_parent_run_id" ON "tj_runs" ("parent_run_id") '
    'WHERE "parent_run_id" IS NOT NULL',
    'CREATE INDEX "tj_batch_events_event_id" ON "tj_batch_events" ("event_id")',
    'CREATE INDEX "tj_event_dedupe_expires_at" ON "tj_event_dedupe" ("expires_at")',
]

STATEMENTS = {"sqlite": _COMMON, "postgresql": _COMMON}
