"""An existing database upgrades in place: a database created by the schema before the store
package (tests/fixtures/schema_493ee8c.*.sql), holding a finished run, a sleeping run and a
waiting run, goes through ``tengo-jobs migrate`` and keeps its rows, and its unfinished runs
complete afterwards."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.parse
from pathlib import Path

from procs import ROOT, process_env
from tengo_jobs import Jobs, RunStatus
from tengo_jobs.store.connection import _missing
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


def _old_database(url: str) -> None:
    """Create the old schema at ``url`` and fill it with :data:`ROWS`, with the driver alone."""
    postgres = not url.startswith("sqlite")
    dialect = "postgresql" if postgres else "sqlite"
    text = (FIXTURES / f"schema_493ee8c.{dialect}.sql").read_text()
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
        assert not _missing(runtime.db, SYSTEM_MODELS)  # indexes too

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
