"""Retention: deleting what no one needs any more, in small transactions.

What goes (``TENGO_RETENTION``, or ``tengo-jobs prune --older-than``):

- a **finished run** that ended before the cutoff, with its steps and every other row keyed
  by it (failed step attempts, timers, waits, batch events, concurrency slots and slot waits) — unless an
  unfinished run still points to it or it points to an unfinished one: the parent of an
  unfinished invoked child, the child of an unfinished parent, the original of an
  unfinished replay;
- an **event** received before the cutoff that no remaining run refers to (as its trigger,
  or among a batch run's events), with the skips recorded for it;
- a **dedupe claim** whose 24 h window is over (whatever the cutoff: it is not history);
- a **heartbeat** not renewed for a day (:mod:`.heartbeats`).

Unfinished runs, and their events and steps, are never deleted. Each batch is one short
transaction of at most ``batch`` runs (or events, or claims): it never locks a table. On
PostgreSQL the batch's rows are taken with ``FOR UPDATE SKIP LOCKED``, so several
schedulers (and a ``tengo-jobs prune``) prune side by side without waiting on each other
or deleting the same row twice; the other rows a batch deletes are either keyed by its
locked runs or taken with ``SKIP LOCKED`` as well, so a prune never waits on a lock (and so
never joins a deadlock, whatever order the engine's transitions take their locks in).
SQLite has one writer at a time and needs no row locks.

Counts are what the deletes reported (``rowcount``), so two prunes at once never count a
row twice. A dry run counts the same rows with ``SELECT COUNT(*)`` and deletes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, cast

from .dialect import Dialect
from .schema import (BATCH_EVENTS, DEDUPE, EVENTS, FINAL_RUN_STATUSES, MAINTENANCE, RUNS,
                     SKIPS, SLOT_WAITERS, SLOTS, STEP_ATTEMPTS, STEPS, TIMERS, WAITS)

BATCH = 500  # rows per transaction
_FINAL = ", ".join(f"'{s}'" for s in FINAL_RUN_STATUSES)

# A run (alias r) that may go, given the cutoff (one ``?``). Never NULL: ``NOT (…)`` of it
# is a sound "must stay".
PRUNABLE = f"""(r."status" IN ({_FINAL}) AND r."ended_at" IS NOT NULL AND r."ended_at" < ?
  AND NOT EXISTS (SELECT 1 FROM "{RUNS}" c WHERE c."parent_run_id" = r."id"
                  AND c."status" NOT IN ({_FINAL}))
  AND NOT EXISTS (SELECT 1 FROM "{RUNS}" c WHERE c."replay_of" = r."id"
                  AND c."status" NOT IN ({_FINAL}))
  AND (r."parent_run_id" IS NULL OR NOT EXISTS (
       SELECT 1 FROM "{RUNS}" p WHERE p."id" = r."parent_run_id"
       AND p."status" NOT IN ({_FINAL}))))"""

# The next events received before the cutoff, in (received_at, id) order after a cursor:
# (cutoff, after received_at, after received_at, after id, limit). A walk of the
# ``received_at`` index from the cursor on (``>=`` is the range's start; the ``OR`` only
# sorts out the events received in the cursor's millisecond), whatever the planner thinks
# of the tables' sizes.
_EVENTS_AFTER = f"""SELECT e."id", e."received_at" FROM "{EVENTS}" e WHERE e."received_at" < ?
  AND e."received_at" >= ? AND (e."received_at" > ? OR e."id" > ?)
  ORDER BY e."received_at", e."id" LIMIT ?"""
# Of those, the ones no run refers to (after its runs went): probes of two indexes each.
_UNREFERENCED = f"""AND NOT EXISTS (SELECT 1 FROM "{RUNS}" r WHERE r."event_id" = e."id")
  AND NOT EXISTS (SELECT 1 FROM "{BATCH_EVENTS}" b WHERE b."event_id" = e."id")"""

# The same events counted before any run went: referred to by no run that stays.
_COUNT_EVENTS = f"""SELECT COUNT(*) FROM "{EVENTS}" e WHERE e."received_at" < ?
  AND NOT EXISTS (SELECT 1 FROM "{RUNS}" r WHERE r."event_id" = e."id" AND NOT {PRUNABLE})
  AND NOT EXISTS (SELECT 1 FROM "{BATCH_EVENTS}" b JOIN "{RUNS}" r ON r."id" = b."run_id"
                  WHERE b."event_id" = e."id" AND NOT {PRUNABLE})"""
_COUNT_RUNS = f'SELECT COUNT(*) FROM "{RUNS}" r WHERE {PRUNABLE}'
_COUNT_STEPS = (f'SELECT COUNT(*) FROM "{STEPS}" s JOIN "{RUNS}" r ON r."id" = s."run_id" '
                f'WHERE {PRUNABLE}')
_COUNT_DEDUPE = f'SELECT COUNT(*) FROM "{DEDUPE}" WHERE "expires_at" <= ?'

# Rows keyed by a run that go with it (no one else waits on them once the run is final).
_RUN_KEYED = (STEPS, STEP_ATTEMPTS, BATCH_EVENTS, SLOTS, SLOT_WAITERS)
# Rows keyed by a run that another transition may hold a lock on: taken with SKIP LOCKED.
_RUN_KEYED_LOCKABLE = {WAITS: "id", TIMERS: "id"}

ROW_TABLES = {"runs": RUNS, "steps": STEPS, "events": EVENTS}


@dataclasses.dataclass
class Pruned:
    """What a prune deleted (or, dry, would delete)."""

    runs: int = 0
    steps: int = 0
    events: int = 0
    dedupe: int = 0
    heartbeats: int = 0
    dry_run: bool = False

    def add(self, other: "Pruned") -> None:
        for field in ("runs", "steps", "events", "dedupe", "heartbeats"):
            setattr(self, field, getattr(self, field) + getattr(other, field))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _marks(n: int) -> str:
    return ", ".join(["?"] * n)


class RetentionStore:
    """The deletes of the pruning (see the module docstring), and the row counts ``/healthz``
    shows. :meth:`row_counts` differs by database (:class:`PgRetentionStore`)."""

    def __init__(self, dialect: Dialect):
        self.d = dialect

    # -- what would go ----------------------------------------------------------------------
    def count(self, cutoff: int | None, now: int) -> Pruned:
        """What a prune with this cutoff (``None``: keep every run) would delete now
        (``dry_run``); deletes nothing."""
        one: Callable[[str, tuple[Any, ...]], int] = (  # noqa: E731
            lambda statement, params: self.d.execute(statement, params).fetchone()[0])
        counted = Pruned(dedupe=one(_COUNT_DEDUPE, (now,)), dry_run=True)
        if cutoff is not None:
            counted.runs = one(_COUNT_RUNS, (cutoff,))
            counted.steps = one(_COUNT_STEPS, (cutoff,))
            counted.events = one(_COUNT_EVENTS, (cutoff, cutoff, cutoff))
        return counted

    def count_runs(self, cutoff: int) -> int:
        return cast(int, self.d.execute(_COUNT_RUNS, (cutoff,)).fetchone()[0])

    # -- batches ----------------------------------------------------------------------------
    def prune_runs(self, cutoff: int, limit: int = BATCH) -> Pruned:
        """Delete up to ``limit`` prunable runs and the rows keyed by them, in one transaction."""
        done = Pruned()
        with self.d.transaction():
            ids = [r for (r,) in self.d.execute(
                f'SELECT r."id" FROM "{RUNS}" r WHERE {PRUNABLE} ORDER BY r."ended_at" '
                f'LIMIT ?{self.d.skip_locked}', (cutoff, limit))]
            if not ids:
                return done
            marks = _marks(len(ids))
            for table, key in _RUN_KEYED_LOCKABLE.items():
                self.d.execute(f'DELETE FROM "{table}" WHERE "{key}" IN (SELECT "{key}" FROM '
                               f'"{table}" WHERE "run_id" IN ({marks}){self.d.skip_locked})', ids)
            for table in _RUN_KEYED:
                count = self.d.execute(f'DELETE FROM "{table}" WHERE "run_id" IN ({marks})',
                                       ids).rowcount
                if table == STEPS:
                    done.steps = count
            done.runs = self.d.execute(f'DELETE FROM "{RUNS}" WHERE "id" IN ({marks})',
                                       ids).rowcount
        return done

    def prune_events(self, cutoff: int, limit: int = BATCH,
                     after: tuple[int, str] = (-1, "")) -> tuple[int, tuple[int, str] | None]:
        """Of the next ``limit`` events received before ``cutoff`` after the cursor ``after``
        (``(received_at, id)``), delete those no run refers to, with their skips; one
        transaction. Returns how many events, and the cursor of the next batch (``None``:
        none left). Events a remaining run still needs are stepped over, not read again by
        every batch, and each batch reads at most ``limit`` events whatever the tables hold
        (a query asking for "the oldest unreferenced events" let the planner hash-join the
        whole runs table per batch on a large history)."""
        with self.d.transaction():
            rows = self.d.execute(_EVENTS_AFTER + self.d.skip_locked,
                                  (cutoff, after[0], after[0], after[1], limit)).fetchall()
            if not rows:
                return 0, None
            cursor = (int(rows[-1][1]), rows[-1][0]) if len(rows) == limit else None
            marks = _marks(len(rows))
            ids = [e for (e,) in self.d.execute(
                f'SELECT e."id" FROM "{EVENTS}" e WHERE e."id" IN ({marks}) {_UNREFERENCED}',
                [r[0] for r in rows])]
            if not ids:
                return 0, cursor
            marks = _marks(len(ids))
            self.d.execute(f'DELETE FROM "{SKIPS}" WHERE "event_id" IN ({marks})', ids)
            return self.d.execute(f'DELETE FROM "{EVENTS}" WHERE "id" IN ({marks})',
                                  ids).rowcount, cursor

    def prune_all_events(self, cutoff: int, limit: int = BATCH) -> int:
        """:meth:`prune_events` batch after batch until the events before ``cutoff`` are
        walked; how many were deleted."""
        total = 0
        cursor: tuple[int, str] | None = (-1, "")
        while cursor is not None:
            deleted, cursor = self.prune_events(cutoff, limit, cursor)
            total += deleted
        return total

    def expire_dedupe(self, now: int, limit: int = BATCH) -> int:
        """Delete up to ``limit`` dedupe claims whose window is over; one transaction."""
        with self.d.transaction():
            return cast(int, self.d.execute(
                f'DELETE FROM "{DEDUPE}" WHERE "key" IN (SELECT "key" FROM "{DEDUPE}" '
                f'WHERE "expires_at" <= ? LIMIT ?{self.d.skip_locked})', (now, limit)).rowcount)

    def drain(self, step: Callable[[], int], limit: int,
              progress: Callable[[int], object] | None = None) -> int:
        """Run ``step`` (one batch, returning its count) until a batch comes back short."""
        total = 0
        while True:
            count = step()
            total += count
            if progress is not None and count:
                progress(count)
            if count < limit:
                return total

    # -- the record of the last prune, and the sizes /healthz shows --------------------------
    def record(self, name: str, now: int, detail: dict[str, Any]) -> None:
        self.d.execute(f'INSERT INTO "{MAINTENANCE}" ("name", "ran_at", "detail") VALUES (?, ?, ?) '
                       'ON CONFLICT ("name") DO UPDATE SET "ran_at" = EXCLUDED."ran_at", '
                       '"detail" = EXCLUDED."detail"', (name, now, json.dumps(detail)))

    def last(self, name: str) -> tuple[int, dict[str, Any]] | None:
        row = self.d.execute(f'SELECT "ran_at", "detail" FROM "{MAINTENANCE}" WHERE "name" = ?',
                             (name,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def row_counts(self) -> dict[str, int | None]:
        """Rows in the runs, steps and events tables: exact on SQLite (``COUNT(*)``)."""
        return {name: self.d.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                for name, table in ROW_TABLES.items()}

    def disk(self) -> dict[str, Any]:
        """What the database takes on disk, without reading a table: on SQLite the pages in
        use (``page_count`` × ``page_size``), the free pages a prune left (reused by later
        writes; ``VACUUM`` gives them back to the file system) and the size of the file with
        its write-ahead log."""
        page_size = self.d.execute("PRAGMA page_size").fetchone()[0]
        pages = self.d.execute("PRAGMA page_count").fetchone()[0]
        free = self.d.execute("PRAGMA freelist_count").fetchone()[0]
        path = getattr(self.d.db, "database", "") or ""
        file_bytes = None
        if path and path != ":memory:" and not path.startswith("file:"):
            file_bytes = sum(os.path.getsize(p) for p in (path, path + "-wal")
                             if os.path.exists(p))
        return {"database": "sqlite", "bytes": page_size * pages, "free_bytes": page_size * free,
                "file_bytes": file_bytes}


class PgRetentionStore(RetentionStore):
    """On PostgreSQL the row counts are the planner's estimates (``pg_class.reltuples``,
    refreshed by autovacuum and ``ANALYZE``): ``/healthz`` must stay cheap on large tables.
    ``None`` for a table never analyzed yet."""

    def row_counts(self) -> dict[str, int | None]:
        rows = dict(self.d.execute(
            'SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n '
            'ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = ? '
            f'AND c.relname IN ({_marks(len(ROW_TABLES))})',
            ("r", *ROW_TABLES.values())).fetchall())
        return {name: (int(rows[table]) if rows.get(table, -1) >= 0 else None)
                for name, table in ROW_TABLES.items()}

    def disk(self) -> dict[str, Any]:
        """Per system table (``tj_…``), ``pg_total_relation_size`` (table, indexes and TOAST)
        and the planner's row estimate (``pg_class.reltuples``; ``None`` before the first
        ``ANALYZE``), and their total: catalog reads only, never a ``COUNT(*)``. Space a prune
        frees is reused by the table (autovacuum marks it free); the sizes shrink only after
        a ``VACUUM FULL``."""
        tables = {}
        for name, size, rows in self.d.execute(
                'SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples FROM pg_class c '
                'JOIN pg_namespace n ON n.oid = c.relnamespace '
                'WHERE n.nspname = current_schema() AND c.relkind = ? AND left(c.relname, 3) = ? '
                'ORDER BY c.relname', ("r", "tj_")):
            tables[name] = {"bytes": int(size),
                            "rows_estimate": int(rows) if rows is not None and rows >= 0 else None}
        return {"database": "postgresql", "bytes": sum(t["bytes"] for t in tables.values()),
                "tables": tables}


IMPLEMENTATIONS = {"postgresql": PgRetentionStore, "sqlite": RetentionStore}
