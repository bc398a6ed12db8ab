"""Functions for the real-worker capacity test: each step records when it executed
(wall clock) in a side table, so the test checks the overlap from outside."""

from __future__ import annotations

import os
import time

import psycopg

from tengo_jobs import Jobs

TABLE = "capacity_test_intervals"
APP_ID = "capacity-test"


def create_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (run_id TEXT, k TEXT, started DOUBLE PRECISION, "
                     "ended DOUBLE PRECISION)")


def intervals(url: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT k, started, ended FROM {TABLE}").fetchall()


def _work(run_id: str, key: str) -> int:
    started = time.time()
    time.sleep(0.03)
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s)",
                     (run_id, key, started, time.time()))
    return 1


def register(jobs: Jobs) -> None:
    @jobs.function("capped", event="capacity.go", retries=3,
                   concurrency=[{"limit": 3}, {"limit": 1, "key": "event.data.k"}])
    def capped(ctx, step):
        k = ctx.event.data["k"]
        step.run("first", _work, ctx.run_id, k)
        step.sleep("nap", "150ms")  # holds no slot
        step.run("second", _work, ctx.run_id, k)
        return k


jobs = Jobs(app_id=APP_ID) if os.environ.get("TENGO_FUNCTIONS") == "capacity_funcs" else None
if jobs is not None:
    register(jobs)
