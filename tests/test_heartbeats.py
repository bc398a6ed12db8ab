"""Heartbeats: workers and schedulers write a row every TENGO_HEARTBEAT_INTERVAL; /healthz
lists them, ``down`` after three intervals without a beat; a day-old row is pruned."""

from __future__ import annotations

import os
import socket
import sys

from tengo_jobs.clock import Clock
from tengo_jobs.process.web import create_app
from tengo_jobs.testing import make_test_runtime

from procs import ROOT, Proc, process_env, start_worker, wait_until
from webhelpers import PASSWORD, bearer, live_env

DAY = 86_400_000


def test_a_process_is_down_after_three_intervals_without_a_beat_and_forgotten_after_a_day(
        backend):
    heartbeat = backend.make_heartbeat("worker")  # interval: the default 5 s
    assert heartbeat.beat_now()
    [me] = backend.store.heartbeats.processes(backend.now())
    assert (me["kind"], me["host"], me["pid"], me["status"]) == (
        "worker", socket.gethostname(), os.getpid(), "up")
    assert me["threads_busy"] == 0 and me["version"]
    backend.clock.advance(15_000)  # three intervals: still up
    assert backend.store.heartbeats.processes(backend.now())[0]["status"] == "up"
    backend.clock.advance(1)
    assert backend.store.heartbeats.processes(backend.now())[0]["status"] == "down"
    assert heartbeat.beat_now()  # it beats again: up
    assert backend.store.heartbeats.processes(backend.now())[0]["status"] == "up"
    backend.clock.advance(DAY + 1)
    assert backend.timekeeper.prune().heartbeats == 1
    assert backend.store.heartbeats.processes(backend.now()) == []


def test_worker_and_scheduler_processes_appear_in_healthz_and_a_killed_worker_goes_down(
        tmp_path, postgres_url, redis_url, queue_name):
    env = live_env(postgres_url, redis_url, queue_name, TENGO_HEARTBEAT_INTERVAL="300ms")
    runtime = make_test_runtime(postgres_url, clock=Clock(), dashboard_password=PASSWORD)
    procs = []
    try:
        worker = start_worker("web_functions", tmp_path / "worker.log", threads=2, **env)
        procs.append(worker)
        scheduler = Proc([sys.executable, str(ROOT / "scheduler.py")], process_env(**env),
                         tmp_path / "scheduler.log")
        procs.append(scheduler)
        client = create_app(runtime).test_client()

        def processes():
            body = client.get("/healthz", headers=bearer()).get_json()
            return {p["kind"]: p for p in body["processes"]}

        def both_up():
            found = processes()
            return found if {k for k, p in found.items() if p["status"] == "up"} == {
                "worker", "scheduler"} else None

        found = wait_until(both_up, timeout=60, interval=0.2,
                           message=f"both heartbeats\n{worker.log()}\n{scheduler.log()}")
        assert found["scheduler"]["pid"] == scheduler.pid
        assert found["worker"]["host"] == socket.gethostname()
        worker.kill()  # SIGKILL, the whole group: no goodbye
        wait_until(lambda: processes()["worker"]["status"] == "down", timeout=10,
                   interval=0.1, message="the killed worker reported down")
        assert processes()["scheduler"]["status"] == "up"
    finally:
        for proc in procs:
            proc.stop()
        runtime.close()
