"""The worker process boots like every other: the production check, then migrations."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from procs import ROOT, process_env, start_worker, wait_until

pytestmark = pytest.mark.integration

SAFE = dict(TENGO_ENV="production", TENGO_EVENT_KEYS="worker-boot-event-key-0001",
            TENGO_DASHBOARD_PASSWORD="worker-boot-dashboard-pass")


def test_an_unsafe_production_worker_refuses_to_start(postgres_url, redis_url, queue_name):
    env = process_env(DATABASE_URL=postgres_url, REDIS_URL=redis_url, TENGO_QUEUE=queue_name,
                      TENGO_ENV="production")
    result = subprocess.run([sys.executable, "-m", "dramatiq", "actors", "-p", "1", "-t", "1"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to start with TENGO_ENV=production" in result.stderr


def test_a_worker_on_a_fresh_database_creates_the_system_and_app_tables(postgres_url, redis_url,
                                                                        queue_name, tmp_path):
    proc = start_worker("actors", tmp_path / "worker.log", threads=1, DATABASE_URL=postgres_url,
                        REDIS_URL=redis_url, TENGO_QUEUE=queue_name, **SAFE)
    try:
        def tables():
            with psycopg.connect(postgres_url) as conn:
                return {t for (t,) in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        found = wait_until(lambda: {"tj_runs", "tl_users"} <= tables() and tables(), timeout=30,
                           message=f"the worker's migrations\n{proc.log()}")
        assert {"tj_events", "tj_wait_keys", "tl_email_outbox"} <= found
        assert proc.alive()
    finally:
        proc.stop()
