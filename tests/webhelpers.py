"""Shared set-up for the web tests: a runtime with known credentials and a test client."""

from __future__ import annotations

import base64

from tengo_jobs.testing import make_test_runtime
from tengo_jobs.process.web import create_app

EVENT_KEY = "test-event-key-5f2a9c"
OTHER_KEY = "second-event-key-77b1"
PASSWORD = "dashboard-pass-8d41e0"


def make_app(tmp_path, **settings):
    defaults = dict(event_keys=(EVENT_KEY, OTHER_KEY), dashboard_password=PASSWORD)
    defaults.update(settings)
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'web.db'}", **defaults)
    return runtime, create_app(runtime)


def bearer(token: str = PASSWORD) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(password: str = PASSWORD, user: str = "admin") -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def form_token(client, path: str = "/events", headers: dict | None = None) -> str:
    """The CSRF token of the form on a dashboard page, read as a browser would."""
    import re

    html = client.get(path, headers=headers or {}).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no csrf_token field on {path}"
    return match.group(1)


# -- live servers (gunicorn + a dramatiq worker as real OS processes) ------------------------
import contextlib  # noqa: E402
import sys  # noqa: E402

import requests  # noqa: E402

from procs import Proc, free_port, process_env, start_worker, wait_until  # noqa: E402


def live_env(postgres_url: str, redis_url: str, queue_name: str, **extra) -> dict:
    env = dict(DATABASE_URL=postgres_url, REDIS_URL=redis_url, TENGO_QUEUE=queue_name,
               TENGO_FUNCTIONS="web_functions", TENGO_ENV="production",
               TENGO_EVENT_KEYS=f"{EVENT_KEY},{OTHER_KEY}", TENGO_DASHBOARD_PASSWORD=PASSWORD)
    env.update(extra)
    return env


def start_gunicorn(log_path, env: dict, *, workers: int = 1, port: int | None = None) -> tuple[Proc, str]:
    """``gunicorn web:app`` with its access log on stdout; returns the process and base URL."""
    port = port or free_port()
    args = [sys.executable, "-m", "gunicorn", "web:app", "-b", f"127.0.0.1:{port}",
            "-w", str(workers), "--access-logfile", "-", "--error-logfile", "-",
            "--log-level", "info", "--graceful-timeout", "5"]
    proc = Proc(args, process_env(**env), log_path)
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if not proc.alive():
            raise AssertionError(f"gunicorn exited:\n{proc.log()}")
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200

    try:
        wait_until(healthy, timeout=30, message=f"gunicorn on {base}")
    except BaseException:
        proc.stop()
        raise
    return proc, base


@contextlib.contextmanager
def live_stack(tmp_path, postgres_url, redis_url, queue_name, *, worker: bool = True, **extra):
    """gunicorn (and a dramatiq worker) on a fresh database and queue; stopped afterwards."""
    env = live_env(postgres_url, redis_url, queue_name, **extra)
    procs = []
    try:
        web, base = start_gunicorn(tmp_path / "gunicorn.log", env)
        procs.append(web)
        if worker:
            procs.append(start_worker("web_functions", tmp_path / "worker.log", threads=2, **env))
        yield base, procs
    finally:
        for proc in procs:
            proc.stop()


def api_get(base: str, path: str, *, headers: dict | None = None, **params):
    r = requests.get(f"{base}{path}", params=params, headers=headers or bearer(), timeout=10)
    r.raise_for_status()
    return r.json()


def wait_for_runs(base: str, event_ids: list[str], *, status: str = "completed",
                  timeout: float = 60, headers: dict | None = None) -> list[dict]:
    """Poll the REST API until every event has a run in ``status``; returns those runs."""
    def done():
        runs = []
        for event_id in event_ids:
            event = api_get(base, f"/api/events/{event_id}", headers=headers)
            if not event["runs"] or any(r["status"] != status for r in event["runs"]):
                return None
            runs.extend(event["runs"])
        return runs

    return wait_until(done, timeout=timeout, interval=0.1, message=f"runs to be {status}")


def wait_for_run(base: str, event_id: str, *, status: str = "completed", timeout: float = 60,
                 headers: dict | None = None) -> dict:
    """Wait until the event's run is in ``status``; returns its detail (``/api/runs/<id>``:
    output, error and steps)."""
    [run] = wait_for_runs(base, [event_id], status=status, timeout=timeout, headers=headers)
    return api_get(base, f"/api/runs/{run['id']}", headers=headers)
