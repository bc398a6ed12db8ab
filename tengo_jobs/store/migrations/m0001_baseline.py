"""The system schema as it stood when migrations began: Peewee's ``create_table`` output for
the models of ``store/schema.py`` at that time, frozen here as text so that later changes to
the models never change what this migration does.

A database created before migrations (by ``create_table`` and the column/index top-ups that
preceded this package) has some or all of these tables and no ``tj_migrations``:
:func:`upgrade` then brings it to exactly this baseline — missing tables created, the columns
added since a table was first created (``tj_runs.inflight``, the wait match columns) added with
their defaults, missing indexes created — instead of creating the tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Operations

# (table, CREATE TABLE on SQLite, CREATE TABLE on PostgreSQL), in creation order.
TABLES = [
    ("tj_events",
     'CREATE TABLE "tj_events" ("id" VARCHAR(32) NOT NULL PRIMARY KEY, "name" VARCHAR(256) NOT NULL, "data" TEXT NOT NULL, "user" TEXT, "external_id" VARCHAR(256), "ts" INTEGER NOT NULL, "v" VARCHAR(64), "received_at" INTEGER NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_events" ("id" VARCHAR(32) NOT NULL PRIMARY KEY, "name" VARCHAR(256) NOT NULL, "data" TEXT NOT NULL, "user" TEXT, "external_id" VARCHAR(256), "ts" BIGINT NOT NULL, "v" VARCHAR(64), "received_at" BIGINT NOT NULL)'),  # noqa: E501
    ("tj_event_dedupe",
     'CREATE TABLE "tj_event_dedupe" ("key" VARCHAR(300) NOT NULL PRIMARY KEY, "event_id" VARCHAR(32) NOT NULL, "expires_at" INTEGER NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_event_dedupe" ("key" VARCHAR(300) NOT NULL PRIMARY KEY, "event_id" VARCHAR(32) NOT NULL, "expires_at" BIGINT NOT NULL)'),  # noqa: E501
    ("tj_runs",
     'CREATE TABLE "tj_runs" ("id" VARCHAR(32) NOT NULL PRIMARY KEY, "app_id" VARCHAR(128) NOT NULL, "function_id" VARCHAR(128) NOT NULL, "event_id" VARCHAR(32), "status" VARCHAR(16) NOT NULL, "output" TEXT, "error" TEXT, "attempt" INTEGER NOT NULL, "created_at" INTEGER NOT NULL, "started_at" INTEGER, "ended_at" INTEGER, "wake_at" INTEGER NOT NULL, "enqueued_at" INTEGER, "lease_owner" VARCHAR(64), "lease_expires_at" INTEGER, "unique_key" VARCHAR(300), "parent_run_id" VARCHAR(32), "inflight" INTEGER NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_runs" ("id" VARCHAR(32) NOT NULL PRIMARY KEY, "app_id" VARCHAR(128) NOT NULL, "function_id" VARCHAR(128) NOT NULL, "event_id" VARCHAR(32), "status" VARCHAR(16) NOT NULL, "output" TEXT, "error" TEXT, "attempt" INTEGER NOT NULL, "created_at" BIGINT NOT NULL, "started_at" BIGINT, "ended_at" BIGINT, "wake_at" BIGINT NOT NULL, "enqueued_at" BIGINT, "lease_owner" VARCHAR(64), "lease_expires_at" BIGINT, "unique_key" VARCHAR(300), "parent_run_id" VARCHAR(32), "inflight" INTEGER NOT NULL)'),  # noqa: E501
    ("tj_steps",
     'CREATE TABLE "tj_steps" ("run_id" VARCHAR(32) NOT NULL, "key" VARCHAR(300) NOT NULL, "name" VARCHAR(256) NOT NULL, "kind" VARCHAR(16) NOT NULL, "position" INTEGER NOT NULL, "status" VARCHAR(16) NOT NULL, "attempts" INTEGER NOT NULL, "output" TEXT, "error" TEXT, "started_at" INTEGER, "ended_at" INTEGER, "wake_at" INTEGER, PRIMARY KEY ("run_id", "key"))',  # noqa: E501
     'CREATE TABLE "tj_steps" ("run_id" VARCHAR(32) NOT NULL, "key" VARCHAR(300) NOT NULL, "name" VARCHAR(256) NOT NULL, "kind" VARCHAR(16) NOT NULL, "position" INTEGER NOT NULL, "status" VARCHAR(16) NOT NULL, "attempts" INTEGER NOT NULL, "output" TEXT, "error" TEXT, "started_at" BIGINT, "ended_at" BIGINT, "wake_at" BIGINT, PRIMARY KEY ("run_id", "key"))'),  # noqa: E501
    ("tj_timers",
     'CREATE TABLE "tj_timers" ("id" INTEGER NOT NULL PRIMARY KEY, "run_id" VARCHAR(32) NOT NULL, "due_at" INTEGER NOT NULL, "kind" VARCHAR(16) NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_timers" ("id" SERIAL NOT NULL PRIMARY KEY, "run_id" VARCHAR(32) NOT NULL, "due_at" BIGINT NOT NULL, "kind" VARCHAR(16) NOT NULL)'),  # noqa: E501
    ("tj_waits",
     'CREATE TABLE "tj_waits" ("id" INTEGER NOT NULL PRIMARY KEY, "run_id" VARCHAR(32) NOT NULL, "step_key" VARCHAR(300) NOT NULL, "event_name" VARCHAR(256) NOT NULL, "expression" TEXT, "match_event" TEXT NOT NULL, "expires_at" INTEGER NOT NULL, "created_at" INTEGER NOT NULL, "match_path" VARCHAR(300), "match_key" VARCHAR(300), "exact" INTEGER NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_waits" ("id" SERIAL NOT NULL PRIMARY KEY, "run_id" VARCHAR(32) NOT NULL, "step_key" VARCHAR(300) NOT NULL, "event_name" VARCHAR(256) NOT NULL, "expression" TEXT, "match_event" TEXT NOT NULL, "expires_at" BIGINT NOT NULL, "created_at" BIGINT NOT NULL, "match_path" VARCHAR(300), "match_key" VARCHAR(300), "exact" BOOLEAN NOT NULL)'),  # noqa: E501
    ("tj_wait_keys",
     'CREATE TABLE "tj_wait_keys" ("event_name" VARCHAR(256) NOT NULL, "match_path" VARCHAR(300) NOT NULL, PRIMARY KEY ("event_name", "match_path"))',  # noqa: E501
     'CREATE TABLE "tj_wait_keys" ("event_name" VARCHAR(256) NOT NULL, "match_path" VARCHAR(300) NOT NULL, PRIMARY KEY ("event_name", "match_path"))'),  # noqa: E501
    ("tj_cron_state",
     'CREATE TABLE "tj_cron_state" ("function_id" VARCHAR(128) NOT NULL PRIMARY KEY, "last_tick_ms" INTEGER NOT NULL, "updated_at" INTEGER NOT NULL)',  # noqa: E501
     'CREATE TABLE "tj_cron_state" ("function_id" VARCHAR(128) NOT NULL PRIMARY KEY, "last_tick_ms" BIGINT NOT NULL, "updated_at" BIGINT NOT NULL)'),  # noqa: E501
]

# The same text on both databases; "{exists}" is empty when creating the tables and
# "IF NOT EXISTS " when bringing an older database to the baseline.
INDEXES = [
    'CREATE INDEX {exists}"tj_events_name" ON "tj_events" ("name")',
    'CREATE INDEX {exists}"tj_events_external_id" ON "tj_events" ("external_id")',
    'CREATE INDEX {exists}"tj_events_received_at" ON "tj_events" ("received_at")',
    'CREATE INDEX {exists}"tj_runs_function_id" ON "tj_runs" ("function_id")',
    'CREATE INDEX {exists}"tj_runs_event_id" ON "tj_runs" ("event_id")',
    'CREATE INDEX {exists}"tj_runs_status" ON "tj_runs" ("status")',
    'CREATE INDEX {exists}"tj_runs_created_at" ON "tj_runs" ("created_at")',
    'CREATE UNIQUE INDEX {exists}"tj_runs_unique_key" ON "tj_runs" ("unique_key")',
    'CREATE INDEX {exists}"tj_runs_status_wake_at" ON "tj_runs" ("status", "wake_at")',
    'CREATE INDEX {exists}"tj_runs_function_id_created_at" ON "tj_runs" ("function_id", "created_at")',
    'CREATE UNIQUE INDEX {exists}"tj_timers_run_id" ON "tj_timers" ("run_id")',
    'CREATE INDEX {exists}"tj_timers_due_at" ON "tj_timers" ("due_at")',
    'CREATE INDEX {exists}"tj_waits_event_name" ON "tj_waits" ("event_name")',
    'CREATE UNIQUE INDEX {exists}"tj_waits_run_id_step_key" ON "tj_waits" ("run_id", "step_key")',
    'CREATE INDEX {exists}"tj_waits_event_name_match_path_match_key" '
    'ON "tj_waits" ("event_name", "match_path", "match_key")',
]

# Columns added to a table after it was first created, and how to add each to an older
# database (existing rows take the default). PostgreSQL then drops the default so the column
# is exactly as CREATE TABLE above makes it; SQLite cannot drop one, and it changes nothing
# there (every insert names the column).
LATER_COLUMNS = {
    "sqlite": [
        ("tj_runs", "inflight", ['ALTER TABLE "tj_runs" ADD COLUMN "inflight" INTEGER NOT NULL DEFAULT 0']),
        ("tj_waits", "match_path", ['ALTER TABLE "tj_waits" ADD COLUMN "match_path" VARCHAR(300)']),
        ("tj_waits", "match_key", ['ALTER TABLE "tj_waits" ADD COLUMN "match_key" VARCHAR(300)']),
        ("tj_waits", "exact", ['ALTER TABLE "tj_waits" ADD COLUMN "exact" INTEGER NOT NULL DEFAULT 0']),
    ],
    "postgresql": [
        ("tj_runs", "inflight", ['ALTER TABLE "tj_runs" ADD COLUMN "inflight" INTEGER NOT NULL DEFAULT 0',
                                 'ALTER TABLE "tj_runs" ALTER COLUMN "inflight" DROP DEFAULT']),
        ("tj_waits", "match_path", ['ALTER TABLE "tj_waits" ADD COLUMN "match_path" VARCHAR(300)']),
        ("tj_waits", "match_key", ['ALTER TABLE "tj_waits" ADD COLUMN "match_key" VARCHAR(300)']),
        ("tj_waits", "exact", ['ALTER TABLE "tj_waits" ADD COLUMN "exact" BOOLEAN NOT NULL DEFAULT false',
                               'ALTER TABLE "tj_waits" ALTER COLUMN "exact" DROP DEFAULT']),
    ],
}


def upgrade(op: Operations) -> None:
    """Create the baseline, or bring a database from before migrations to it."""
    tables = op.tables()
    older = any(name in tables for name, _, _ in TABLES)
    for name, sqlite_ddl, postgres_ddl in TABLES:
        if name not in tables:
            op.execute(postgres_ddl if op.dialect == "postgresql" else sqlite_ddl)
        else:  # an older database: top up the columns added since
            have = op.columns(name)
            for table, column, statements in LATER_COLUMNS[op.dialect]:
                if table == name and column not in have:
                    for statement in statements:
                        op.execute(statement)
    for statement in INDEXES:
        op.execute(statement.format(exists="IF NOT EXISTS " if older else ""))
