"""Opening the database named by a URL, and healing its connections (migrations are
:mod:`tengo_jobs.store.migrations`).

SQLite (the embedded default) runs in WAL mode with ``BEGIN IMMEDIATE`` write
transactions and a busy timeout, so a web process, a worker and a scheduler can
share one file. PostgreSQL goes through psycopg 3.

Connections heal by themselves: Peewee keeps one connection per thread and, on its
own, keeps using it after the server has closed it (a restart, a failover,
``pg_terminate_backend``), so every later statement fails. The databases opened here
drop a connection as soon as it is found dead — when a statement fails on it, or
before a statement outside a transaction — and the next statement opens a new one.
A statement that fails is never replayed here (it may have committed); callers that
can retry safely do so (:mod:`tengo_jobs.store.runs`, the scheduler's loops).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

import peewee as pw

from ..errors import ConfigurationError
from .schema import database_proxy

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Errors that mean "the database is not there right now" rather than "this statement is wrong".
UNAVAILABLE_ERRORS = (pw.OperationalError, pw.InterfaceError)


class _Healing:
    """Mixin: a connection found dead is dropped, so the next statement reconnects."""

    _state: Any  # peewee.Database's per-thread connection state

    def _connection_dead(self) -> bool:
        conn = self._state.conn
        return conn is not None and bool(getattr(conn, "closed", False))

    def _drop_dead_connection(self) -> None:
        if not self._state.transactions and self._connection_dead():
            log.info("database connection lost; the next statement reconnects")
            self._state.reset()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        self._drop_dead_connection()
        try:
            return super().execute_sql(sql, params)  # type: ignore[misc]  # a mixin over peewee
        except UNAVAILABLE_ERRORS:
            self._drop_dead_connection()
            raise

    def cursor(self, named_cursor: Any = None) -> Any:
        self._drop_dead_connection()
        return super().cursor(named_cursor)  # type: ignore[misc]  # a mixin over peewee

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        self._drop_dead_connection()
        return super().begin(*args, **kwargs)  # type: ignore[misc]  # a mixin over peewee

    def rollback(self) -> None:
        if self._connection_dead():  # nothing to roll back: the server ended the transaction
            self._drop_dead_connection()
            return
        super().rollback()  # type: ignore[misc]  # a mixin over peewee

    def is_healthy(self) -> bool:
        return not self._connection_dead()


class HealingPostgresqlDatabase(_Healing, pw.PostgresqlDatabase):
    """PostgreSQL through psycopg 3, with connections that heal (see the module docstring)."""


class HealingSqliteDatabase(_Healing, pw.SqliteDatabase):
    """SQLite; a file does not go away, but the same contract keeps both backends alike."""


def _sqlite(url: urllib.parse.SplitResult) -> pw.SqliteDatabase:
    path = url.path
    if url.netloc:  # sqlite://relative/path (two slashes) — be forgiving
        path = url.netloc + path
    elif path.startswith("/") and not path.startswith("//"):
        path = path[1:]  # sqlite:///file.db -> file.db ; sqlite:////abs/file.db -> /abs/file.db
    else:
        path = path[1:]
    if not path:
        raise ConfigurationError("DATABASE_URL sqlite:/// needs a file name, e.g. sqlite:///tengo_jobs.db")
    return HealingSqliteDatabase(
        path,
        pragmas={
            "journal_mode": "wal",
            "synchronous": "normal",
            "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
            "foreign_keys": 1,
        },
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )


def _postgres(url: urllib.parse.SplitResult) -> pw.PostgresqlDatabase:
    params: dict[str, Any] = {}
    if url.username:
        params["user"] = urllib.parse.unquote(url.username)
    if url.password:
        params["password"] = urllib.parse.unquote(url.password)
    if url.hostname:
        params["host"] = url.hostname
    if url.port:
        params["port"] = url.port
    for key, values in urllib.parse.parse_qs(url.query).items():
        params[key] = values[-1]
    params.setdefault("connect_timeout", 5)
    # The store's statements are a fixed set, prepared per connection by psycopg. Left to
    # itself, PostgreSQL keeps re-planning the acquire (a data-modifying CTE whose generic
    # plan it estimates dearer than a custom one): half its calls paid ~0.7 ms of planning
    # in the profile of bench/pg_profile.sh. Their generic plans are the right ones (primary
    # key and index lookups), so the engine's connections use them.
    params.setdefault("options", "-c plan_cache_mode=force_generic_plan")
    name = url.path.lstrip("/")
    if not name:
        raise ConfigurationError("DATABASE_URL postgresql://... needs a database name")
    return HealingPostgresqlDatabase(name, prefer_psycopg3=True, **params)


def open_database(database_url: str) -> pw.Database:
    """A database for ``database_url`` (not yet connected), bound to the models."""
    url = urllib.parse.urlsplit(database_url)
    scheme = url.scheme.split("+")[0]
    db: pw.Database
    if scheme == "sqlite":
        db = _sqlite(url)
    elif scheme in ("postgres", "postgresql"):
        db = _postgres(url)
    else:
        raise ConfigurationError(
            f"DATABASE_URL scheme {url.scheme!r} is not supported (use sqlite:/// or postgresql://)")
    database_proxy.initialize(db)
    return db


def describe(database_url: str) -> str:
    """The URL with any password masked, safe for logs."""
    url = urllib.parse.urlsplit(database_url)
    if not url.password:
        return database_url  # (urlunsplit would also turn sqlite:///x into sqlite:/x)
    netloc = url.netloc.replace(":" + url.password + "@", ":***@")
    return urllib.parse.urlunsplit(url._replace(netloc=netloc))


def ping(db: pw.Database) -> None:
    """Raise if the database does not answer a trivial query."""
    db.execute_sql("SELECT 1").fetchone()  # type: ignore[no-untyped-call]  # peewee is untyped
