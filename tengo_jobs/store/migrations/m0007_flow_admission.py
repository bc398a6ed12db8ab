"""Admission-time flow control (``idempotency``, ``rate_limit``, ``singleton``,
``debounce``, ``batch_events``): the state the rules are decided on, in the database so
they hold across every process and a broker flush.

- ``tj_flow_keys``: one row per (function, rule kind, key value): the idempotency claim
  (until ``expires_at``), the rate limit's GCRA theoretical arrival time (``value``), the
  singleton's holder, the debounce's pending run and the open batch (``run_id``, with
  ``first_at`` the first event of the burst and ``value`` the batch's size). Intakes lock
  the row (``SELECT … FOR UPDATE``) to decide.
- ``tj_skips``: why an event started no run of a function (``rate_limit``,
  ``idempotency``, ``singleton``) or which run it was folded into (``debounced``,
  ``batched``); read by ``GET /api/events/<id>``, the CLI and ``/metrics``.
- ``tj_batch_events``: the events of a batch run, in order.
"""

from __future__ import annotations

_COMMON = [
    'CREATE TABLE "tj_flow_keys" ("function_id" VARCHAR(128) NOT NULL, '
    '"kind" VARCHAR(16) NOT NULL, "key" VARCHAR(300) NOT NULL, "run_id" VARCHAR(32), '
    '"value" BIGINT NOT NULL DEFAULT 0, "first_at" BIGINT, "expires_at" BIGINT, '
    'PRIMARY KEY ("function_id", "kind", "key"))',
    'CREATE TABLE "tj_batch_events" ("run_id" VARCHAR(32) NOT NULL, '
    '"position" INTEGER NOT NULL, "event_id" VARCHAR(32) NOT NULL, '
    'PRIMARY KEY ("run_id", "position"))',
    'CREATE INDEX "tj_skips_event_id" ON "tj_skips" ("event_id")',
    'CREATE INDEX "tj_skips_function_id_at" ON "tj_skips" ("function_id", "at")',
]

STATEMENTS = {
    "sqlite": [
        'CREATE TABLE "tj_skips" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"event_id" VARCHAR(32) NOT NULL, "function_id" VARCHAR(128) NOT NULL, '
        '"reason" VARCHAR(16) NOT NULL, "run_id" VARCHAR(32), "at" INTEGER NOT NULL)',
        *_COMMON,
    ],
    "postgresql": [
        'CREATE TABLE "tj_skips" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"event_id" VARCHAR(32) NOT NULL, "function_id" VARCHAR(128) NOT NULL, '
        '"reason" VARCHAR(16) NOT NULL, "run_id" VARCHAR(32), "at" BIGINT NOT NULL)',
        *_COMMON,
    ],
}
