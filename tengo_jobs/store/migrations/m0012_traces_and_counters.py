"""A caller's trace on events and runs, and monotonic run counters.

- ``tj_events.traceparent`` / ``tj_runs.traceparent``: the W3C ``traceparent`` an event was
  sent with (the event API's header, or the active span of a ``jobs.send``), copied to the
  runs it starts: their trace continues the caller's (``tengo_jobs/tracing.py``).
- ``tj_counters``: per function, monotonic totals of runs ended (``completed``, ``failed``,
  ``cancelled``), of those that had started (``started``), and of the bytes of their steps'
  stored outputs (``output_bytes``), for ``/metrics`` (Inngest's ``*_total`` counters). A
  trigger adds to them in the transaction that ends a run (whatever transition ends it),
  one upsert per run end. PostgreSQL spreads the upserts over 16 rows per function
  (``shard``: the backend's pid modulo 16) so concurrent run ends do not queue on one row
  lock; a reader sums the shards. A scrape adds the unfinished runs (through the status
  index) for the ``scheduled`` and ``started`` totals: pruning never touches these rows.
- The runs that had already ended are counted once, here.
"""

from __future__ import annotations

_FINAL = "('completed', 'failed', 'cancelled')"

_COUNTERS = ('CREATE TABLE "tj_counters" ("function_id" VARCHAR(128) NOT NULL, '
             '"shard" INTEGER NOT NULL, "completed" BIGINT NOT NULL DEFAULT 0, '
             '"failed" BIGINT NOT NULL DEFAULT 0, "cancelled" BIGINT NOT NULL DEFAULT 0, '
             '"started" BIGINT NOT NULL DEFAULT 0, "output_bytes" BIGINT NOT NULL DEFAULT 0, '
             'PRIMARY KEY ("function_id", "shard"))')

_ADD = 'completed = "tj_counters".completed + EXCLUDED.completed, ' \
       'failed = "tj_counters".failed + EXCLUDED.failed, ' \
       'cancelled = "tj_counters".cancelled + EXCLUDED.cancelled, ' \
       'started = "tj_counters".started + EXCLUDED.started, ' \
       'output_bytes = "tj_counters".output_bytes + EXCLUDED.output_bytes'

_VALUES = ("CASE WHEN NEW.status = 'completed' THEN 1 ELSE 0 END, "
           "CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END, "
           "CASE WHEN NEW.status = 'cancelled' THEN 1 ELSE 0 END, "
           "CASE WHEN NEW.started_at IS NOT NULL THEN 1 ELSE 0 END, ")

_BACKFILL = ('INSERT INTO "tj_counters" ("function_id", "shard", "completed", "failed", '
             '"cancelled", "started", "output_bytes") '
             "SELECT r.function_id, 0, SUM(CASE WHEN r.status = 'completed' THEN 1 ELSE 0 END), "
             "SUM(CASE WHEN r.status = 'failed' THEN 1 ELSE 0 END), "
             "SUM(CASE WHEN r.status = 'cancelled' THEN 1 ELSE 0 END), "
             "SUM(CASE WHEN r.started_at IS NOT NULL THEN 1 ELSE 0 END), "
             "COALESCE(SUM(o.bytes), 0) FROM \"tj_runs\" r LEFT JOIN (SELECT s.run_id, "
             "SUM({length}) AS bytes FROM \"tj_steps\" s WHERE s.output IS NOT NULL "
             "GROUP BY s.run_id) o ON o.run_id = r.id "
             f"WHERE r.status IN {_FINAL} GROUP BY r.function_id")

STATEMENTS = {
    "sqlite": [
        'ALTER TABLE "tj_events" ADD COLUMN "traceparent" VARCHAR(64)',
        'ALTER TABLE "tj_runs" ADD COLUMN "traceparent" VARCHAR(64)',
        _COUNTERS,
        _BACKFILL.format(length="LENGTH(CAST(s.output AS BLOB))"),
        'CREATE TRIGGER "tj_runs_count_end" AFTER UPDATE OF "status" ON "tj_runs" FOR EACH ROW '
        f'WHEN OLD.status NOT IN {_FINAL} AND NEW.status IN {_FINAL} BEGIN '
        'INSERT INTO "tj_counters" ("function_id", "shard", "completed", "failed", "cancelled", '
        f'"started", "output_bytes") SELECT NEW.function_id, 0, {_VALUES}'
        '(SELECT COALESCE(SUM(LENGTH(CAST(s.output AS BLOB))), 0) FROM "tj_steps" s '
        'WHERE s.run_id = NEW.id) WHERE true '
        f'ON CONFLICT ("function_id", "shard") DO UPDATE SET {_ADD}; END',
    ],
    "postgresql": [
        'ALTER TABLE "tj_events" ADD COLUMN "traceparent" VARCHAR(64)',
        'ALTER TABLE "tj_runs" ADD COLUMN "traceparent" VARCHAR(64)',
        _COUNTERS,
        _BACKFILL.format(length="octet_length(s.output)"),
        'CREATE FUNCTION "tj_count_run_end"() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN '
        'INSERT INTO "tj_counters" ("function_id", "shard", "completed", "failed", "cancelled", '
        f'"started", "output_bytes") VALUES (NEW.function_id, mod(pg_backend_pid(), 16), {_VALUES}'
        '(SELECT COALESCE(SUM(octet_length(s.output)), 0) FROM "tj_steps" s '
        'WHERE s.run_id = NEW.id)) '
        f'ON CONFLICT ("function_id", "shard") DO UPDATE SET {_ADD}; '
        'RETURN NULL; END $body$',
        'CREATE TRIGGER "tj_runs_count_end" AFTER UPDATE OF "status" ON "tj_runs" FOR EACH ROW '
        f'WHEN (OLD.status NOT IN {_FINAL} AND NEW.status IN {_FINAL}) '
        'EXECUTE FUNCTION "tj_count_run_end"()',
    ],
}
