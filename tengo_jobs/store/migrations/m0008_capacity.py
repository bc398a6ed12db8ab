"""Capacity: concurrency slots, the runs waiting for one, and throttle state.

- ``tj_slot_keys``: one row per concurrency scope key (``c:fn:<function>``,
  ``c:fn:<function>:<key>=<value>``, ``c:env:<key>=<value>``) with its current limit (``capacity``; the
  code that last took or gave back a slot wrote it: raising a limit and redeploying takes
  effect without a restart) and ``served``, the round-robin counter of fair keys. Locked
  (``SELECT … FOR UPDATE`` on PostgreSQL) by every transition that counts its slots.
- ``tj_slots``: a slot held by an executing run, a lease that expires with the run's lease
  (the executor's lease keeper renews both), so a killed worker's slots come back.
- ``tj_slot_waiters``: a run refused a slot, waiting on one scope key, in the order
  ``queue_at`` (``created_at - priority * 1000``); ``fair_key`` is its keyed limit's scope
  key when waiting for a function-wide slot. Such a run stays ``queued`` with no wake-up
  due until a slot is given back.
- ``tj_throttles``: the GCRA theoretical arrival time per throttle key.

Functions without these options never touch the tables.
"""

from __future__ import annotations

_COMMON = [
    'CREATE TABLE "tj_slot_keys" ("scope_key" VARCHAR(300) NOT NULL PRIMARY KEY, '
    '"capacity" INTEGER NOT NULL, "served" BIGINT NOT NULL DEFAULT 0)',
    'CREATE TABLE "tj_slots" ("scope_key" VARCHAR(300) NOT NULL, "run_id" VARCHAR(32) NOT NULL, '
    '"lease_expires_at" BIGINT NOT NULL, PRIMARY KEY ("scope_key", "run_id"))',
    'CREATE INDEX "tj_slots_run_id" ON "tj_slots" ("run_id")',
    'CREATE TABLE "tj_slot_waiters" ("run_id" VARCHAR(32) NOT NULL PRIMARY KEY, '
    '"scope_key" VARCHAR(300) NOT NULL, "queue_at" BIGINT NOT NULL, '
    '"fair_key" VARCHAR(300), "since" BIGINT NOT NULL)',
    'CREATE INDEX "tj_slot_waiters_scope_key_queue_at" ON "tj_slot_waiters" '
    '("scope_key", "queue_at")',
    'CREATE TABLE "tj_throttles" ("key" VARCHAR(300) NOT NULL PRIMARY KEY, '
    '"tat" BIGINT NOT NULL)',
]

STATEMENTS = {"sqlite": _COMMON, "postgresql": _COMMON}
