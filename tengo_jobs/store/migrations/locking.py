"""The lock that serializes schema changes across processes."""

from __future__ import annotations

import peewee as pw

LOCK_ID = 0x7467_6A6F  # "tgjo": the advisory lock key of migrations


def lock(db: pw.Database) -> None:
    """Inside a transaction: wait until no other process changes the schema (PostgreSQL's
    transaction-scoped advisory lock). SQLite needs none: its ``BEGIN IMMEDIATE`` already
    takes the database's one write lock."""
    if isinstance(db, pw.PostgresqlDatabase):
        db.execute_sql(  # type: ignore[no-untyped-call]  # peewee is untyped
            "SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
