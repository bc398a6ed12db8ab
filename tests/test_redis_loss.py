"""Losing every Redis message loses no run: a throwaway redis-server is killed and restarted
without persistence while runs are sleeping and queued; the scheduler's timer poller and
sweeper re-enqueue from the database and every run completes."""

from __future__ import annotations

import sys

import pytest
import redis
import requests

from conftest import require_tool
from procs import ROOT, Proc, free_port, process_env, start_worker, wait_until
from webhelpers import EVENT_KEY, api_get, live_env, start_gunicorn, wait_for_runs

pytestmark = pytest.mark.integration
FUNCS = "sched_funcs.e2e_funcs"
N_SLEEPING = 15
N_QUEUED = 15


def start_redis(port: int, log_path) -> Proc:
    server = require_tool("redis-server")
    proc = Proc([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], process_env(), log_path)
    client = redis.Redis(port=port)
    wait_until(lambda: client.ping(), timeout=10, message=f"redis-server on {port}")
    client.close()
    return proc


def statuses(base: str, event_ids: list[str]) -> list[str]:
    found = []
    for event_id in event_ids:
        runs = api_get(base, f"/api/events/{event_id}")["runs"]
        found.append(runs[0]["status"] if runs else "none")
    return found


def test_runs_survive_a_redis_restart_without_persistence(tmp_path, postgres_url, queue_name):
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = live_env(postgres_url, redis_url, queue_name, TENGO_FUNCTIONS=FUNCS,
                   TENGO_REDELIVER_AFTER="1s", TENGO_SWEEP_INTERVAL="500ms")
    procs: list[Proc] = []
    server = start_redis(port, tmp_path / "redis1.log")
    try:
        web, base = start_gunicorn(tmp_path / "web.log", env)
        procs.append(web)
        scheduler = Proc([sys.executable, str(ROOT / "scheduler.py")], process_env(**env),
                         tmp_path / "scheduler.log")
        procs.append(scheduler)
        worker = start_worker(FUNCS, tmp_path / "worker1.log", threads=4, **env)
        procs.append(worker)

        def send(events):
            r = requests.post(f"{base}/e/{EVENT_KEY}", json=events, timeout=10)
            assert r.status_code == 200, r.text
            return r.json()["ids"]

        nappers = send([{"name": "e2e/nap", "data": {"i": i}} for i in range(N_SLEEPING)])
        wait_for_runs(base, nappers, status="sleeping", timeout=30)
        worker.stop()  # nobody consumes: the next runs stay queued in Redis
        quick = send([{"name": "e2e/quick", "data": {"i": i}} for i in range(N_QUEUED)])
        assert set(statuses(base, quick)) == {"queued"}
        client = redis.Redis(port=port)
        assert client.dbsize() > 0  # the queued runs' messages are in Redis

        server.kill()  # SIGKILL, and a new server with nothing in it
        server.popen.wait(10)
        server.stop()
        server = start_redis(port, tmp_path / "redis2.log")
        assert client.dbsize() == 0

        worker = start_worker(FUNCS, tmp_path / "worker2.log", threads=4, **env)
        procs.append(worker)
        everything = nappers + quick
        wait_for_runs(base, everything, timeout=60)  # every run, after the Redis restart
        assert "lost wake-up(s) again" in scheduler.log()
        assert scheduler.alive(), scheduler.log()
        client.close()
    finally:
        for proc in procs:
            proc.stop()
        server.stop()
