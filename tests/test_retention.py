"""Retention: finished runs older than TENGO_RETENTION go with their steps and the events no
run needs; unfinished runs (and what they need) stay; dedupe claims expire after 24 h;
``tengo-jobs prune`` does it by hand; two prunes at once on PostgreSQL split the work."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from tengo_jobs import cli
from tengo_jobs.store.schema import database_proxy
from tengo_jobs.store.schema import DedupeRow, EventRow, RunRow, StepRow, TimerRow
from tengo_jobs.testing import make_test_runtime

from tengo_jobs.process.web import create_app

from webhelpers import bearer, make_app

DAY = 86_400_000
HOUR = 3_600_000


@pytest.fixture
def fns(jobs):
    @jobs.function("quick", event="quick.go")
    def quick(ctx, step):
        return step.run("only", lambda: "done")

    @jobs.function("sleeper", event="sleeper.go")
    def sleeper(ctx, step):
        step.run("before", lambda: 1)
        step.sleep("nap", "45d")
        return step.run("after", lambda: 2)

    @jobs.function("child", event="child.go")
    def child(ctx, step):
        return step.run("c", lambda: "child output")

    @jobs.function("parent", event="parent.go")
    def parent(ctx, step):
        got = step.invoke("call", function="child")
        step.sleep("long", "50d")
        return got


def _run_of(event_id: str) -> RunRow | None:
    return RunRow.get_or_none(RunRow.event_id == event_id)


def _settle(tester):
    tester.run_until_idle(advance_time=False)


def test_sixty_days_keep_the_unfinished_and_prune_the_rest(backend, fns, tester):
    t0 = backend.now()
    [sleeper_event] = tester.send({"name": "sleeper.go", "data": {}})
    [parent_event] = tester.send({"name": "parent.go", "data": {}})
    [noise] = tester.send({"name": "nobody.listens", "data": {}})  # starts no run
    _settle(tester)
    sleeper = _run_of(sleeper_event)
    parent = _run_of(parent_event)
    child = RunRow.get(RunRow.parent_run_id == parent.id)
    assert sleeper.status.value == "sleeping" and child.status.value == "completed"
    quick_by_day = {}
    for day in range(61):
        backend.clock.set(t0 + day * DAY)
        [event_id] = tester.send({"name": "quick.go", "data": {"day": day}, "id": f"q-{day}"})
        _settle(tester)
        quick_by_day[day] = (event_id, _run_of(event_id).id)
        pruned = backend.timekeeper.prune()
        assert pruned.dedupe == (1 if day >= 1 else 0)  # yesterday's claim, after its 24 h
        assert DedupeRow.select().count() == 1
        if day == 44:  # the 45-day sleeper, unfinished, is whole on its last day of sleep
            run = RunRow.get_by_id(sleeper.id)
            assert run.status.value == "sleeping"
            assert EventRow.get_or_none(EventRow.id == sleeper_event) is not None
            assert {s.key for s in StepRow.select().where(StepRow.run_id == sleeper.id)} \
                == {"before", "nap"}
            assert TimerRow.select().where(TimerRow.run_id == sleeper.id).count() == 1
            # the finished child of the unfinished parent stays, with its event chain
            assert RunRow.get_or_none(RunRow.id == child.id) is not None
            assert RunRow.get_by_id(parent.id).status.value == "sleeping"
            assert EventRow.get_or_none(EventRow.id == noise) is None  # no run needed it
    now = backend.now()
    cutoff = now - 30 * DAY
    # the sleeper woke on day 45 and finished: less than 30 days ago, so it stays whole
    run = RunRow.get_by_id(sleeper.id)
    assert run.status.value == "completed" and run.ended_at == t0 + 45 * DAY
    assert {s.key for s in StepRow.select().where(StepRow.run_id == sleeper.id)} \
        == {"before", "nap", "after"}
    assert EventRow.get_or_none(EventRow.id == sleeper_event) is not None
    # quick runs that ended before the cutoff are gone with their steps and events
    for day, (event_id, run_id) in quick_by_day.items():
        kept = t0 + day * DAY >= cutoff
        assert (RunRow.get_or_none(RunRow.id == run_id) is not None) is kept, day
        assert (EventRow.get_or_none(EventRow.id == event_id) is not None) is kept, day
        assert StepRow.select().where(StepRow.run_id == run_id).count() == (1 if kept else 0)
    # the parent finished on day 50 (it stays, with the child's output in its step); the
    # child, which ended on day 0, was kept only while its parent was unfinished
    assert RunRow.get_by_id(parent.id).status.value == "completed"
    assert tester.output(RunRow.get_by_id(parent.id)) == "child output"
    assert RunRow.get_or_none(RunRow.id == child.id) is None


def test_a_dry_run_counts_what_a_prune_deletes_and_deletes_nothing(backend, fns, tester):
    t0 = backend.now()
    ids = tester.send([{"name": "quick.go", "data": {"n": n}, "id": f"d-{n}"} for n in range(5)])
    tester.send({"name": "sleeper.go", "data": {}})
    tester.send({"name": "nobody.listens", "data": {}})
    _settle(tester)
    backend.clock.set(t0 + 40 * DAY)
    before = (RunRow.select().count(), StepRow.select().count(), EventRow.select().count(),
              DedupeRow.select().count())
    counted = backend.timekeeper.prune(dry_run=True)
    assert (counted.runs, counted.steps, counted.events, counted.dedupe) == (5, 5, 6, 5)
    assert (RunRow.select().count(), StepRow.select().count(), EventRow.select().count(),
            DedupeRow.select().count()) == before
    assert backend.store.retention.last("prune") is None  # a dry run is not recorded
    done = backend.timekeeper.prune()
    assert (done.runs, done.steps, done.events, done.dedupe) == (5, 5, 6, 5)
    assert all(_run_of(e) is None for e in ids)
    # the sleeper woke on day 45? not yet: still sleeping at day 40, so it stayed
    assert RunRow.select().count() == 1 and RunRow.get().status.value == "sleeping"


def test_retention_zero_keeps_every_run(backend, fns, tester):
    t0 = backend.now()
    tester.send({"name": "quick.go", "data": {}})
    _settle(tester)
    backend.clock.set(t0 + 400 * DAY)
    done = backend.timekeeper.prune(older_than_ms=0)
    assert (done.runs, done.events) == (0, 0)
    assert RunRow.select().count() == 1 and EventRow.select().count() == 1


def test_dedupe_claims_expire_after_their_24_hours(backend, fns, tester):
    t0 = backend.now()
    [first] = tester.send({"name": "quick.go", "data": {}, "id": "once"})
    backend.clock.set(t0 + 23 * HOUR)
    assert backend.timekeeper.prune().dedupe == 0
    assert DedupeRow.select().count() == 1
    assert tester.send({"name": "quick.go", "data": {}, "id": "once"}) == [first]  # duplicate
    backend.clock.set(t0 + 24 * HOUR)
    assert backend.timekeeper.prune().dedupe == 1
    assert DedupeRow.select().count() == 0
    [again] = tester.send({"name": "quick.go", "data": {}, "id": "once"})
    assert again != first  # a new event: the window was over


def test_prune_cli_dry_run_and_real(backend, fns, tester, monkeypatch):
    t0 = backend.now()
    tester.send([{"name": "quick.go", "data": {"n": n}} for n in range(3)])
    _settle(tester)
    backend.clock.set(t0 + 8 * DAY)
    monkeypatch.setattr(cli, "_boot", lambda **kw: backend)
    runner = CliRunner()
    r = runner.invoke(cli.main, ["prune", "--older-than", "7d", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "would delete 3 run(s), 3 step(s), 3 event(s)" in r.output
    assert RunRow.select().count() == 3
    r = runner.invoke(cli.main, ["prune", "--older-than", "10d"])
    assert r.exit_code == 0 and "deleted 0 run(s)" in r.output
    r = runner.invoke(cli.main, ["prune", "--older-than", "7d"])
    assert r.exit_code == 0, r.output
    assert "deleted 3 run(s), 3 step(s), 3 event(s)" in r.output
    assert RunRow.select().count() == 0
    r = runner.invoke(cli.main, ["prune", "--older-than", "soon"])
    assert r.exit_code == 2 and "--older-than" in r.output


def test_healthz_shows_row_counts_and_the_last_prune(tmp_path):
    runtime, app = make_app(tmp_path)
    with runtime:
        client = app.test_client()
        assert "rows" not in client.get("/healthz").get_json()  # no credentials: checks only
        body = client.get("/healthz", headers=bearer()).get_json()
        assert body["rows"] == {"runs": 0, "steps": 0, "events": 0}
        assert body["disk"]["database"] == "sqlite" and body["disk"]["bytes"] > 0
        assert body["last_prune"] is None and body["processes"] == []
        runtime.send({"name": "x.y", "data": {}})
        runtime.clock.advance(31 * DAY)
        runtime.timekeeper.prune()
        body = client.get("/healthz", headers=bearer()).get_json()
        assert body["rows"] == {"runs": 0, "steps": 0, "events": 0}
        assert body["last_prune"]["events"] == 1 and body["last_prune"]["at"].endswith("Z")


def test_small_batches_step_over_old_events_that_unfinished_runs_still_need(
        backend, fns, tester):
    """The oldest events belong to 45-day sleepers: every batch of two finds only those at
    the head, yet the walk goes on past them to the unreferenced events behind."""
    sleepers = tester.send([{"name": "sleeper.go", "data": {}}] * 3)
    backend.clock.advance(1_000)
    noise = tester.send([{"name": "nobody.listens", "data": {"i": i}} for i in range(5)])
    _settle(tester)
    backend.clock.advance(31 * DAY)
    done = backend.timekeeper.prune(batch=2)
    assert done.events == 5 and done.runs == 0
    assert {e.id for e in EventRow.select()} == set(sleepers)
    assert not set(noise) & {e.id for e in EventRow.select()}


def test_healthz_shows_disk_and_rows_left_after_a_prune(backend, fns, tester):
    """What a user checks after pruning: the tables' sizes and row counts in the health
    detail (PostgreSQL: the catalog's sizes and estimates, refreshed by ANALYZE)."""
    client = create_app(backend).test_client()
    postgres = backend.store.dialect.name == "postgresql"

    def detail():
        if postgres:  # what autovacuum does on its own, sooner
            database_proxy.execute_sql("ANALYZE")
        body = client.get("/healthz", headers=bearer()).get_json()
        return body["rows"], body["disk"]

    tester.send([{"name": "quick.go", "data": {"pad": "x" * 2000}}] * 40)
    tester.send({"name": "sleeper.go", "data": {}})
    _settle(tester)
    rows, disk = detail()
    assert rows == {"runs": 41, "steps": 42, "events": 41}
    assert disk["bytes"] > 40 * 2000
    if postgres:
        assert disk["database"] == "postgresql"
        assert disk["tables"]["tj_runs"]["rows_estimate"] == 41
        assert disk["tables"]["tj_events"]["rows_estimate"] == 41
        assert disk["tables"]["tj_runs"]["bytes"] > 0
        assert disk["bytes"] == sum(t["bytes"] for t in disk["tables"].values())
    else:
        assert disk["database"] == "sqlite" and disk["file_bytes"] >= disk["bytes"] - \
            disk["free_bytes"]
    before = disk

    backend.clock.advance(31 * DAY)
    assert backend.timekeeper.prune().runs == 40
    rows, disk = detail()
    assert rows == {"runs": 1, "steps": 2, "events": 1}  # the 45-day sleeper stays
    if postgres:
        assert disk["tables"]["tj_runs"]["rows_estimate"] == 1
        assert disk["tables"]["tj_steps"]["rows_estimate"] == 2
    else:  # the pages the prune freed are free for reuse (VACUUM returns them to the disk)
        assert disk["free_bytes"] > before["free_bytes"]
        assert disk["bytes"] - disk["free_bytes"] < before["bytes"] - before["free_bytes"]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_prunes_at_once_split_the_work(backend):
    """Two schedulers pruning the same table at once: no deadlock, no row counted twice."""
    runs, steps_per_run = 2_000, 3
    now = backend.now()
    old = now - 60 * DAY
    d = backend.store.dialect
    d.executemany('INSERT INTO "tj_events" ("id", "name", "data", "ts", "received_at") '
                  "VALUES (?, 'x', '{}', ?, ?)", [(f"e{i}", old, old) for i in range(runs)])
    d.executemany('INSERT INTO "tj_runs" ("id", "app_id", "function_id", "event_id", "status", '
                  '"attempt", "created_at", "ended_at", "wake_at", "inflight") '
                  "VALUES (?, 'app', 'f', ?, 'completed', 0, ?, ?, ?, 0)",
                  [(f"r{i}", f"e{i}", old, old + i, old) for i in range(runs)])
    d.executemany('INSERT INTO "tj_steps" ("run_id", "key", "name", "kind", "position", '
                  '"status", "attempts") VALUES (?, ?, ?, \'run\', ?, \'completed\', 1)',
                  [(f"r{i}", f"k{j}", f"k{j}", j) for i in range(runs) for j in range(steps_per_run)])
    other = make_test_runtime(backend.settings.database_url, migrate=False, clock=backend.clock)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def prune(runtime):
        try:
            barrier.wait()
            results.append(runtime.timekeeper.prune(batch=100))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            runtime.store.close_thread_connection()

    threads = [threading.Thread(target=prune, args=(rt,)) for rt in (backend, other)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
        database_proxy.initialize(backend.db)  # the models read the fixture's database again
    assert not errors
    assert sum(r.runs for r in results) == runs
    assert sum(r.steps for r in results) == runs * steps_per_run
    assert sum(r.events for r in results) == runs
    assert RunRow.select().count() == StepRow.select().count() == EventRow.select().count() == 0


def test_pruning_a_run_deletes_its_failed_attempts_log(backend, jobs, tester):
    from tengo_jobs.store.schema import StepAttemptRow
    tries = []

    @jobs.function("flaky-old", event="flaky.go", retries=2)
    def flaky(ctx, step):
        def once():
            tries.append(1)
            if len(tries) == 1:
                raise ValueError("first try fails")
            return "ok"
        return step.run("fetch", once)

    [event_id] = tester.send({"name": "flaky.go", "data": {}})
    tester.run_until_idle()
    run = _run_of(event_id)
    assert run.status.value == "completed"
    logged = StepAttemptRow.select().where(StepAttemptRow.run_id == run.id)
    assert [a.attempt for a in logged] == [1]
    backend.clock.set(backend.now() + 61 * DAY)
    backend.timekeeper.prune()
    assert RunRow.get_or_none(RunRow.id == run.id) is None
    assert StepAttemptRow.select().where(StepAttemptRow.run_id == run.id).count() == 0
