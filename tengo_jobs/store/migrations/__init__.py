"""Versioned migrations of the system schema, and the top-up of applications' tables.

The modules ``mNNNN_<name>.py`` of this package are the system schema's history, applied in
order and recorded in ``tj_migrations`` (version, name, applied_at in epoch ms), the way DBOS
and Alembic keep theirs. Each holds its DDL as frozen text per database — ``STATEMENTS``
(``{"sqlite": [...], "postgresql": [...]}``), or an ``upgrade(op)`` function given an
:class:`Operations` when it must look before it acts (``m0001_baseline`` does, to bring a
database created before migrations to the baseline) — never derived from the Peewee models,
so a later change to a model does not change what an old migration does.

:func:`migrate` (``tengo-jobs migrate``, and every process at boot) first reads which
versions are recorded. When none is pending it runs no DDL and takes no lock: a process
booting while others work must not queue behind, or block, their statements (even
``CREATE INDEX IF NOT EXISTS`` locks its table). Each pending migration then runs in its own
transaction with its ``tj_migrations`` row; on PostgreSQL the transaction first takes an
advisory lock, so processes booting together on a fresh database apply each migration once
(the later ones find it recorded); SQLite's ``BEGIN IMMEDIATE`` serializes them already. A
migration that fails is rolled back whole and stays unrecorded.

Applications' tables (an :class:`~tengo_jobs.Extension`'s models) have no migrations: after
the system's, their missing tables, columns and indexes are created from the models
(:mod:`.app_tables`).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
import re
import time
from types import ModuleType
from typing import Callable, Iterable

import peewee as pw

from ..schema import SYSTEM_MODELS
from . import app_tables
from .locking import LOCK_ID, lock

log = logging.getLogger(__name__)

TABLE = "tj_migrations"
_CREATE_TABLE = (f'CREATE TABLE "{TABLE}" ("version" INTEGER NOT NULL PRIMARY KEY, '
                 '"name" VARCHAR(100) NOT NULL, "applied_at" BIGINT NOT NULL)')
_MODULE_NAME = re.compile(r"^m(\d{4})_(\w+)$")


@dataclasses.dataclass(frozen=True)
class Migration:
    """One module of this package: ``m0002_pending_ops`` is version 2, named ``pending_ops``."""

    version: int
    name: str
    module: ModuleType

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def apply(self, op: "Operations") -> None:
        upgrade = getattr(self.module, "upgrade", None)
        if upgrade is not None:
            upgrade(op)
            return
        for statement in self.module.STATEMENTS[op.dialect]:
            op.execute(statement)


def discover(package: str = __name__) -> list[Migration]:
    """The migrations of ``package`` in version order; versions must run 1, 2, 3… unbroken."""
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        match = _MODULE_NAME.match(info.name)
        if match:
            found.append(Migration(int(match[1]), match[2],
                                   importlib.import_module(f"{package}.{info.name}")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations of {package} are not numbered 1..n: {versions}")
    return found


MIGRATIONS: list[Migration] = discover()


class Operations:
    """What a migration's ``upgrade(op)`` may do, inside its transaction."""

    def __init__(self, db: pw.Database):
        self.db = db
        self.dialect = "postgresql" if isinstance(db, pw.PostgresqlDatabase) else "sqlite"

    def execute(self, sql: str) -> None:
        log.debug("migrate: %s", sql)
        self.db.execute_sql(sql)  # type: ignore[no-untyped-call]  # peewee is untyped

    def tables(self) -> set[str]:
        return set(self.db.get_tables())

    def columns(self, table: str) -> set[str]:
        return {c.name for c in self.db.get_columns(table)}


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def applied(db: pw.Database) -> dict[int, str]:
    """The recorded versions and their names (empty before the first migration)."""
    if TABLE not in db.get_tables():
        return {}
    return dict(db.execute_sql(  # type: ignore[no-untyped-call]  # peewee is untyped
        f'SELECT "version", "name" FROM "{TABLE}"').fetchall())


def pending(db: pw.Database, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations not yet recorded in ``db`` (reads only)."""
    migrations = MIGRATIONS if migrations is None else migrations
    done = applied(db)
    newer = sorted(set(done) - {m.version for m in migrations})
    if newer:
        log.warning("the database has migrations this code does not know (%s): a newer "
                    "tengo_jobs migrated it; deploy that version here too",
                    ", ".join(f"{v:04d}_{done[v]}" for v in newer))
    return [m for m in migrations if m.version not in done]


def apply(db: pw.Database, migrations: list[Migration], *,
          now: Callable[[], int] = _wall_clock_ms) -> list[Migration]:
    """Apply ``migrations`` not yet recorded, each in its own transaction; returns those applied."""
    op = Operations(db)
    done = []
    for migration in migrations:
        with db.atomic():
            lock(db)
            if TABLE not in db.get_tables():
                op.execute(_CREATE_TABLE)
            elif db.execute_sql(  # type: ignore[no-untyped-call]  # peewee is untyped
                    f'SELECT 1 FROM "{TABLE}" WHERE "version" = {db.param}',
                    (migration.version,)).fetchone():
                continue  # another process applied it while this one waited for the lock
            log.info("migrate: applying %s", migration.label)
            try:
                migration.apply(op)
            except Exception:
                log.error("migrate: %s failed on %s; rolled back, not recorded",
                          migration.label, op.dialect)
                raise
            db.execute_sql(  # type: ignore[no-untyped-call]  # peewee is untyped
                f'INSERT INTO "{TABLE}" ("version", "name", "applied_at") '
                f"VALUES ({db.param}, {db.param}, {db.param})",
                (migration.version, migration.name, now()))
        done.append(migration)
    return done


def migrate(db: pw.Database, extra_models: Iterable[type[pw.Model]] = (), *,
            now: Callable[[], int] = _wall_clock_ms) -> list[str]:
    """Apply the pending system migrations, then create what ``extra_models`` (applications'
    tables) lack; returns the table names. Runs no DDL when nothing is pending or missing."""
    todo = pending(db)
    if todo:
        apply(db, todo, now=now)
    app_models = [m for m in extra_models if m not in SYSTEM_MODELS]
    app_tables.top_up(db, app_models)
    return [m._meta.table_name for m in SYSTEM_MODELS + app_models]


__all__ = ["Migration", "Operations", "MIGRATIONS", "TABLE", "LOCK_ID", "applied", "apply",
           "discover", "lock", "migrate", "pending"]
