"""The dashboard pages: runs, run detail with steps, events with send-test-event, functions."""

from __future__ import annotations

import base64

import pytest

from tengo_jobs import Jobs
from tengo_jobs.config import Settings
from tengo_jobs.runtime import Runtime, set_runtime
from tengo_jobs.process.web import create_app
from webhelpers import form_token


@pytest.fixture
def client(tj_runtime, jobs_tester):
    jobs = Jobs("dash-test", runtime=tj_runtime)

    @jobs.function("dash-greet", event="dash.greet")
    def greet(ctx, step):
        name = step.run("compose", lambda: ctx.event.data["name"])
        step.sleep("pause", "5s")
        return {"greeting": f"Hola {name}"}

    @jobs.function("dash-broken", event="dash.broken", retries=0)
    def broken(ctx, step):
        step.run("explode", lambda: 1 / 0)

    app = create_app(tj_runtime)
    return app.test_client()


def test_runs_page_lists_runs_and_links_to_their_steps(client, jobs_tester):
    jobs_tester.send({"name": "dash.greet", "data": {"name": "Ana"}})
    jobs_tester.send({"name": "dash.broken", "data": {}})
    runs = {r.function_id: r for r in jobs_tester.run_until_idle()}

    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert runs["dash-greet"].id in html and runs["dash-broken"].id in html
    assert "ZeroDivisionError" in html or "division by zero" in html

    failed_only = client.get("/?status=failed").get_data(as_text=True)
    assert runs["dash-broken"].id in failed_only and runs["dash-greet"].id not in failed_only

    detail = client.get(f"/runs/{runs['dash-greet'].id}").get_data(as_text=True)
    for key in ("compose", "pause"):
        assert key in detail
    assert "Hola Ana" in detail


def test_unknown_run_is_a_404_page(client):
    assert client.get("/runs/nope").status_code == 404


def test_send_test_event_starts_a_run_and_shows_the_event(client, jobs_tester):
    answer = client.post("/events/send", data={"name": "dash.greet", "data": '{"name": "Bo"}',
                                               "csrf_token": form_token(client)})
    assert answer.status_code == 302
    event_page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "dash-greet" in event_page
    [run] = [r for r in jobs_tester.runs("dash-greet")]
    assert run.event_id in answer.headers["Location"]


def test_send_test_event_with_bad_json_names_the_problem_and_stores_nothing(client, jobs_tester):
    answer = client.post("/events/send", data={"name": "dash.greet", "data": "{not json",
                                               "csrf_token": form_token(client)})
    assert answer.status_code == 400
    assert "Expecting property name" in answer.get_data(as_text=True)
    assert jobs_tester.runs() == []


def test_functions_page_shows_triggers_and_counts(client, jobs_tester):
    jobs_tester.send({"name": "dash.broken", "data": {}})
    jobs_tester.run_until_idle()
    html = client.get("/functions").get_data(as_text=True)
    assert "dash.greet" in html and "dash-broken" in html and "failed 1" in html


def test_dashboard_needs_the_password_when_one_is_set(tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'd.db'}", env="development",
                        dashboard_password="s3cret-dash", functions=())
    runtime = Runtime(settings=settings)
    runtime.migrate()
    try:
        client = create_app(runtime).test_client()
        refused = client.get("/")  # a browser is sent to the login form (tests/test_web_login.py)
        assert refused.status_code == 302 and "/login" in refused.headers["Location"]
        basic = base64.b64encode(b"admin:s3cret-dash").decode()
        assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    finally:
        runtime.close()
        set_runtime(None)
