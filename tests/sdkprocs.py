"""Helpers for the tests that serve an Inngest app with the official TypeScript SDK
(``tests/js``, inngest 3.32.7 under Node.js) against real tengo_jobs processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from conftest import require_tool, unavailable
from procs import TESTS, Proc, process_env, wait_until

JS = TESTS / "js"
SIGNING_KEY = "signkey-test-" + "ab" * 32


def require_node_sdk() -> str:
    node = require_tool("node", "Node.js is not installed")
    if not (JS / "node_modules" / "inngest" / "package.json").exists():
        unavailable("the inngest SDK is not installed: run (cd tests/js && npm ci)")
    return node


def start_app(node: str, script: str, port: int, log_path: Path, *, server: str,
              signing_key: str | None = None, production: bool = False, **env: str) -> Proc:
    """``node <script> <port>`` pointed at ``server``: in Inngest's dev mode
    (``INNGEST_DEV=<server>``), or ``production`` (cloud mode: ``INNGEST_DEV=0``,
    ``INNGEST_BASE_URL=<server>``, requests and responses signed); waits until it listens."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_")}
    if production:
        child_env.update(INNGEST_DEV="0", INNGEST_BASE_URL=server, NODE_ENV="production")
    else:
        child_env.update(INNGEST_DEV=server)
    if signing_key:
        child_env["INNGEST_SIGNING_KEY"] = signing_key
    child_env.update(env)
    app = Proc([node, script, str(port)], child_env, log_path, cwd=JS)
    try:
        wait_until(lambda: "listening" in app.log() or not app.alive(), timeout=30,
                   message="the SDK app")
        assert app.alive(), app.log()
    except BaseException:
        app.stop()
        raise
    return app


def start_dev(tmp_path: Path, port: int, *extra_args: str, **env: str) -> Proc:
    """``tengo-jobs dev`` on a fresh SQLite database; waits for /healthz."""
    dev = Proc([sys.executable, "-m", "tengo_jobs.cli", "dev", "--port", str(port), *extra_args],
               process_env(**{"DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
                              "TENGO_FUNCTIONS": "web_functions", "TENGO_ENV": "development",
                              "PORT": str(port), **env}),
               tmp_path / "dev.log")
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok,
                   timeout=30, message=f"tengo-jobs dev ({dev.log()})")
    except BaseException:
        dev.stop()
        raise
    return dev


def send(node: str, base: str, key: str, *events: dict) -> list[str]:
    """Send each event with the TypeScript SDK's client; returns their ids."""
    out = subprocess.run([node, "send.mjs", base, key, *map(json.dumps, events)], cwd=JS,
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "INNGEST_DEV": "1"})
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert all("ids" in a for a in answers), answers
    return [i for a in answers for i in a["ids"]]
