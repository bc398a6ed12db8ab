"""What differs between SQLite and PostgreSQL, in one object per database.

The store writes its SQL once, with ``?`` placeholders; :meth:`Dialect.sql` turns a
statement into the database's own (``%s`` for psycopg) and caches it. Beyond
placeholders, the two differ in a few places, and each is a method here:

- **round trips**: PostgreSQL is a network round trip per statement, so the hot
  statements are single statements there (data-modifying CTEs: take the lease and read
  the run, its event and its steps; a fenced step upsert; accept a batch of events).
  SQLite runs in-process, has no data-modifying CTEs, and does the same work as a few
  statements inside one ``BEGIN IMMEDIATE`` transaction.
- **row locks**: ``FOR UPDATE [SKIP LOCKED]`` on PostgreSQL, so several schedulers
  share timers; SQLite has one writer at a time and needs none.
- **batches**: ``executemany`` (pipelined by psycopg 3) for many rows.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Sequence

import peewee as pw

from ..errors import ConfigurationError


class Dialect:
    """The database-specific parts of the store; one instance per database."""

    name = "?"
    postgres = False
    for_update = ""
    skip_locked = ""

    def __init__(self, db: pw.Database):
        self.db = db

    @staticmethod
    def of(db: pw.Database) -> "Dialect":
        if isinstance(db, pw.PostgresqlDatabase):
            return PostgresDialect(db)
        if isinstance(db, pw.SqliteDatabase):
            return SqliteDialect(db)
        raise ConfigurationError(f"tengo_jobs runs on PostgreSQL or SQLite, not {type(db).__name__}")

    def sql(self, statement: str) -> str:
        """``statement`` (written with ``?`` placeholders) in this database's placeholders."""
        return statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self.db.execute_sql(  # type: ignore[no-untyped-call]  # peewee is untyped
            self.sql(statement), params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.db.cursor().executemany(  # type: ignore[no-untyped-call]  # peewee is untyped
                self.sql(statement), rows)

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction, or nothing when the caller already holds one (then we join it)."""
        return contextlib.nullcontext() if self.db.in_transaction() else self.db.atomic()

    def values_list(self, width: int, rows: int) -> str:
        one = "(" + ", ".join(["?"] * width) + ")"
        return ", ".join([one] * rows)


class SqliteDialect(Dialect):
    name = "sqlite"


class PostgresDialect(Dialect):
    name = "postgresql"
    postgres = True
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def sql(self, statement: str) -> str:
        return _psycopg_placeholders(statement)


@functools.lru_cache(maxsize=None)  # the store's statements are a fixed set
def _psycopg_placeholders(statement: str) -> str:
    assert "%" not in statement, "a literal % would be read as a psycopg placeholder"
    return statement.replace("?", "%s")


# -- fast inserts for application models (tengo_jobs.bulk_insert) ----------------------------
# Up to this many rows go in one multi-row VALUES statement (short enough for psycopg's
# statement cache); more go through ``executemany`` of the one-row statement.
_MULTI_ROW_MAX = 16
_INSERT_SQL: dict[tuple[Any, ...], str] = {}


def bulk_insert(model: type[pw.Model], rows: list[dict[str, Any]], *, ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (dicts of field names, as ``insert_many`` takes) into ``model``'s
    table with one short statement, or ``executemany`` for many rows; values pass through
    each field's ``db_value``. Joins the caller's transaction.

    Peewee's ``insert_many`` rebuilds its SQL on every call, which costs more CPU than a
    few-row insert itself; jobs that write a few rows per step call this instead.
    """
    if not rows:
        return
    db: pw.Database = model._meta.database
    db = getattr(db, "obj", db)  # a DatabaseProxy: the database it stands for
    dialect = Dialect.of(db)
    fields = model._meta.fields
    names = tuple(rows[0])
    converters = [fields[n].db_value for n in names]
    values = [tuple(conv(row[n]) for conv, n in zip(converters, names)) for row in rows]
    n = len(values) if len(values) <= _MULTI_ROW_MAX else 1
    key = (model, names, ignore_conflicts, n)
    statement = _INSERT_SQL.get(key)
    if statement is None:
        statement = (f'INSERT INTO "{model._meta.table_name}" ('
                     + ", ".join(f'"{fields[f].column_name}"' for f in names) + ") VALUES "
                     + dialect.values_list(len(names), n)
                     + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""))
        _INSERT_SQL[key] = statement
    if n == len(values):
        dialect.execute(statement, tuple(v for row in values for v in row))
    else:
        dialect.executemany(statement, values)
