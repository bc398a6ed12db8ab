"""``tengo-jobs seed-demo`` in a real process: demo rows exist and the reminder finds tomorrow's trips."""

import os
import subprocess
import sys

import actors  # noqa: F401
from tengo_lugar.models import Driver, DriverCar, Payment, Trip, TripPassenger, User
from tengo_lugar.seed import seed_demo
from tengo_lugar.testing import app_runtime, notifications, tester  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(tmp_path, *args, **env):
    environ = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
               "TENGO_FUNCTIONS": "actors", "PYTHONPATH": ROOT, **env}
    environ.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "tengo_jobs.cli", *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=60)


def test_seed_demo_command_creates_and_prints_the_demo_data_once(tmp_path):
    first = _cli(tmp_path, "seed-demo")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("driver     ") == 2
    assert first.stdout.count("trip       ") == 3 and first.stdout.count("payment    ") == 3
    assert "Córdoba → Villa Carlos Paz" in first.stdout
    second = _cli(tmp_path, "seed-demo")
    assert second.returncode == 0 and "nothing created" in second.stdout
    from tengo_jobs.store.connection import open_database

    db = open_database(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        assert User.select().count() == 7 and Driver.select().count() == 2
        assert DriverCar.select().count() == 2 and Trip.select().count() == 3
        assert TripPassenger.select().count() == 7 and Payment.select().count() == 3
    finally:
        db.close()


def test_seed_demo_refuses_production(tmp_path):
    result = _cli(tmp_path, "seed-demo", TENGO_ENV="production", TENGO_ALLOW_UNSAFE="1")
    assert result.returncode != 0 and "refusing to seed" in result.stderr


def test_seeded_trips_tomorrow_get_reminded_by_the_next_tick(tester):
    from actors.daily_trip_reminder import daily_trip_reminder

    summary = seed_demo(tester.runtime)
    assert summary["created"]
    now = tester.clock.now()
    run = tester.tick(daily_trip_reminder, now)
    assert tester.output(run) == {"processedTrips": 2}
    assert len(notifications()) == 2 + 3 + 2  # two drivers, five seats taken tomorrow
