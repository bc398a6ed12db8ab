"""Applications' tables (an :class:`~tengo_jobs.Extension`'s models): no versioned migrations,
their missing tables, columns and indexes are created from the models, after the system's."""

from __future__ import annotations

import logging

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate as run_operations

from .locking import lock

log = logging.getLogger(__name__)


def top_up(db: pw.Database, models: list[type[pw.Model]]) -> None:
    """Create what ``models`` lack; no DDL at all (and no lock) when nothing is missing."""
    if not models or not missing(db, models):
        return
    with db.atomic():
        lock(db)
        tables = set(db.get_tables())
        _add_missing_columns(db, [m for m in models if m._meta.table_name in tables])
        for model in models:
            if model._meta.table_name not in tables:
                model.create_table(safe=True)
            elif _missing_indexes(db, model):
                model._schema.create_indexes(safe=True)  # type: ignore[attr-defined]  # peewee: set by its metaclass


def missing(db: pw.Database, models: list[type[pw.Model]]) -> bool:
    """Is any table, column or index of ``models`` missing?"""
    tables = set(db.get_tables())
    for model in models:
        table = model._meta.table_name
        if table not in tables:
            return True
        have = {c.name for c in db.get_columns(table)}
        if any(f.column_name not in have for f in model._meta.sorted_fields):
            return True
        if _missing_indexes(db, model):
            return True
    return False


def _missing_indexes(db: pw.Database, model: type[pw.Model]) -> bool:
    have = {i.name for i in db.get_indexes(model._meta.table_name)}
    return any(i._name not in have for i in model._meta.fields_to_index())


def _add_missing_columns(db: pw.Database, models: list[type[pw.Model]]) -> None:
    migrator = (PostgresqlMigrator(db) if isinstance(db, pw.PostgresqlDatabase)
                else SqliteMigrator(db))
    operations = []
    for model in models:
        table = model._meta.table_name
        have = {c.name for c in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in have:
                log.info("migrate: adding column %s.%s", table, field.column_name)
                operations.append(migrator.add_column(table, field.column_name, field))
    if operations:
        run_operations(*operations)
