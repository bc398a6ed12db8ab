"""Functions for the flow-control process tests (``TENGO_FUNCTIONS=flow_procs_funcs``): each
step records when it executed (wall clock) in a side table, so a test checks from outside
how many steps overlapped.

- ``backlog``: ``concurrency=3``, one short step (the Redis-flush test).
- ``holder``: ``concurrency=2``; its step blocks for a minute in a process started with
  ``FLOW_BLOCK=1`` (the worker that is SIGKILLed while holding the slots), and is short
  elsewhere.
- ``once`` (``idempotency``) and ``rated`` (``rate_limit``): admission rules through the
  HTTP intake.
"""

from __future__ import annotations

import os
import time

import psycopg

from tengo_jobs import Jobs

TABLE = "flow_procs_intervals"
APP_ID = "flow-procs-test"


def create_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (run_id TEXT, fn TEXT, started DOUBLE PRECISION, "
                     "ended DOUBLE PRECISION)")


def intervals(url: str, fn: str) -> list[tuple[str, float, float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(f"SELECT run_id, started, ended FROM {TABLE} WHERE fn = %s",
                            (fn,)).fetchall()


def _work(run_id: str, fn: str, seconds: float) -> int:
    started = time.time()
    time.sleep(seconds)
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"INSERT INTO {TABLE} VALUES (%s, %s, %s, %s)",
                     (run_id, fn, started, time.time()))
    return 1


def register(jobs: Jobs) -> None:
    @jobs.function("backlog", event="flow.backlog", retries=5, concurrency=3)
    def backlog(ctx, step):
        return step.run("work", _work, ctx.run_id, "backlog", 0.02)

    @jobs.function("holder", event="flow.hold", retries=5, concurrency=2)
    def holder(ctx, step):
        seconds = 60 if os.environ.get("FLOW_BLOCK") == "1" else 0.02
        return step.run("work", _work, ctx.run_id, "holder", seconds)

    @jobs.function("once", event="flow.pay", idempotency="event.data.id")
    def once(ctx, step):
        return ctx.event.data["id"]

    @jobs.function("rated", event="flow.pay",
                   rate_limit={"limit": 5, "period": "1h", "key": "event.data.user"})
    def rated(ctx, step):
        return ctx.event.data["user"]


jobs = Jobs(app_id=APP_ID) if os.environ.get("TENGO_FUNCTIONS") == "flow_procs_funcs" else None
if jobs is not None:
    register(jobs)
