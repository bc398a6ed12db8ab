"""A ``tengo-jobs dev`` server and Inngest SDK apps as real processes, for the SDK tests
(``test_sdk_seed_ts.py``, ``test_sdk_steps_ts.py``, ``test_inngest_py_serve.py``).

The server runs on SQLite with short retry backoffs; each app is started, then synced with a
``PUT`` to its serve endpoint (its SDK posts ``/fn/register`` to us), as with Inngest's dev
server. Events are sent with the official TypeScript client (``tests/js/send.mjs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import requests

import sdkprocs
from conftest import require_tool, unavailable
from procs import TESTS, Proc, free_port, process_env, wait_until
from webhelpers import EVENT_KEY, PASSWORD, api_get

JS = TESTS / "js"
SIGNING_KEY = "signkey-test-" + "cd" * 32


def require_node_sdk(*packages: str) -> str:
    """``node``, with inngest 3.32.7 (and ``packages``) installed in tests/js; skips (or fails
    under CI=true) when they are missing."""
    node = require_tool("node", "Node.js is not installed")
    for package in ("inngest", *packages):
        if not (JS / "node_modules" / package / "package.json").exists():
            unavailable(f"the npm package {package!r} is not installed: run (cd tests/js && npm ci)")
    version = json.loads((JS / "node_modules" / "inngest" / "package.json").read_text())["version"]
    assert version == "3.32.7", f"tests/js has inngest {version}, expected 3.32.7"
    return node


class DevServer:
    """``tengo-jobs dev`` on a SQLite file in ``tmp``."""

    def __init__(self, tmp: Path, *, signing_key: str | None = SIGNING_KEY, **env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{tmp / 'dev.db'}"
        settings = dict(DATABASE_URL=self.database_url, TENGO_FUNCTIONS="web_functions",
                        TENGO_ENV="development", TENGO_DASHBOARD_PASSWORD=PASSWORD,
                        TENGO_RETRY_BASE="100ms", TENGO_RETRY_MAX="200ms",
                        TENGO_POLL_INTERVAL="100ms", PORT=str(self.port))
        if signing_key:
            settings["TENGO_SIGNING_KEY"] = signing_key
        settings.update(env)
        self.proc = Proc([sys.executable, "-m", "tengo_jobs.cli", "dev", "--port", str(self.port)],
                         process_env(**settings), tmp / "dev.log")
        wait_until(self._healthy, timeout=30, message=f"tengo-jobs dev ({self.proc.log_path})")

    def _healthy(self) -> bool:
        if not self.proc.alive():
            raise AssertionError(f"tengo-jobs dev exited:\n{self.proc.log()}")
        return requests.get(f"{self.base}/healthz", timeout=2).ok

    def get(self, path: str, **params):
        return api_get(self.base, path, **params)

    def stop(self) -> None:
        self.proc.stop()


class App:
    """An SDK app process serving ``/api/inngest`` on a free port (and the recorder)."""

    def __init__(self, args: list[str], env: dict, log_path: Path, *, cwd: Path = JS,
                 ready: str = "listening"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve_url = f"{self.url}/api/inngest"
        self.proc = Proc([a.replace("{port}", str(self.port)) for a in args], env, log_path, cwd=cwd)
        wait_until(self._ready(ready), timeout=30, message=f"the SDK app ({log_path})")

    def _ready(self, marker: str):
        def ready():
            if not self.proc.alive():
                raise AssertionError(f"the SDK app exited:\n{self.proc.log()}")
            return marker in self.proc.log()
        return ready

    def sync(self) -> dict:
        """``PUT`` the serve endpoint: the SDK registers its functions with the server."""
        answer = requests.put(self.serve_url, timeout=30)
        assert answer.status_code == 200, (answer.status_code, answer.text, self.proc.log())
        return answer.json()

    def recorded(self) -> list[dict]:
        return requests.get(f"{self.url}/recorded", timeout=5).json()

    def stop(self) -> None:
        self.proc.stop()


def node_app(node: str, server: DevServer, tmp: Path, script: str, *args: str, name: str = "app",
             **env: str) -> App:
    environ = {**os.environ, "INNGEST_DEV": server.base, "INNGEST_SIGNING_KEY": SIGNING_KEY, **env}
    return App([node, script, "{port}", *args], environ, tmp / f"{name}.log")


def send(node: str, base: str, *events: dict) -> list[str]:
    """Send each event with the official TypeScript client (:func:`sdkprocs.send`, with the
    dev server's event key); the event ids, one per event."""
    return sdkprocs.send(node, base, EVENT_KEY, *events)


def runs_of(server: DevServer, event_id: str) -> list[dict]:
    return server.get(f"/api/events/{event_id}")["runs"]


def wait_run(server: DevServer, event_id: str, *, function_id: str | None = None,
             status: str = "completed", timeout: float = 45) -> dict:
    """The detail (``/api/runs/<id>``, with steps) of the event's run (of ``function_id``) once
    it is in ``status``."""
    def done():
        runs = [r for r in runs_of(server, event_id)
                if function_id is None or r["function_id"] == function_id]
        if runs and runs[0]["status"] in (status, "completed", "failed", "cancelled"):
            return runs[0]
        return None

    try:
        run = wait_until(done, timeout=timeout, interval=0.1,
                         message=f"the run of {event_id} ({function_id}) to be {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- dev log tail ---\n{server.proc.log()[-3000:]}") from None
    detail = server.get(f"/api/runs/{run['id']}")
    assert detail["status"] == status, (f"run {run['id']} of {run['function_id']} is "
                                        f"{detail['status']}, expected {status}: {detail['error']} "
                                        f"{detail['steps']}")
    return detail


def steps_by_name(run: dict) -> dict[str, dict]:
    return {s["name"]: s for s in run["steps"]}


@contextlib.contextmanager
def stopping(*things):
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                thing.stop()
