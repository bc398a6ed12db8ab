"""Paused functions: ``tj_paused_functions`` (``function_id`` primary key, ``paused_at`` in
epoch ms; ``skipped_ticks`` and ``last_skipped_tick``: the cron ticks the scheduler skipped
while it was paused), one row per paused function.

A paused function's runs are still created (events are not lost), but none of them is
acquired: the acquire statement and the runnable predicate (``store/statements.py``:
``ACQUIRE``, ``RUNNABLE``) carry ``NOT EXISTS (SELECT 1 FROM tj_paused_functions p WHERE
p.function_id = tj_runs.function_id)``, a probe of this table's primary key inside the
statement already made. The table holds a handful of rows at most, and its state lives in
the database, so it survives restarts and holds for every worker process.
"""

from __future__ import annotations

STATEMENTS = {
    "sqlite": ['CREATE TABLE "tj_paused_functions" ("function_id" VARCHAR(128) NOT NULL '
               'PRIMARY KEY, "paused_at" INTEGER NOT NULL, "skipped_ticks" INTEGER NOT NULL '
               'DEFAULT 0, "last_skipped_tick" INTEGER)'],
    "postgresql": ['CREATE TABLE "tj_paused_functions" ("function_id" VARCHAR(128) NOT NULL '
                   'PRIMARY KEY, "paused_at" BIGINT NOT NULL, "skipped_ticks" INTEGER NOT NULL '
                   'DEFAULT 0, "last_skipped_tick" BIGINT)'],
}
