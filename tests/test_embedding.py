"""The engine inside a team's own app: ``jobs.init_app`` on a Flask app (and the app-factory
pattern), ``jobs.asgi_app()`` mounted in FastAPI, ``jobs.launch()`` in a real process."""

from __future__ import annotations

import re
import signal
import sys

import pytest
import requests
from flask import Flask, render_template_string
from flask.json.provider import DefaultJSONProvider

from procs import Proc, free_port, process_env, wait_until
from tengo_jobs import Jobs
from tengo_jobs.core.registry import Registry
from tengo_jobs.errors import ConfigurationError
from tengo_jobs.runtime import get_runtime, set_runtime
from tengo_jobs.testing import make_test_runtime
from webhelpers import EVENT_KEY, PASSWORD, bearer

CSP = "Content-Security-Policy"


def team_app() -> Flask:
    """A team's app with routes, error handling and a template global of its own."""
    app = Flask("team")

    @app.get("/")
    def home():
        return "team home"

    @app.post("/orders")  # a form post with no CSRF token: the team's business, not ours
    def orders():
        return {"ordered": True}, 201

    @app.errorhandler(404)
    def not_found(exc):
        return "team 404", 404

    @app.get("/token")  # a template global of the team's own (Flask-WTF's has this name)
    def token():
        return render_template_string("{{ csrf_token() }}")

    app.jinja_env.globals["csrf_token"] = lambda: "team-token"
    return app


@pytest.fixture
def runtime(backend_url):
    """On SQLite, then on PostgreSQL."""
    previous = get_runtime()
    rt = make_test_runtime(backend_url, event_keys=(EVENT_KEY,),
                           dashboard_password=PASSWORD)
    yield rt
    rt.close()
    set_runtime(previous)


@pytest.fixture
def embedded(runtime):
    jobs = Jobs("team", runtime=runtime)  # the default registry (conftest isolates it)

    @jobs.function("greet", event="demo.greet")
    def greet(ctx, step):
        return step.run("upper", lambda: ctx.event.data["name"].upper())

    app = team_app()
    jobs.init_app(app, url_prefix="/jobs")
    return jobs, app


def test_team_routes_keep_their_behaviour(embedded):
    _, app = embedded
    client = app.test_client()
    home = client.get("/")
    assert home.get_data(as_text=True) == "team home" and CSP not in home.headers
    posted = client.post("/orders", data={"item": "x"}, headers={"Origin": "https://elsewhere"})
    assert posted.status_code == 201
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.get_data(as_text=True)) == (404, "team 404")
    assert client.get("/token").get_data(as_text=True) == "team-token"
    assert type(app.json) is DefaultJSONProvider


def test_production_check_applies_at_init_app(tmp_path):
    previous = get_runtime()
    rt = make_test_runtime(f"sqlite:///{tmp_path / 'prod.db'}", env="production")
    try:
        with pytest.raises(ConfigurationError, match="DATABASE_URL"):
            Jobs("prod", runtime=rt).init_app(team_app())
    finally:
        rt.close()
        set_runtime(previous)


def test_event_api_rest_api_and_dashboard_under_the_prefix(embedded):
    jobs, app = embedded
    client = app.test_client()
    sent = client.post(f"/jobs/e/{EVENT_KEY}", json={"name": "demo.greet", "data": {"name": "ana"}})
    assert sent.status_code == 200 and sent.headers[CSP]
    [event_id] = sent.get_json()["ids"]
    assert client.post("/jobs/e/wrong-key", json={"name": "demo.greet"}).status_code == 401
    also = client.post("/jobs/api/events", json={"name": "demo.greet", "data": {"name": "bo"}},
                       headers={"Authorization": f"Bearer {EVENT_KEY}"})
    assert also.status_code == 200
    event = client.get(f"/jobs/api/events/{event_id}", headers=bearer()).get_json()
    [run] = event["runs"]
    assert run["function_id"] == "greet"
    # the engine's JSON errors on its own routes
    gone = client.get("/jobs/api/runs/no-such-run", headers=bearer())
    assert gone.status_code == 404 and "error" in gone.get_json()
    assert client.get("/jobs/api/runs", headers=bearer(), query_string={"bogus": 1}).status_code == 400
    # the dashboard builds its links under the prefix
    page = client.get("/jobs/", headers=bearer())
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers[CSP]
    assert f'href="/jobs/runs/{run["id"]}"' in html
    assert 'href="/jobs/static/tj/dashboard.css"' in html
    assert not re.search(r'(href|action|src)="/(?!jobs/)', html), "a link that ignores the prefix"
    assert client.get("/jobs/static/tj/dashboard.css", headers=bearer()).status_code == 200
    # the send-test-event form carries its token and posts under the prefix
    events_page = client.get("/jobs/events", headers=bearer()).get_data(as_text=True)
    assert 'action="/jobs/events/send"' in events_page
    token = re.search(r'name="csrf_token" value="([^"]+)"', events_page).group(1)
    form = client.post("/jobs/events/send", headers=bearer(), data={
        "csrf_token": token, "name": "demo.greet", "data": '{"name": "cy"}'})
    assert form.status_code == 302 and form.headers["Location"].startswith("/jobs/events/")
    assert client.post("/jobs/events/send", headers=bearer(), data={
        "name": "demo.greet", "data": "{}"}).status_code == 403
    spec = client.get("/jobs/openapi.json", headers=bearer()).get_json()
    assert spec["servers"] == [{"url": "/jobs"}] and "/e/{event_key}" in spec["paths"]
    assert client.get("/jobs/healthz").status_code == 200


def test_the_run_executes_and_its_result_is_read_back(embedded, runtime):
    jobs, app = embedded
    [event_id] = app.test_client().post(
        f"/jobs/e/{EVENT_KEY}", json={"name": "demo.greet", "data": {"name": "ana"}}).get_json()["ids"]
    from tengo_jobs.testing import JobsTester

    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    assert jobs.get_run(run["id"]).output == "ANA"


def test_one_jobs_per_app_and_a_clear_prefix(embedded, runtime):
    jobs, app = embedded
    with pytest.raises(ConfigurationError, match="one Jobs per app"):
        jobs.init_app(app)
    with pytest.raises(ConfigurationError, match="url_prefix"):
        Jobs("other", runtime=runtime, registry=Registry()).init_app(team_app(), url_prefix="jobs")


def test_app_factory_reads_settings_from_app_config(tmp_path):
    previous = get_runtime()
    jobs = Jobs("factory", registry=Registry())  # declared at import, before any app
    try:
        def create_app(db_name):
            app = team_app()
            app.config.update(DATABASE_URL=f"sqlite:///{tmp_path / db_name}",
                              TENGO_ENV="development", TENGO_EVENT_KEYS=["k-1", "k-2"])
            jobs.init_app(app, url_prefix="/engine")
            return app

        app = create_app("factory.db")
        settings = jobs.runtime.settings
        assert settings.database_url.endswith("factory.db") and settings.event_keys == ("k-1", "k-2")
        assert (tmp_path / "factory.db").exists()  # migrated at init_app
        client = app.test_client()
        assert client.post("/engine/e/k-1", json={"name": "x.y"}).status_code == 200
        assert client.get("/").get_data(as_text=True) == "team home"
        # the same settings on a second app (tests creating one app each): the same engine
        again = create_app("factory.db")
        assert again.extensions["tengo_jobs"] is app.extensions["tengo_jobs"]
        with pytest.raises(ConfigurationError, match="other settings"):
            create_app("elsewhere.db")
        bad = team_app()
        bad.config["TENGO_EVENT_KEYS"] = object()
        with pytest.raises(ConfigurationError, match="TENGO_EVENT_KEYS"):
            jobs.init_app(bad)
    finally:
        jobs.runtime.close()
        set_runtime(previous)


def test_fastapi_mount(embedded, runtime):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    jobs, _ = embedded
    api = FastAPI()

    @api.get("/hello")
    def hello():
        return {"team": True}

    api.mount("/jobs", jobs.asgi_app())
    with TestClient(api) as client:
        assert client.get("/hello").json() == {"team": True}
        sent = client.post(f"/jobs/e/{EVENT_KEY}", json={"name": "demo.greet", "data": {"name": "a"}})
        assert sent.status_code == 200 and len(sent.json()["ids"]) == 1
        page = client.get("/jobs/", headers=bearer())
        assert page.status_code == 200
        assert 'href="/jobs/static/tj/dashboard.css"' in page.text
        runs = client.get("/jobs/api/runs", headers=bearer()).json()["data"]
        assert [r["function_id"] for r in runs] == ["greet"]


def _serve_team_app(tmp_path, backend_url, args: list[str], **env: str) -> tuple[Proc, str]:
    """Start ``args`` (a server on ``{port}``) with the team's app; no Redis: one process."""
    port = free_port()
    full = process_env(EMBED_DATABASE_URL=backend_url, TENGO_ENV="development",
                       TENGO_SWEEP_INTERVAL="1s", **env)
    full.pop("REDIS_URL", None)
    full.pop("TENGO_BROKER_URL", None)
    proc = Proc([a.format(port=port) for a in args], full, tmp_path / "team.log")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(f"{base}/", timeout=2).ok, timeout=30,
               message=f"the team's app on {base}\n{proc.log()}")
    return proc, base


def _check_team_routes_and_a_run_under_jobs(base: str, home: str, function_id: str) -> None:
    """The team's own routes answer; an event posted under /jobs/e/<key> runs to completion
    and reads back through the REST API and the dashboard under /jobs."""
    assert home in requests.get(f"{base}/", timeout=5).text
    assert requests.post(f"{base}/orders", timeout=5).status_code == 201
    assert requests.get(f"{base}/no-such-page", timeout=5).status_code == 404
    sent = requests.post(f"{base}/jobs/e/team-key-0123456789", timeout=5,
                         json={"name": "demo.greet", "data": {"name": "ana"}})
    assert sent.status_code == 200, sent.text
    [event_id] = sent.json()["ids"]

    def completed():
        runs = requests.get(f"{base}/jobs/api/events/{event_id}", timeout=5).json()["runs"]
        return runs and runs[0]["status"] == "completed" and runs[0]

    run = wait_until(completed, timeout=30, message="the run to complete")
    assert run["function_id"] == function_id
    detail = requests.get(f"{base}/jobs/api/runs/{run['id']}", timeout=5).json()
    assert detail["output"] == {"hello": "ANA"}
    page = requests.get(f"{base}/jobs/runs/{run['id']}", timeout=5)
    assert page.status_code == 200 and function_id in page.text


def _stop_cleanly(proc: Proc, exit_codes: tuple[int, ...] = (0,)) -> None:
    proc.kill(signal.SIGTERM)
    proc.popen.wait(20)
    proc.stop()
    assert proc.popen.returncode in exit_codes, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


@pytest.mark.timeout(120)
def test_team_app_as_a_process_runs_events_with_launch(tmp_path, backend_url):
    """gunicorn serving the team's Flask app, with jobs.launch() in it: no Redis, one process."""
    proc, base = _serve_team_app(
        tmp_path, backend_url,
        [sys.executable, "-m", "gunicorn", "embed_app:app", "-b", "127.0.0.1:{port}", "-w", "1",
         "--threads", "4", "--graceful-timeout", "5", "--error-logfile", "-"])
    try:
        _check_team_routes_and_a_run_under_jobs(base, "the team's home page", "greet")
    finally:
        _stop_cleanly(proc)


@pytest.mark.timeout(120)
def test_fastapi_app_served_by_uvicorn_runs_events_with_launch(tmp_path, backend_url):
    """Real uvicorn serving a FastAPI app that mounts jobs.asgi_app() at /jobs and launches
    the engine in its lifespan; an async handler runs on it."""
    pytest.importorskip("uvicorn", reason="uvicorn is in the test extra")
    proc, base = _serve_team_app(
        tmp_path, backend_url,
        [sys.executable, "-m", "uvicorn", "embed_asgi_app:app", "--host", "127.0.0.1",
         "--port", "{port}", "--timeout-graceful-shutdown", "5"],
        DATABASE_URL=backend_url, TENGO_EVENT_KEYS="team-key-0123456789")
    try:
        _check_team_routes_and_a_run_under_jobs(base, "the team's home page", "greet-async")
    finally:
        # uvicorn shuts down (the lifespan's jobs.shutdown()), then re-raises the SIGTERM it
        # caught, so its exit status is the signal's
        _stop_cleanly(proc, exit_codes=(0, -signal.SIGTERM))
    assert "Application shutdown complete." in proc.log(), proc.log()
