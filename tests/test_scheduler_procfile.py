"""``honcho start`` with the repository's Procfile and a .env like ``.env.example`` brings up
web, worker and scheduler against Redis + PostgreSQL in production mode; an event sent over
HTTP runs the real ``actors`` function ``hello-world`` (a step, a 1 s sleep, a step) to
completion; SIGTERM to honcho stops every process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from procs import ROOT, Proc, free_port, process_env, wait_until
from webhelpers import wait_for_run

pytestmark = pytest.mark.integration
EVENT_KEY = "procfile-event-key-3c9d"
PASSWORD = "procfile-dashboard-pw-81f0"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie waiting for its parent counts as gone
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":
                return False
    return True


def test_honcho_start_runs_the_procfile_against_redis_and_postgres(tmp_path, postgres_url,
                                                                   redis_url, queue_name):
    example = (ROOT / ".env.example").read_text()
    assert "TENGO_ENV=production" in example
    port = free_port()
    env_file = tmp_path / "test.env"
    env_file.write_text("\n".join([
        "TENGO_ENV=production", f"DATABASE_URL={postgres_url}", f"REDIS_URL={redis_url}",
        f"TENGO_EVENT_KEYS={EVENT_KEY}", f"TENGO_DASHBOARD_PASSWORD={PASSWORD}",
        "TENGO_SIGNING_KEY=procfile-signing-key-5511", "TENGO_FUNCTIONS=actors",
        f"TENGO_QUEUE={queue_name}", f"PORT={port}", ""]))
    env = process_env()
    for name in ("TENGO_ENV", "DATABASE_URL", "REDIS_URL", "PORT"):
        env.pop(name, None)  # everything comes from the .env file, as in production
    honcho = Proc([sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "-e",
                   str(env_file), "start"], env, tmp_path / "honcho.log", cwd=ROOT)
    children: list[int] = []
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).status_code == 200,
                   timeout=40, message=f"the web process on {base}")
        wait_until(lambda: "scheduler started" in honcho.log(), timeout=30,
                   message="the scheduler process")
        children = _children(honcho.pid)
        assert len(children) == 3, honcho.log()

        r = requests.post(f"{base}/e/{EVENT_KEY}", timeout=10,
                          json={"name": "demo/hello", "data": {"name": "Procfile"}})
        assert r.status_code == 200, r.text
        [event_id] = r.json()["ids"]
        auth = {"Authorization": f"Bearer {PASSWORD}"}
        detail = wait_for_run(base, event_id, timeout=40, headers=auth)
        assert detail["output"] == {"greeting": "Hello, Procfile!"}
        assert [s["key"] for s in detail["steps"]] == ["compose", "pause", "greet"]

        honcho.kill(signal.SIGTERM)
        assert honcho.popen.wait(30) is not None
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in children if _alive(p)], "honcho left processes running"
        assert PASSWORD not in honcho.log() and EVENT_KEY not in honcho.log()
    finally:
        for pid in children:  # only the processes this test started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        honcho.stop()
