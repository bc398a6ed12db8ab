"""Flow control held by real processes on Redis + PostgreSQL (2 ``dramatiq`` processes × 4
threads, a ``gunicorn`` with 2 workers): a Redis flush in the middle of a
concurrency-limited backlog loses no run and breaks no limit; a worker SIGKILLed while
holding slots gives them back within the lease TTL; concurrent HTTP intake keeps
``idempotency`` and ``rate_limit`` exact. The steps record their own start/end times in a
side table (:mod:`flow_procs_funcs`); the checks read rows and the REST API."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time

import psycopg
import pytest
import redis
import requests

import flow_procs_funcs as funcs
from engine_funcs.harness import _delete_queue_keys, drive_until_final
from procs import free_port, start_worker, wait_until
from test_redis_loss import start_redis
from tengo_jobs import Jobs, Settings
from tengo_jobs.core.registry import Registry
from tengo_jobs.runtime import Runtime, set_runtime
from tengo_jobs.store.schema import RunStatus
from tengo_jobs.testing import max_overlap
from webhelpers import EVENT_KEY, api_get, live_env, start_gunicorn

pytestmark = pytest.mark.integration

LEASE_TTL_S = 3


@contextlib.contextmanager
def driver(env: dict):
    """A runtime in this process that sends events and plays the scheduler."""
    settings = Settings.from_env(env, functions=())
    registry = Registry()
    runtime = Runtime(settings=settings, registry=registry, set_global_broker=False)
    previous = set_runtime(runtime)
    try:
        runtime.migrate()
        funcs.create_table(env["DATABASE_URL"])
        funcs.register(Jobs(app_id=funcs.APP_ID, runtime=runtime, registry=registry))
        yield runtime
    finally:
        runtime.close()
        with contextlib.suppress(Exception):
            _delete_queue_keys(runtime)
        set_runtime(previous)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_redis_flush_mid_backlog_loses_no_run_and_breaks_no_limit(
        tmp_path, postgres_url, queue_name):
    port = free_port()
    server = start_redis(port, tmp_path / "redis.log")
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "TENGO_QUEUE": queue_name, "TENGO_FUNCTIONS": "flow_procs_funcs", "TENGO_ENV": "test",
           "TENGO_REDELIVER_AFTER": "1s"}
    worker = None
    try:
        with driver(env) as runtime:
            n = 200
            runtime.send([{"name": "flow.backlog", "data": {"i": i}} for i in range(n)])
            worker = start_worker("flow_procs_funcs", tmp_path / "worker.log", processes=2,
                                  threads=4, **env)
            wait_until(lambda: len(funcs.intervals(postgres_url, "backlog")) >= 30, timeout=60,
                       message="a part of the backlog to run")
            client = redis.Redis(port=port)
            assert client.dbsize() > 0  # wake-ups of the backlog were in Redis
            client.flushdb()
            done_at_flush = len(funcs.intervals(postgres_url, "backlog"))
            assert done_at_flush < n, "the backlog drained before the flush: nothing tested"
            runs = drive_until_final(runtime, timeout=90, procs=[worker])
            assert [r.status for r in runs] == [RunStatus.COMPLETED] * n, worker.log()[-3000:]
            recorded = funcs.intervals(postgres_url, "backlog")
            assert len({run_id for run_id, _, _ in recorded}) == n
            assert max_overlap([(s, e) for _, s, e in recorded]) <= 3
            assert _count(postgres_url, "SELECT count(*) FROM tj_slots") == 0
            assert _count(postgres_url, "SELECT count(*) FROM tj_slot_waiters") == 0
            client.close()
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


def test_a_killed_workers_slots_come_back_within_the_lease_ttl(
        tmp_path, postgres_url, redis_url, queue_name):
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "TENGO_QUEUE": queue_name,
           "TENGO_FUNCTIONS": "flow_procs_funcs", "TENGO_ENV": "test",
           "TENGO_LEASE_TTL": f"{LEASE_TTL_S}s", "TENGO_REDELIVER_AFTER": "1s"}
    doomed = survivor = None
    try:
        with driver(env) as runtime:
            doomed = start_worker("flow_procs_funcs", tmp_path / "doomed.log", processes=1,
                                  threads=4, FLOW_BLOCK="1", **env)
            runtime.send([{"name": "flow.hold", "data": {"i": i}} for i in range(2)])
            live = "SELECT count(*) FROM tj_slots WHERE scope_key = 'c:fn:holder'"
            wait_until(lambda: _count(postgres_url, live) == 2, timeout=60,
                       message="the doomed worker to hold both slots")
            runtime.send([{"name": "flow.hold", "data": {"i": i}} for i in range(2, 8)])
            wait_until(lambda: _count(postgres_url, "SELECT count(*) FROM tj_slot_waiters") == 6,
                       timeout=30, message="the other runs to wait for a slot")
            doomed.kill()  # SIGKILL, slots held, steps mid-way
            killed_at = time.time()
            survivor = start_worker("flow_procs_funcs", tmp_path / "survivor.log", processes=2,
                                    threads=4, **env)
            runs = drive_until_final(runtime, timeout=60, procs=[survivor])
            assert [r.status for r in runs] == [RunStatus.COMPLETED] * 8, survivor.log()[-3000:]
            recorded = funcs.intervals(postgres_url, "holder")
            first_start = min(s for _, s, _ in recorded)
            # the dead worker's slots counted until their lease ran out, and not much longer
            # (worker start-up and the sweeper's pass are the slack)
            assert LEASE_TTL_S / 2 <= first_start - killed_at <= LEASE_TTL_S + 10
            assert max_overlap([(s, e) for _, s, e in recorded]) <= 2
            assert len({run_id for run_id, _, _ in recorded}) == 8
    finally:
        for proc in (doomed, survivor):
            if proc is not None:
                proc.stop()


def test_idempotency_and_rate_limit_hold_under_concurrent_http_intake(
        tmp_path, postgres_url, redis_url, queue_name):
    env = live_env(postgres_url, redis_url, queue_name, TENGO_FUNCTIONS="flow_procs_funcs")
    with driver({**env, "TENGO_ENV": "test"}):
        pass  # migrated
    web, base = start_gunicorn(tmp_path / "web.log", env, workers=2)
    try:
        events = [{"name": "flow.pay", "data": {"id": i % 10, "user": f"u{i % 2}"}}
                  for i in range(40)]

        def post(event):
            r = requests.post(f"{base}/e/{EVENT_KEY}", json=event, timeout=30)
            assert r.status_code == 200, r.text
            return r.json()["ids"][0]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(post, events))

        def runs_of(fn):
            return api_get(base, "/api/runs", function=fn, limit=200)["data"]

        assert len(runs_of("once")) == 10  # one per id
        assert len(runs_of("rated")) == 10  # 5 per user
        reasons: dict[tuple[str, str], int] = {}
        for event_id in ids:
            for f in api_get(base, f"/api/events/{event_id}")["flow_control"]:
                reasons[(f["function_id"], f["reason"])] = (
                    reasons.get((f["function_id"], f["reason"]), 0) + 1)
        assert reasons == {("once", "idempotency"): 30, ("rated", "rate_limit"): 30}
        started_ids = {r["event_id"] for r in runs_of("once")}
        assert sorted(events[ids.index(e)]["data"]["id"] for e in started_ids) == list(range(10))
    finally:
        web.stop()
