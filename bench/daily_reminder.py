"""Benchmark: the daily trip reminder over 10,000 trips of 3 passengers (40,000 notifications).

For each database (SQLite file, fresh PostgreSQL database) it:

1. bulk-loads drivers, passengers and 10,000 ACTIVE trips departing tomorrow (Buenos Aires);
2. runs ``daily-trip-reminder`` in one executor call (what one worker does with the cron
   tick's run): get-tomorrow-trips + one ``send-reminder-trip-<id>`` step per trip, each
   storing 4 in-app notifications and checkpointing (the team's reminder notifies in
   the app only, no email);
3. checks the result (processedTrips, 40,000 notifications, no email);
4. resumes a 10,001-step run: a simulated crash right after the last checkpoint (before
   the run is marked completed) leaves the run leased; once its lease expired, executing it again
   replays every stored step. Every SQL statement of that resume is counted through a
   wrapper on ``Database.execute_sql``: the stored steps must be read by one query.

Run: ``python bench/daily_reminder.py`` (``--trips``, ``--passengers``, ``--db sqlite|postgres|both``,
``--repeat``, ``--postgres-url``). Prints medians per database.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import actors  # noqa: E402,F401  (registers the functions)
from actors.daily_trip_reminder import daily_trip_reminder  # noqa: E402
from tengo_lugar.models import (Driver, EmailOutbox, Notification, Passenger, Trip,  # noqa: E402
                                   TripPassenger, User)
from tengo_lugar.testing import START_MS  # noqa: E402
from tengo_jobs.clock import FakeClock  # noqa: E402
from tengo_jobs.core.events import SCHEDULED_EVENT, Event  # noqa: E402
from tengo_jobs.engine.invocation import Invocation  # noqa: E402
from tengo_jobs.store import RunStart  # noqa: E402
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step  # noqa: E402
from tengo_jobs.runtime import set_runtime  # noqa: E402
from tengo_jobs.testing import make_test_runtime  # noqa: E402

TOMORROW_9AM_BA = START_MS + 24 * 3_600_000  # START_MS is 09:00 in Buenos Aires
CHUNK = 1_000


class SimulatedCrash(BaseException):
    """The worker dies after the last checkpoint, before the run is marked completed."""


def _insert(model, rows):
    for i in range(0, len(rows), CHUNK):
        model.insert_many(rows[i:i + CHUNK]).execute()


def load_data(runtime, trips: int, passengers: int) -> None:
    now = START_MS
    with runtime.db.atomic():
        users, drivers, riders, trip_rows, links = [], [], [], [], []
        for t in range(trips):
            uid, did = f"ud{t:07d}", f"d{t:07d}"
            users.append(dict(id=uid, email=f"driver{t}@bench.test", name=f"Conductor {t}",
                              is_admin=False, created_at=now))
            drivers.append(dict(id=did, user=uid, license_verified=True, created_at=now))
            trip_rows.append(dict(id=f"t{t:07d}", driver=did, origin="Córdoba",
                                  destination="Villa Carlos Paz",
                                  departure_at=TOMORROW_9AM_BA + (t % 600) * 60_000,
                                  status="ACTIVE", seats=passengers, price_per_seat=4500,
                                  created_at=now))
            for p in range(passengers):
                pu, pid = f"up{t:07d}{p}", f"p{t:07d}{p}"
                users.append(dict(id=pu, email=f"p{t}.{p}@bench.test", name=f"Pasajero {t}.{p}",
                                  is_admin=False, created_at=now))
                riders.append(dict(id=pid, user=pu, created_at=now))
                links.append(dict(trip=f"t{t:07d}", passenger=pid, status="CONFIRMED", seats=1,
                                  created_at=now))
        _insert(User, users)
        _insert(Driver, drivers)
        _insert(Passenger, riders)
        _insert(Trip, trip_rows)
        _insert(TripPassenger, links)


class QueryCounter:
    """Counts the SQL statements a database executes while installed."""

    def __init__(self, db):
        self.db = db
        self.statements: list[str] = []
        self._original = db.execute_sql

    def __enter__(self):
        def counting(sql, params=None, *args, **kwargs):
            self.statements.append(sql)
            return self._original(sql, params, *args, **kwargs)

        self.db.execute_sql = counting
        return self

    def __exit__(self, *exc):
        self.db.execute_sql = self._original

    def matching(self, *words) -> list[str]:
        return [s for s in self.statements if all(w in s for w in words)]


def bench_once(database_url: str, trips: int, passengers: int) -> dict:
    runtime = make_test_runtime(database_url, clock=FakeClock(START_MS))
    try:
        load_data(runtime, trips, passengers)
        [run_id] = runtime.store.runs.start([RunStart(
            function_id=daily_trip_reminder.id, app_id=daily_trip_reminder.app_id,
            event=Event(name=SCHEDULED_EVENT, data={}, ts=START_MS))], START_MS)
        real_complete = Invocation.complete
        crashed = []

        def complete_then_crash_once(self, output):
            if not crashed:
                crashed.append(True)
                raise SimulatedCrash()
            return real_complete(self, output)

        Invocation.complete = complete_then_crash_once
        try:
            started = time.perf_counter()
            try:
                runtime.executor.execute(run_id)
            except SimulatedCrash:
                pass
            elapsed = time.perf_counter() - started
            stored = Step.select().where(Step.run_id == run_id).count()
            runtime.clock.advance(runtime.settings.lease_ttl_ms + 1)  # the crashed lease expires
            with QueryCounter(runtime.db) as counter:
                started = time.perf_counter()
                outcome = runtime.executor.execute(run_id)
                resume_s = time.perf_counter() - started
        finally:
            Invocation.complete = real_complete
        run = Run.get_by_id(run_id)
        notes = Notification.select().count()
        emails = EmailOutbox.select().count()
        expected = trips * (passengers + 1)
        assert outcome == "completed" and run.status == "completed", (outcome, run.status, run.error)
        assert run.output == f'{{"processedTrips":{trips}}}', run.output
        assert notes == expected and emails == 0, (notes, emails, expected)  # in-app only
        step_selects = counter.matching("SELECT", "tj_steps")
        return {"seconds": elapsed, "steps": stored, "steps_per_s": stored / elapsed,
                "notifications": notes, "emails": emails, "resume_seconds": resume_s,
                "resume_queries": len(counter.statements),
                "resume_step_queries": len(step_selects),
                "resume_step_writes": len(counter.matching("tj_steps")) - len(step_selects)}
    finally:
        runtime.close()
        set_runtime(None)


def _sqlite_url() -> tuple[str, callable]:
    fd, path = tempfile.mkstemp(prefix="tj-bench-", suffix=".db")
    os.close(fd)

    def cleanup():
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(path + suffix)
            except FileNotFoundError:
                pass

    return f"sqlite:///{path}", cleanup


def _postgres_url(admin_url: str) -> tuple[str, callable]:
    import psycopg

    name = f"tj_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def cleanup():
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')

    return admin_url.rsplit("/", 1)[0] + "/" + name, cleanup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=10_000)
    parser.add_argument("--passengers", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-async-commit", action="store_true",
                        help="PostgreSQL sessions with synchronous_commit=off (shows the fsync cost)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    import peewee
    import psycopg

    print(f"python {platform.python_version()}, peewee {peewee.__version__}, psycopg "
          f"{psycopg.__version__}, sqlite {__import__('sqlite3').sqlite_version}, "
          f"{os.cpu_count()} cpus; {args.trips} trips x {args.passengers} passengers")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    summary = {}
    for kind in kinds:
        results = []
        for i in range(args.repeat):
            url, cleanup = _sqlite_url() if kind == "sqlite" else _postgres_url(args.postgres_url)
            if kind == "postgres" and args.pg_async_commit:
                url += "?options=-c%20synchronous_commit%3Doff"
            try:
                r = bench_once(url, args.trips, args.passengers)
            finally:
                cleanup()
            results.append(r)
            print(f"  {kind} run {i + 1}: {r['seconds']:.2f} s, {r['steps_per_s']:.0f} steps/s, "
                  f"{r['notifications']} notifications, resume {r['resume_seconds']:.2f} s with "
                  f"{r['resume_queries']} queries ({r['resume_step_queries']} reading tj_steps)",
                  flush=True)
        med = {k: statistics.median(r[k] for r in results)
               for k in ("seconds", "steps_per_s", "resume_seconds", "resume_queries",
                         "resume_step_queries")}
        summary[kind] = med
        print(f"{kind}: median {med['seconds']:.2f} s for {results[0]['steps']} steps = "
              f"{med['steps_per_s']:.0f} steps/s; resume {med['resume_seconds']:.2f} s, "
              f"{med['resume_queries']:.0f} queries, {med['resume_step_queries']:.0f} reading stored steps")
    if len(summary) == 2:
        print(f"PostgreSQL/SQLite time ratio: {summary['postgres']['seconds'] / summary['sqlite']['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
