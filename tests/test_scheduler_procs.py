"""The Procfile's processes as separate OS processes on real Redis + PostgreSQL:
``gunicorn web:app``, ``dramatiq`` and two ``python scheduler.py``.

- an event with ``ts`` two seconds ahead starts its run after two seconds, not before;
- ``step.sleep("s", "2s")`` resumes after the sleep;
- a cron function runs once per tick while two schedulers run (the test hook
  ``--cron-second */2`` gives a tick every two seconds through the same code path).
"""

from __future__ import annotations

import sys
import time

import pytest
import requests

from procs import ROOT, Proc, process_env, start_worker, wait_until
from webhelpers import EVENT_KEY, api_get, live_env, start_gunicorn, wait_for_run

pytestmark = pytest.mark.integration
FUNCS = "sched_funcs.e2e_funcs"


def start_scheduler(log_path, env: dict, *extra: str) -> Proc:
    return Proc([sys.executable, str(ROOT / "scheduler.py"), *extra], process_env(**env), log_path)


def send(base: str, event: dict) -> str:
    r = requests.post(f"{base}/e/{EVENT_KEY}", json=event, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["ids"][0]


@pytest.fixture
def stack(tmp_path, postgres_url, redis_url, queue_name):
    """web, worker and two schedulers, in production mode as the Procfile starts them."""
    env = live_env(postgres_url, redis_url, queue_name, TENGO_FUNCTIONS=FUNCS)
    procs: list[Proc] = []
    try:
        web, base = start_gunicorn(tmp_path / "web.log", env)
        procs.append(web)
        procs.append(start_worker(FUNCS, tmp_path / "worker.log", threads=4, **env))
        for i in (1, 2):
            procs.append(start_scheduler(tmp_path / f"scheduler{i}.log", env, "--cron-second", "*/2"))
        for proc in procs[2:]:
            wait_until(lambda p=proc: "scheduler started" in p.log() or not p.alive(), timeout=30,
                       message="the scheduler to start")
            assert proc.alive(), proc.log()
        yield base, procs
    finally:
        for proc in procs:
            proc.stop()


def test_processes_run_future_events_sleeps_and_cron_ticks_once(stack):
    base, procs = stack
    due = int(time.time() * 1000) + 2_000
    delayed_event = send(base, {"name": "e2e/delayed", "data": {}, "ts": due})
    nap_event = send(base, {"name": "e2e/nap", "data": {}})

    # Not before: the run waits queued until its time.
    early = api_get(base, f"/api/events/{delayed_event}")["runs"]
    assert early and early[0]["status"] == "queued" and early[0]["started_at"] is None

    delayed = wait_for_run(base, delayed_event, timeout=30)
    step_started = delayed["output"]
    assert step_started >= due, f"started {due - step_started} ms early"
    assert step_started - due < 3_000, f"woke {step_started - due} ms late"

    nap = wait_for_run(base, nap_event, timeout=30)
    assert nap["output"]["after"] - nap["output"]["before"] >= 2_000
    assert [s["key"] for s in nap["steps"]] == ["before", "s", "after"]

    # Cron: every 2 s with both schedulers running; each tick exactly one run.
    def cron_runs():
        runs = sorted(api_get(base, "/api/runs", function="e2e-tick", limit=100)["data"],
                      key=lambda r: (r["created_at"], r["id"]))
        done = []
        for r in runs:  # the oldest runs, up to the first not yet completed
            if r["status"] != "completed":
                break
            done.append(r)
        return done if len(done) >= 4 else None

    runs = wait_until(cron_runs, timeout=30, interval=0.2, message="four cron ticks")
    ticks = sorted(r["output"] for r in runs)
    assert len(ticks) == len(set(ticks)), f"a tick ran twice: {ticks}"
    assert all(t % 2_000 == 0 for t in ticks)
    assert all(b - a == 2_000 for a, b in zip(ticks, ticks[1:])), f"a tick was missed: {ticks}"
    assert all(p.alive() for p in procs), "a process died"
