"""Versioned migrations (tengo_jobs/store/migrations/).

A fresh database gets every migration, recorded in ``tj_migrations``; a database created
before migrations — by the schema before the store package (tests/fixtures/schema_493ee8c.*),
or by the last schema without migrations (tests/fixtures/schema_b685dee.*) — upgrades in place
and keeps its rows; a second run executes no DDL and takes no lock; a failing migration is
rolled back and stays unrecorded.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from conftest import POSTGRES_URL
from procs import ROOT, process_env
from tengo_jobs import Jobs, RunStatus
from tengo_jobs.store import migrations
from tengo_jobs.store.connection import open_database
from tengo_jobs.store.schema import (SYSTEM_MODELS, EventRow, RunRow, StepRow, TimerRow,
                                     WaitRow)
from tengo_jobs.testing import FakeClock, JobsTester, make_test_runtime

FIXTURES = Path(__file__).parent / "fixtures"
T0 = 1_767_225_600_000
TRIGGER = {"name": "order.created", "data": {"orderId": "o1"}, "id": "order-1", "ts": T0}

# What the engine of that time wrote: an event (deduped by its id), a completed run, a run
# asleep after its first step, and a run waiting for the payment of order o1.
ROWS = [
    ("tj_events", {"id": "e1", "name": "order.created", "data": '{"orderId":"o1"}', "user": None,
                   "external_id": "order-1", "ts": T0, "v": None, "received_at": T0}),
    ("tj_event_dedupe", {"key": "order-1", "event_id": "e1", "expires_at": T0 + 86_400_000}),
    ("tj_runs", {"id": "r-done", "app_id": "app", "function_id": "old-done", "event_id": "e1",
                 "status": "completed", "output": '{"ok":true}', "error": None, "attempt": 0,
                 "created_at": T0, "started_at": T0, "ended_at": T0 + 5, "wake_at": T0,
                 "enqueued_at": T0, "lease_owner": None, "lease_expires_at": None,
                 "unique_key": None, "parent_run_id": None}),
    ("tj_runs", {"id": "r-sleep", "app_id": "app", "function_id": "nap-between", "event_id": "e1",
                 "status": "sleeping", "output": None, "error": None, "attempt": 0,
                 "created_at": T0, "started_at": T0, "ended_at": None, "wake_at": T0 + 60_000,
                 "enqueued_at": None, "lease_owner": None, "lease_expires_at": None,
                 "unique_key": None, "parent_run_id": None}),
    ("tj_runs", {"id": "r-wait", "app_id": "app", "function_id": "await-payment",
                 "event_id": "e1", "status": "waiting", "output": None, "error": None,
                 "attempt": 0, "created_at": T0, "started_at": T0, "ended_at": None,
                 "wake_at": T0 + 3_600_000, "enqueued_at": None, "lease_owner": None,
                 "lease_expires_at": None, "unique_key": None, "parent_run_id": None}),
    ("tj_steps", {"run_id": "r-done", "key": "only", "name": "only", "kind": "run", "position": 0,
                  "status": "completed", "attempts": 1, "output": '{"ok":true}', "error": None,
                  "started_at": T0, "ended_at": T0 + 5, "wake_at": None}),
    ("tj_steps", {"run_id": "r-sleep", "key": "first", "name": "first", "kind": "run",
                  "position": 0, "status": "completed", "attempts": 1, "output": "41",
                  "error": None, "started_at": T0, "ended_at": T0 + 1, "wake_at": None}),
    ("tj_steps", {"run_id": "r-sleep", "key": "nap", "name": "nap", "kind": "sleep",
                  "position": 1, "status": "sleeping", "attempts": 0, "output": None,
                  "error": None, "started_at": T0 + 1, "ended_at": None, "wake_at": T0 + 60_000}),
    ("tj_steps", {"run_id": "r-wait", "key": "payment", "name": "payment", "kind": "wait",
                  "position": 0, "status": "waiting", "attempts": 0, "output": None,
                  "error": None, "started_at": T0, "ended_at": None, "wake_at": T0 + 3_600_000}),
    ("tj_timers", {"run_id": "r-sleep", "due_at": T0 + 60_000, "kind": "sleep"}),
    ("tj_timers", {"run_id": "r-wait", "due_at": T0 + 3_600_000, "kind": "timeout"}),
    ("tj_waits", {"run_id": "r-wait", "step_key": "payment", "event_name": "payment.completed",
                  "expression": "event.data.orderId == async.data.orderId",
                  "match_event": json.dumps(TRIGGER), "expires_at": T0 + 3_600_000,
                  "created_at": T0}),
    ("tj_cron_state", {"function_id": "nightly", "last_tick_ms": T0, "updated_at": T0}),
]


def _old_database(url: str, commit: str = "493ee8c") -> None:
    """Create the schema of ``commit`` at ``url`` and fill it with :data:`ROWS`, with the driver
    alone."""
    postgres = not url.startswith("sqlite")
    dialect = "postgresql" if postgres else "sqlite"
    text = (FIXTURES / f"schema_{commit}.{dialect}.sql").read_text()
    ddl = [line.rstrip(";") for line in text.splitlines() if line and not line.startswith("--")]
    if postgres:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        mark = "%s"
    else:
        conn = sqlite3.connect(urllib.parse.urlsplit(url).path[1:], isolation_level=None)
        mark = "?"
    try:
        for statement in ddl:
            conn.execute(statement)
        for table, row in ROWS:
            if commit != "493ee8c":  # columns added since, which the engine wrote
                row = {**row, **{"tj_runs": {"inflight": 0},
                                 "tj_waits": {"exact": False}}.get(table, {})}
            columns = ", ".join(f'"{c}"' for c in row)
            conn.execute(f'INSERT INTO "{table}" ({columns}) VALUES '
                         f'({", ".join([mark] * len(row))})', tuple(row.values()))
    finally:
        conn.close()


def _migrate_with_the_cli(url: str) -> str:
    result = subprocess.run([sys.executable, "-m", "tengo_jobs.cli", "migrate"], cwd=ROOT,
                            env=process_env(DATABASE_URL=url, TENGO_FUNCTIONS=""),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_old_database_upgrades_in_place_and_its_runs_complete(backend_url):
    _old_database(backend_url)
    assert "migrated" in _migrate_with_the_cli(backend_url)
    assert "migrated" in _migrate_with_the_cli(backend_url)  # again: nothing left to do

    with make_test_runtime(backend_url, clock=FakeClock(T0 + 1_000), migrate=False) as runtime:
        tables = set(runtime.db.get_tables())
        for model in SYSTEM_MODELS:  # every table and column of today's schema is there
            assert model._meta.table_name in tables
            have = {c.name for c in runtime.db.get_columns(model._meta.table_name)}
            assert {f.column_name for f in model._meta.sorted_fields} <= have, model
        assert _recorded(runtime.db) == ALL

        # the rows are kept, new columns take their defaults
        assert EventRow.get_by_id("e1").external_id == "order-1"
        done = RunRow.get_by_id("r-done")
        assert (done.status, done.output, done.inflight) == (RunStatus.COMPLETED, '{"ok":true}', 0)
        assert StepRow.select().count() == 4 and TimerRow.select().count() == 2
        wait = WaitRow.get()
        assert (wait.run_id, wait.match_path, wait.exact) == ("r-wait", None, False)

        calls = []
        tester = JobsTester(runtime)
        jobs = _declare(runtime, calls)
        # the old event id still dedupes: sending it again starts nothing
        assert jobs.send({**TRIGGER, "data": {"orderId": "o1"}}) == ["e1"]
        jobs.send({"name": "payment.completed", "data": {"orderId": "o1", "amount": 7}})
        runs = {r.id: r for r in tester.run_until_idle()}
        assert runs["r-sleep"].status == RunStatus.COMPLETED
        assert tester.output(runs["r-sleep"]) == 42 and calls == ["second"]  # "first" replayed
        assert runs["r-wait"].status == RunStatus.COMPLETED
        assert tester.output(runs["r-wait"])["data"] == {"orderId": "o1", "amount": 7}
        assert runs["r-done"].output == '{"ok":true}'


def _declare(runtime, calls):
    jobs = Jobs(app_id="app", runtime=runtime)

    @jobs.function("nap-between", event="nap.requested")
    def nap_between(ctx, step):
        first = step.run("first", lambda: calls.append("first") or 41)
        step.sleep("nap", "1m")
        return step.run("second", lambda: calls.append("second") or first + 1)

    @jobs.function("await-payment", event="order.created")
    def await_payment(ctx, step):
        return step.wait_for_event("payment", event="payment.completed", timeout="1h",
                                   if_exp="event.data.orderId == async.data.orderId")

    return jobs


# -- the versioned migrations ------------------------------------------------------------------
ALL = {m.version: m.name for m in migrations.MIGRATIONS}


def _recorded(db) -> dict[int, str]:
    return dict(db.execute_sql('SELECT "version", "name" FROM "tj_migrations"').fetchall())


def _schema(db) -> dict:
    """Every system table's columns and indexes, comparable across two databases."""
    return {table: ({(c.name, c.data_type.lower(), c.null, c.primary_key)
                     for c in db.get_columns(table)},
                    {(i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)})
            for table in db.get_tables() if table != "tj_migrations"}


def _index_names(db, table: str) -> set[str]:
    return {i.name for i in db.get_indexes(table)}


class _Statements:
    """Records the SQL a database executes."""

    def __init__(self, db, monkeypatch):
        self.sql: list[str] = []
        execute_sql = db.execute_sql

        def recording(sql, params=None):
            self.sql.append(sql)
            return execute_sql(sql, params)

        monkeypatch.setattr(db, "execute_sql", recording)

    def ddl(self) -> list[str]:
        return [s for s in self.sql
                if s.lstrip().split(None, 1)[0].upper() in ("CREATE", "ALTER", "DROP")
                or "advisory" in s]


@pytest.fixture
def fresh_db(backend_url):
    db = open_database(backend_url)
    yield db
    db.close()


def test_a_fresh_database_gets_every_migration_recorded(fresh_db):
    db = fresh_db
    t0 = T0
    migrations.migrate(db, now=lambda: t0)
    assert _recorded(db) == ALL
    assert {1: "baseline", 2: "pending_ops", 3: "run_indexes", 4: "replay_links",
            5: "paused_functions", 6: "lifecycle", 7: "flow_admission",
            8: "capacity", 9: "retention", 10: "sdk_apps"}.items() <= ALL.items()
    assert {r[0] for r in db.execute_sql('SELECT "applied_at" FROM "tj_migrations"')} == {T0}
    assert {m._meta.table_name for m in SYSTEM_MODELS} <= set(db.get_tables())
    # 0002: timers unique per (run, step), a signal counter on runs
    assert "tj_timers_run_id" not in _index_names(db, "tj_timers")
    assert {"step_key"} <= {c.name for c in db.get_columns("tj_timers")}
    assert "signal" in {c.name for c in db.get_columns("tj_runs")}
    # 0003: the prefixes and the (status, wake_at) index replaced
    runs = _index_names(db, "tj_runs")
    assert {"tj_runs_unfinished_wake", "tj_runs_status_id", "tj_runs_function_id_created_at",
            "tj_runs_created_at"} <= runs
    assert not runs & {"tj_runs_status", "tj_runs_function_id", "tj_runs_status_wake_at"}
    # 0004: a replay names its original
    assert {"replay_of", "replay_note"} <= {c.name for c in db.get_columns("tj_runs")}
    assert "tj_runs_replay_of" in runs
    # 0006: cancel matchers among the waits, cancellations asked of a running execution
    assert "kind" in {c.name for c in db.get_columns("tj_waits")}
    assert "cancel_requested" in {c.name for c in db.get_columns("tj_runs")}


def test_timers_are_unique_per_run_and_step_after_0002(fresh_db):
    db = fresh_db
    migrations.migrate(db)
    insert = ('INSERT INTO "tj_timers" ("run_id", "step_key", "due_at", "kind") VALUES '
              f"({db.param}, {db.param}, 1, 'sleep')")
    db.execute_sql(insert, ("r1", "a"))
    db.execute_sql(insert, ("r1", "b"))  # a second timer of the same run: allowed now
    with pytest.raises(Exception), db.atomic():
        db.execute_sql(insert, ("r1", "a"))


def test_migrate_twice_runs_no_ddl_and_takes_no_lock_the_second_time(fresh_db, monkeypatch):
    db = fresh_db
    migrations.migrate(db, now=lambda: T0)
    before = db.execute_sql('SELECT * FROM "tj_migrations" ORDER BY "version"').fetchall()
    statements = _Statements(db, monkeypatch)
    migrations.migrate(db, now=lambda: T0 + 1)
    assert statements.sql and statements.ddl() == []
    assert db.execute_sql('SELECT * FROM "tj_migrations" ORDER BY "version"').fetchall() == before


def test_the_last_schema_without_migrations_upgrades_in_place(backend_url, other_url,
                                                              monkeypatch):
    """A database made by the engine just before migrations (no tj_migrations) is brought to
    the baseline, recorded as 0001, then migrated on; its rows stay."""
    _old_database(backend_url, "b685dee")
    db = open_database(backend_url)
    try:
        statements = _Statements(db, monkeypatch)
        migrations.migrate(db)
        # the baseline's tables were there: none created again, its indexes only if missing
        assert not [s for s in statements.sql if s.startswith('CREATE TABLE "tj_runs"')]
        assert _recorded(db) == ALL
        assert RunRow.select().count() == 3 and WaitRow.select().count() == 1
        assert {r[0] for r in db.execute_sql('SELECT "step_key" FROM "tj_timers"')} == {""}
        assert {r[0] for r in db.execute_sql('SELECT "signal" FROM "tj_runs"')} == {0}
        upgraded = _schema(db)
    finally:
        db.close()
    assert upgraded == _fresh_schema(other_url)  # exactly the schema a fresh database gets


def test_the_schema_before_the_store_package_upgrades_to_the_same_schema(backend_url, other_url):
    _old_database(backend_url)
    db = open_database(backend_url)
    try:
        migrations.migrate(db)
        assert _recorded(db) == ALL
        upgraded = _schema(db)
    finally:
        db.close()
    assert upgraded == _fresh_schema(other_url)


def _fresh_schema(empty_url: str) -> dict:
    db = open_database(empty_url)
    try:
        migrations.migrate(db)
        return _schema(db)
    finally:
        db.close()


@pytest.fixture
def other_url(backend_url, tmp_path):
    """A second empty database on ``backend_url``'s server, to compare schemas with."""
    if backend_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    import psycopg

    name = f"{backend_url.rsplit('/', 1)[1]}_other"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def _broken(version: int):
    """A migration that creates a table, then fails."""
    module = type(sys)("m_broken")
    module.STATEMENTS = {d: ['CREATE TABLE "tj_half_done" ("id" INTEGER NOT NULL)',
                             'ALTER TABLE "tj_no_such_table" ADD COLUMN "x" INTEGER']
                         for d in ("sqlite", "postgresql")}
    return migrations.Migration(version, "broken", module)


def test_a_failing_migration_rolls_back_and_stays_unrecorded(fresh_db):
    db = fresh_db
    migrations.migrate(db)
    broken = _broken(len(ALL) + 1)
    with pytest.raises(Exception, match="tj_no_such_table"):
        migrations.apply(db, [broken])
    assert "tj_half_done" not in db.get_tables()
    assert _recorded(db) == ALL
    assert [m.version for m in migrations.pending(db, [*migrations.MIGRATIONS, broken])] == [
        broken.version]


def test_a_failing_baseline_leaves_no_migrations_table(fresh_db):
    db = fresh_db
    with pytest.raises(Exception, match="tj_no_such_table"):
        migrations.apply(db, [_broken(1)])
    assert db.get_tables() == []


@pytest.mark.parametrize("backend_url", ["postgresql"], indirect=True)
def test_processes_booting_together_on_a_fresh_database_migrate_it_once(backend_url):
    import threading

    databases = [open_database(backend_url) for _ in range(4)]
    errors = []
    start = threading.Barrier(len(databases))

    def boot(db):
        start.wait()
        try:
            migrations.migrate(db)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=boot, args=(db,)) for db in databases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db = open_database(backend_url)
    try:
        assert db.execute_sql('SELECT count(*) FROM "tj_migrations"').fetchone()[0] == len(ALL)
    finally:
        db.close()


def test_migrations_are_numbered_from_one_without_gaps():
    assert [m.version for m in migrations.MIGRATIONS] == list(range(1, len(ALL) + 1))
    assert all(m.module.__doc__ for m in migrations.MIGRATIONS)
