"""Slot counters: a concurrency scope key counts its slots in its own row.

- ``tj_slot_keys.used``: how many ``tj_slots`` rows the key has (live, or expired and not
  yet swept). A slot is taken by one conditional ``UPDATE … SET used = used + 1 WHERE
  used < limit`` with its ``tj_slots`` row, and given back by deleting the row and
  decrementing the counter in the same statement, so a limit that does not bind costs no
  ``count(*)`` and holds the key row's lock only inside one statement. Filled here from
  the slots already held.
- ``tj_slot_keys.solo``: 1 when the key is the only limit of the runs that take it (the
  code that took a slot last wrote it). The acquire of a run takes a slot of its function's
  ``c:fn:<function>`` key itself when that key is ``solo`` and under its limit, in the same
  statement, so such a limit costs no statement of its own to take; the executor checks
  the slot against the deployed limits and gives it back when they differ.
- ``tj_slot_keys.waiting``: 1 once a run parked waiting on the key (set under the key's
  lock when it parks), 0 again when a wake-up finds no waiter left: a give-back reads it
  from the row it decrements and looks for a waiter to wake only when it is 1.
"""

from __future__ import annotations

_COMMON = [
    'ALTER TABLE "tj_slot_keys" ADD COLUMN "used" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "tj_slot_keys" ADD COLUMN "waiting" INTEGER NOT NULL DEFAULT 0',
    'ALTER TABLE "tj_slot_keys" ADD COLUMN "solo" INTEGER NOT NULL DEFAULT 0',
    'UPDATE "tj_slot_keys" SET "used" = (SELECT count(*) FROM "tj_slots" s '
    'WHERE s."scope_key" = "tj_slot_keys"."scope_key"), "waiting" = CASE WHEN EXISTS '
    '(SELECT 1 FROM "tj_slot_waiters" w WHERE w."scope_key" = "tj_slot_keys"."scope_key") '
    'THEN 1 ELSE 0 END',
]

STATEMENTS = {"sqlite": _COMMON, "postgresql": _COMMON}
