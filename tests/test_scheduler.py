"""The scheduler core: cron ticks and misfire policies, due timers, future-dated events.

Time is injected (``now=`` and the runtime's FakeClock); the one test that starts the
real APScheduler wiring waits on a deadline for a seconds-resolution tick.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from procs import ROOT, TESTS, process_env, wait_until
from tengo_jobs import Jobs
from tengo_jobs.clock import Clock
from tengo_jobs.core.events import SCHEDULED_EVENT
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run, RunStatus, StepRow as Step
from tengo_jobs.engine.timekeeper import MISFIRE_GRACE_MS
from tengo_jobs.process.scheduler import Scheduler
from tengo_jobs.store.schema import CronStateRow as CronState
from tengo_jobs.testing import make_test_runtime

HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the test runtime's FakeClock start


def _noop(ctx, step):
    return {"tick": ctx.event.ts}


def cron_runs(fn_id: str) -> list[Run]:
    return list(Run.select().where(Run.function_id == fn_id).order_by(Run.unique_key))


def tick_of(run: Run) -> int:
    return int(run.unique_key.rsplit(":", 1)[1])


def queued_messages(runtime) -> int:
    return sum(q.qsize() for q in runtime.broker.queues.values())


@pytest.fixture
def hourly(backend, jobs):
    """Declares an hourly cron function (first seen at T0) with the given misfire policy."""
    def make(misfire="coalesce", fn_id="hourly"):
        fn = jobs.function(fn_id, cron="0 * * * *", misfire=misfire)(_noop)
        backend.timekeeper.ensure_cron_state([fn.id], now=T0)
        return fn
    return make


# -- cron ticks -------------------------------------------------------------------------------
def test_a_new_cron_function_does_not_backfill_and_fires_at_its_next_tick(backend, hourly):
    fn = hourly()
    assert backend.timekeeper.fire_cron(fn, now=T0 + HOUR - 1) == []
    [run_id] = backend.timekeeper.fire_cron(fn, now=T0 + HOUR + 20)
    run = Run.get_by_id(run_id)
    assert run.unique_key == f"cron:hourly:{T0 + HOUR}"
    assert run.status == RunStatus.QUEUED
    event = EventRow.get_by_id(run.event_id)
    assert (event.name, json.loads(event.data), event.ts) == (SCHEDULED_EVENT, {"cron": "0 * * * *"},
                                                             T0 + HOUR)
    assert queued_messages(backend) == 1


def test_each_tick_starts_once_however_often_it_is_checked(backend, hourly):
    fn = hourly()
    for now in (T0 + HOUR, T0 + HOUR + 1, T0 + HOUR + 500, T0 + 2 * HOUR - 1):
        backend.timekeeper.fire_cron(fn, now=now)
    assert [tick_of(r) for r in cron_runs("hourly")] == [T0 + HOUR]


def test_coalesce_starts_one_run_for_the_latest_missed_tick(backend, hourly):
    fn = hourly("coalesce")
    started = backend.timekeeper.fire_cron(fn, now=T0 + 5 * HOUR + 30_000)  # down for 5 ticks
    assert len(started) == 1
    assert [tick_of(r) for r in cron_runs("hourly")] == [T0 + 5 * HOUR]


def test_skip_drops_ticks_older_than_the_grace_then_fires_on_time_again(backend, hourly):
    fn = hourly("skip")
    assert backend.timekeeper.fire_cron(fn, now=T0 + 5 * HOUR + MISFIRE_GRACE_MS + 1) == []
    assert cron_runs("hourly") == []
    backend.timekeeper.fire_cron(fn, now=T0 + 6 * HOUR + 1_000)  # on time: within the grace
    assert [tick_of(r) for r in cron_runs("hourly")] == [T0 + 6 * HOUR]


def test_all_starts_every_missed_tick_in_order(backend, hourly):
    fn = hourly("all")
    started = backend.timekeeper.fire_cron(fn, now=T0 + 5 * HOUR + 30_000)
    assert len(started) == 5
    assert [tick_of(r) for r in cron_runs("hourly")] == [T0 + h * HOUR for h in range(1, 6)]


def test_a_restart_never_refires_a_tick_that_already_ran(backend, hourly):
    fn = hourly("all")
    backend.timekeeper.fire_cron(fn, now=T0 + 2 * HOUR)
    # A new scheduler process starts: its state row is already there.
    backend.timekeeper.ensure_cron_state([fn.id], now=T0 + 2 * HOUR + 10)
    assert backend.timekeeper.fire_cron(fn, now=T0 + 2 * HOUR + 10) == []
    # Even if the state were rolled back, a tick's unique key starts nothing twice.
    CronState.update(last_tick_ms=T0).execute()
    assert backend.timekeeper.fire_cron(fn, now=T0 + 2 * HOUR + 20) == []
    assert [tick_of(r) for r in cron_runs("hourly")] == [T0 + HOUR, T0 + 2 * HOUR]


def test_a_cron_run_executes_with_the_scheduled_event(backend, tester, hourly):
    hourly()
    backend.clock.set(T0 + HOUR + 5)
    backend.timekeeper.fire_cron(backend.registry.get("hourly"))
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED
    assert json.loads(run.output) == {"tick": T0 + HOUR}


def test_concurrent_checks_start_each_tick_once(backend, jobs):
    fn = jobs.function("minutely", cron="* * * * *", misfire="all")(_noop)
    backend.timekeeper.ensure_cron_state([fn.id], now=T0)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def check(now):
        try:
            barrier.wait()
            results.extend(backend.timekeeper.fire_cron(fn, now=now))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            backend.db.close()

    threads = [threading.Thread(target=check, args=(T0 + 10 * 60_000 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    ticks = [tick_of(r) for r in cron_runs("minutely")]
    assert ticks == [T0 + m * 60_000 for m in range(1, 11)]
    assert sorted(results) == sorted(r.id for r in cron_runs("minutely"))


# -- timers and future-dated events -----------------------------------------------------------
def test_future_dated_event_starts_at_ts_not_before(backend, jobs, tester):
    @jobs.function("reminder", event="test.future-reminder")
    def reminder(ctx, step):
        return step.run("at", lambda: backend.now())

    due = T0 + 2_000
    jobs.send({"name": "test.future-reminder", "data": {}, "ts": due}, now=T0)
    backend.broker.flush_all()
    assert backend.timekeeper.poll_timers(now=due - 1) == 0
    assert queued_messages(backend) == 0
    [run] = Run.select()
    assert (run.status, run.wake_at) == (RunStatus.QUEUED, due)
    assert backend.executor.execute(run.id) == "skipped"  # a stray message changes nothing

    assert backend.timekeeper.poll_timers(now=due) == 1
    assert queued_messages(backend) == 1
    backend.clock.set(due + 3)
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.COMPLETED
    assert json.loads(run.output) == due + 3
    assert run.started_at >= due


def test_event_with_ts_in_the_past_starts_at_once(backend, jobs):
    jobs.function("late", event="late.event")(_noop)
    jobs.send({"name": "late.event", "data": {}, "ts": T0 - HOUR}, now=T0)
    [run] = Run.select()
    assert run.wake_at == T0
    assert queued_messages(backend) == 1
    assert backend.timekeeper.poll_timers(now=T0) == 0  # no timer was needed


def test_sleeping_runs_wake_when_the_poller_fires_their_timers(backend, jobs, tester):
    @jobs.function("napper", event="nap")
    def napper(ctx, step):
        step.sleep("s", "2s")
        return step.run("after", lambda: backend.now())

    jobs.send([{"name": "nap", "data": {"i": i}} for i in range(25)], now=T0)
    tester.run_until_idle(advance_time=False)
    assert Run.select().where(Run.status == RunStatus.SLEEPING).count() == 25
    backend.broker.flush_all()
    assert backend.timekeeper.poll_timers(now=T0 + 1_999, batch=10) == 0
    assert backend.timekeeper.poll_timers(now=T0 + 2_000, batch=10) == 25  # three batches, drained
    assert queued_messages(backend) == 25
    backend.clock.set(T0 + 2_000)
    runs = tester.run_until_idle(advance_time=False)
    assert {r.status for r in runs} == {RunStatus.COMPLETED}
    after = [s for s in Step.select() if s.key == "after"]
    assert len(after) == 25 and all(s.started_at >= T0 + 2_000 for s in after)


def test_sweeper_re_enqueues_a_queued_run_whose_message_was_lost(backend, jobs):
    jobs.function("lost", event="lost.msg")(_noop)
    jobs.send({"name": "lost.msg", "data": {}}, now=T0)
    backend.broker.flush_all()  # the broker lost its messages
    assert backend.timekeeper.sweep(now=T0 + 10) == []  # too soon: the message may still arrive
    [run_id] = backend.timekeeper.sweep(now=T0 + backend.settings.redeliver_after_ms + 1)
    assert queued_messages(backend) == 1
    assert backend.executor.execute(run_id) == "completed"


# -- the wired scheduler ----------------------------------------------------------------------
def test_started_scheduler_fires_cron_ticks_and_timers_then_stops(tmp_path):
    with make_test_runtime(f"sqlite:///{tmp_path / 's.db'}", clock=Clock(),
                           poll_interval_ms=50) as runtime:
        jobs = Jobs(app_id="t", runtime=runtime)
        jobs.function("every-second", cron="* * * * *")(_noop)

        @jobs.function("short-nap", event="short.nap")
        def short_nap(ctx, step):
            step.sleep("s", "300ms")
            return "awake"

        scheduler = Scheduler(runtime, cron_second="*")
        scheduler.start()
        try:
            jobs.send({"name": "short.nap", "data": {}})
            nap = Run.get(Run.function_id == "short-nap")
            runtime.executor.execute(nap.id)
            assert Run.get_by_id(nap.id).status == RunStatus.SLEEPING
            runtime.broker.flush_all()
            wait_until(lambda: queued_messages(runtime) >= 1 and Run.get_by_id(nap.id).status
                       == RunStatus.QUEUED, timeout=5, message="the poller to wake the sleeping run")
            wait_until(lambda: len(cron_runs("every-second")) >= 2, timeout=5,
                       message="two seconds-resolution cron ticks")
        finally:
            scheduler.stop()
        ticks = [tick_of(r) for r in cron_runs("every-second")]
        assert all(t % 1000 == 0 for t in ticks) and len(set(ticks)) == len(ticks)
        assert runtime.executor.execute(nap.id) == "completed"


# -- start-up failures ------------------------------------------------------------------------
def _scheduler_process(tmp_path, **env):
    base = dict(DATABASE_URL=f"sqlite:///{tmp_path / 'start.db'}", TENGO_ENV="development")
    base.update(env)
    return subprocess.run([sys.executable, str(ROOT / "scheduler.py")], env=process_env(**base),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_scheduler_refuses_a_bad_cron_at_start_up_naming_function_and_field(tmp_path):
    (tmp_path / "bad_cron_funcs.py").write_text(
        "from tengo_jobs import Jobs\n"
        "jobs = Jobs(app_id='bad')\n"
        "@jobs.function('weekly-digest', cron='TZ=America/Nowhere 0 9 * * 1')\n"
        "def digest(ctx, step):\n    return None\n")
    result = _scheduler_process(tmp_path, TENGO_FUNCTIONS="bad_cron_funcs")
    assert result.returncode != 0
    assert "'weekly-digest'" in result.stderr and "unknown time zone 'America/Nowhere'" in result.stderr


def test_scheduler_refuses_unsafe_production_settings(tmp_path):
    result = _scheduler_process(tmp_path, TENGO_ENV="production", TENGO_FUNCTIONS="",
                                TENGO_DASHBOARD_PASSWORD="x")
    assert result.returncode == 2
    assert "DATABASE_URL is SQLite" in result.stderr
    assert "TENGO_EVENT_KEYS" not in result.stderr  # the scheduler takes no events
    assert "Traceback" not in result.stderr


assert TESTS.is_dir()
