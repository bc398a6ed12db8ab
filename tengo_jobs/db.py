"""Opening the database named by a URL, and idempotent migrations.

SQLite (the embedded default) runs in WAL mode with ``BEGIN IMMEDIATE`` write
transactions and a busy timeout, so a web process, a worker and a scheduler can
share one file. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import logging
import urllib.parse

import peewee as pw

from .errors import ConfigurationError
from .models import ENGINE_MODELS, database_proxy

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    return pw.SqliteDatabase(
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
    params = {}
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
    name = url.path.lstrip("/")
    if not name:
        raise ConfigurationError("DATABASE_URL postgresql://... needs a database name")
    return pw.PostgresqlDatabase(name, prefer_psycopg3=True, **params)


def open_database(database_url: str) -> pw.Database:
    """A Peewee database for ``database_url`` (not yet connected), bound to the models."""
    url = urllib.parse.urlsplit(database_url)
    scheme = url.scheme.split("+")[0]
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


_MIGRATE_LOCK_ID = 0x7467_6A6F  # "tgjo": the advisory lock key of migrate()


def migrate(db: pw.Database | None = None, extra_models=()) -> list[str]:
    """Create every missing table and index of the system schema and of ``extra_models``
    (applications' tables); safe to run any number of times."""
    db = db or database_proxy.obj
    models = ENGINE_MODELS + [m for m in extra_models if m not in ENGINE_MODELS]
    if isinstance(db, pw.PostgresqlDatabase):
        # CREATE TABLE IF NOT EXISTS races when processes start together on a fresh database
        # (honcho: web workers + worker + scheduler); DDL is transactional, so serialize it.
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK_ID,))
            db.create_tables(models, safe=True)
    else:
        db.create_tables(models, safe=True)
    return [m._meta.table_name for m in models]


def ping(db: pw.Database | None = None) -> None:
    """Raise if the database does not answer a trivial query."""
    db = db or database_proxy.obj
    db.execute_sql("SELECT 1").fetchone()

