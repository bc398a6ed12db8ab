"""A log of failed step attempts: ``tj_step_attempts``, one row per attempt that failed.

A step's row keeps its first start, last end, attempt count and last error; this table keeps
each failed attempt's number, start, end, error (JSON) and ``retry_at`` (when the next
attempt was due), keyed by run, step and attempt. It is written only when an attempt fails,
in the transaction of the step row that records the failure (a retry, a final failure, an
attempt charged to an execution that died), so a run whose steps succeed at once writes
nothing more. Pruned with its run (``store/retention.py``).
"""

from __future__ import annotations


def _statements(big: str) -> list[str]:
    return [
        'CREATE TABLE "tj_step_attempts" ("run_id" VARCHAR(32) NOT NULL, '
        '"step_key" VARCHAR(300) NOT NULL, "attempt" INTEGER NOT NULL, '
        f'"started_at" {big}, "ended_at" {big}, "retry_at" {big}, "error" TEXT, '
        'PRIMARY KEY ("run_id", "step_key", "attempt"))',
    ]


STATEMENTS = {"sqlite": _statements("INTEGER"), "postgresql": _statements("BIGINT")}
