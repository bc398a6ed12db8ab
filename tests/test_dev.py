"""``tengo-jobs dev`` as a real subprocess: it answers HTTP within seconds on a fresh directory
with no other service, runs a sleeping function end to end, stops cleanly on Ctrl-C, and after
a restart resumes the runs that were sleeping or in flight."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

import pytest
import requests

from procs import Proc, free_port, process_env, wait_until

FUNCS = "sched_funcs.dev_funcs"


def _dev_command() -> list[str]:
    script = shutil.which("tengo-jobs", path=os.path.dirname(sys.executable)) or shutil.which(
        "tengo-jobs")
    return [script, "dev"] if script else [sys.executable, "-m", "tengo_jobs.cli", "dev"]


def start_dev(tmp_path, port: int, log_name: str) -> Proc:
    env = process_env(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}",
                      TENGO_FUNCTIONS=FUNCS)
    for name in ("TENGO_ENV", "REDIS_URL"):  # dev's own defaults: development, in-process broker
        env.pop(name, None)
    return Proc(_dev_command(), env, tmp_path / log_name, cwd=tmp_path)


def wait_healthy(proc: Proc, base: str, timeout: float = 20) -> float:
    started = time.monotonic()

    def healthy():
        if not proc.alive():
            raise AssertionError(f"tengo-jobs dev exited:\n{proc.log()}")
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200

    wait_until(healthy, timeout=timeout, message=f"tengo-jobs dev on {base}")
    return time.monotonic() - started


def send(base: str, name: str, data: dict) -> str:
    r = requests.post(f"{base}/e/dev-key", json={"name": name, "data": data}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["ids"][0]


def run_of(base: str, event_id: str) -> dict | None:
    event = requests.get(f"{base}/api/events/{event_id}", timeout=5).json()
    if not event.get("runs"):
        return None
    return requests.get(f"{base}/api/runs/{event['runs'][0]['id']}", timeout=5).json()


def wait_status(base: str, event_id: str, status: str, timeout: float = 30) -> dict:
    return wait_until(lambda: (lambda r: r if r and r["status"] == status else None)(
        run_of(base, event_id)), timeout=timeout, interval=0.1, message=f"a run {status}")


def interrupt(proc: Proc, timeout: float = 20) -> int:
    """Ctrl-C: SIGINT, then the exit code."""
    proc.kill(signal.SIGINT)
    return proc.popen.wait(timeout)


@pytest.fixture
def dev_procs():
    procs: list[Proc] = []
    yield procs
    for proc in procs:
        proc.stop()


def test_dev_answers_http_within_seconds_and_runs_a_sleeping_function(tmp_path, dev_procs):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_dev(tmp_path, port, "dev.log")
    dev_procs.append(proc)
    took = wait_healthy(proc, base)
    assert took < 15, f"dev took {took:.1f}s to answer"
    assert f"ready at http://localhost:{port}" in proc.log()

    event_id = send(base, "dev/nap", {})
    run = wait_status(base, event_id, "completed", timeout=30)
    assert run["output"]["slept_ms"] >= 2_000
    assert [s["key"] for s in run["steps"]] == ["before", "nap", "after"]
    assert (tmp_path / "dev.db").exists()  # the embedded default: SQLite in the working directory

    assert interrupt(proc) == 0
    assert "stopped" in proc.log()
    assert "Traceback" not in proc.log()


def test_dev_restart_resumes_sleeping_and_in_flight_runs(tmp_path, dev_procs):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    marker = tmp_path / "release-the-blocker"
    first = start_dev(tmp_path, port, "dev1.log")
    dev_procs.append(first)
    wait_healthy(first, base)
    nap_event = send(base, "dev/nap", {})
    block_event = send(base, "dev/block", {"path": str(marker)})
    wait_status(base, nap_event, "sleeping", timeout=20)
    wait_status(base, block_event, "running", timeout=20)

    assert interrupt(first) == 0  # Ctrl-C with a step in flight still exits cleanly
    marker.write_text("go")

    second = start_dev(tmp_path, port, "dev2.log")
    dev_procs.append(second)
    wait_healthy(second, base)
    blocker = wait_status(base, block_event, "completed", timeout=20)
    assert blocker["output"] == "released"
    nap = wait_status(base, nap_event, "completed", timeout=20)
    before = next(s for s in nap["steps"] if s["key"] == "before")
    assert before["attempts"] == 1  # checkpointed before the restart: not run again
    assert nap["output"]["slept_ms"] >= 2_000
    assert "resumed" in second.log()
    assert interrupt(second) == 0


def test_dev_in_an_empty_folder_runs_tengo_lugars_welcome_sequence(tmp_path, dev_procs):
    # The README's first command with nothing else: the default functions (actors), the
    # embedded default database, the app's own tables created at boot.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(PORT=str(port))
    for name in ("TENGO_ENV", "REDIS_URL", "DATABASE_URL", "TENGO_FUNCTIONS"):
        env.pop(name, None)
    proc = Proc(_dev_command(), env, tmp_path / "dev.log", cwd=tmp_path)
    dev_procs.append(proc)
    wait_healthy(proc, base)

    event_id = send(base, "user.registered",
                    {"userId": "u-1", "email": "ana@example.com", "name": "Ana"})

    def welcomed():
        run = run_of(base, event_id)
        steps = {s["key"]: s["status"] for s in (run or {}).get("steps", [])}
        return run if steps.get("send-welcome-email") == "completed" else None

    run = wait_until(welcomed, timeout=30, interval=0.2, message="the welcome email step")
    assert run["function_id"].endswith("welcome-sequence")
    assert run["status"] in ("running", "sleeping", "queued")  # now waiting out its delay
    assert "no such table" not in proc.log()
