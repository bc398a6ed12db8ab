"""Helpers for tests that run on both databases (the ``backend`` fixture in conftest.py)."""

from __future__ import annotations

import contextlib
import sqlite3

from tengo_jobs.runtime import Runtime


@contextlib.contextmanager
def second_connection(runtime: Runtime):
    """A connection of the database driver itself, to ``runtime``'s database but not shared
    with it (what another process would see), autocommitting; statements use ``?``
    placeholders on both databases (:meth:`query`)."""
    if runtime.store.dialect.postgres:
        import psycopg

        conn = psycopg.connect(runtime.settings.database_url, autocommit=True)
    else:
        conn = sqlite3.connect(runtime.db.database, isolation_level=None)
    try:
        yield _Connection(conn, runtime.store.dialect.sql)
    finally:
        conn.close()


class _Connection:
    def __init__(self, conn, translate):
        self.raw = conn
        self._sql = translate

    def query(self, statement: str, params=()) -> list[tuple]:
        return list(self.raw.execute(self._sql(statement), params).fetchall())

    def scalar(self, statement: str, params=()):
        rows = self.query(statement, params)
        return rows[0][0] if rows else None
