"""Health, metrics and the OpenAPI document (Flask test client), and the log redaction."""

from __future__ import annotations

import logging
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tengo_jobs import Jobs, logsafe
from tengo_jobs.config import Settings
from tengo_jobs.runtime import Runtime
from tengo_jobs.testing import JobsTester

from procs import free_port
from webhelpers import EVENT_KEY, PASSWORD, bearer, make_app


def test_healthz_is_200_when_database_and_broker_answer(tmp_path):
    runtime, app = make_app(tmp_path)
    r = app.test_client().get("/healthz")
    assert r.status_code == 200 and r.get_json()["checks"] == {"database": "ok", "broker": "ok"}
    runtime.close()


def test_healthz_is_503_when_the_broker_is_down(tmp_path):
    from dramatiq.brokers.redis import RedisBroker

    from tengo_jobs.clock import FakeClock

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", env="test", functions=())
    broker = RedisBroker(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    runtime = Runtime(settings=settings, broker=broker, clock=FakeClock(0), set_global_broker=False)
    runtime.migrate()
    from tengo_jobs.process.web import create_app

    r = create_app(runtime).test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json()["checks"]["database"] == "ok"
    assert r.get_json()["checks"]["broker"].startswith("error")
    runtime.close()


def _samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_events_runs_and_step_durations_from_the_database(tmp_path):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="m", runtime=runtime)

    @jobs.function("ok-fn", event="go")
    def ok_fn(ctx, step):
        step.run("one", lambda: runtime.clock.advance(30))  # a 30 ms step
        return 1

    @jobs.function("bad-fn", event="go", retries=0)
    def bad_fn(ctx, step):
        raise ValueError("boom")

    client = app.test_client()
    client.post(f"/e/{EVENT_KEY}", json=[{"name": "go"}, {"name": "go"}, {"name": "other"}])
    before = _samples(client.get("/metrics", headers=bearer()).data.decode())
    assert before[("tengo_runs_due", ())] == 4
    JobsTester(runtime).run_until_idle()
    app.extensions.pop("tengo_jobs_metrics")  # drop the 5 s cache
    r = client.get("/metrics", headers=bearer())
    assert r.status_code == 200 and r.mimetype == "text/plain"
    s = _samples(r.data.decode())
    assert s[("tengo_events_received_24h", ())] == 3
    assert s[("tengo_runs_started_24h", (("function", "ok-fn"),))] == 2
    assert s[("tengo_runs_completed_24h", (("function", "ok-fn"),))] == 2
    assert s[("tengo_runs_failed_24h", (("function", "bad-fn"),))] == 2
    assert s[("tengo_runs_due", ())] == 0
    assert s[("tengo_step_duration_seconds_count", (("function", "ok-fn"),))] == 2
    assert s[("tengo_step_duration_seconds_bucket", (("function", "ok-fn"), ("le", "0.025")))] == 0
    assert s[("tengo_step_duration_seconds_bucket", (("function", "ok-fn"), ("le", "0.05")))] == 2
    assert s[("tengo_step_duration_seconds_sum", (("function", "ok-fn"),))] == pytest.approx(0.06)
    assert ("tengo_broker_queue_depth", (("queue", "tengo_jobs"),)) in s
    runtime.close()


def test_openapi_describes_every_route_of_the_app(tmp_path):
    runtime, app = make_app(tmp_path)
    doc = app.test_client().get("/openapi.json", headers=bearer()).get_json()
    assert doc["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routes = set()
    for rule in app.url_map.iter_rules():
        # HTML pages (the dashboard) and application extensions (Tengo Lugar's actions,
        # installed when actors is imported) are not the engine's JSON API
        if rule.endpoint == "static" or not rule.endpoint.startswith("tengo_") or \
                rule.endpoint.startswith(("tengo_dashboard.", "tengo_lugar_")):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method))
    assert routes == described
    runtime.close()


def test_openapi_statuses_are_the_stores_enums(tmp_path):
    from tengo_jobs.store.schema import RunStatus, StepStatus

    runtime, app = make_app(tmp_path)
    doc = app.test_client().get("/openapi.json", headers=bearer()).get_json()
    run_detail = doc["paths"]["/api/runs/{run_id}"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert run_detail["properties"]["status"]["enum"] == [s.value for s in RunStatus]
    step = run_detail["properties"]["steps"]["items"]
    assert step["properties"]["status"]["enum"] == [s.value for s in StepStatus]
    [status_param] = [p for p in doc["paths"]["/api/runs"]["get"]["parameters"]
                      if p["name"] == "status"]
    assert status_param["schema"]["enum"] == [s.value for s in RunStatus]
    runtime.close()


BAD_QUERY_VALUES = {"limit": "0", "cursor": "short", "since": "yesterday", "until": "²",
                    "status": "asleep"}


@pytest.mark.parametrize("path", ["/api/runs", "/api/events"])
def test_every_documented_query_parameter_is_the_one_the_view_checks(tmp_path, path):
    """The document and the view read one declaration: each documented parameter with a
    value its schema refuses is a 400 naming it, and so is one the document does not list."""
    runtime, app = make_app(tmp_path)
    client = app.test_client()
    doc = client.get("/openapi.json", headers=bearer()).get_json()
    documented = {p["name"] for p in doc["paths"][path]["get"]["parameters"]}
    checked = documented & set(BAD_QUERY_VALUES)
    assert {"limit", "cursor", "since", "until"} <= checked
    for name in checked:
        answer = client.get(path, query_string={name: BAD_QUERY_VALUES[name]}, headers=bearer())
        assert answer.status_code == 400 and answer.get_json()["field"] == name, name
    answer = client.get(path, query_string={"undocumented": "x"}, headers=bearer())
    assert answer.status_code == 400 and answer.get_json()["field"] == "undocumented"
    runtime.close()


def test_replay_takes_only_the_documented_body_fields(tmp_path):
    runtime, app = make_app(tmp_path)
    client = app.test_client()
    doc = client.get("/openapi.json", headers=bearer()).get_json()
    body = doc["paths"]["/api/runs/{run_id}/replay"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    assert set(body["properties"]) == {"from_step", "input", "output"}
    assert body["additionalProperties"] is False
    answer = client.post("/api/runs/X/replay", json={"from_step": "a", "inputs": 1},
                         headers=bearer())
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "inputs"
    assert answer.get_json()["error"] == ("unknown field(s) inputs; only from_step, input, "
                                          "output are accepted")
    runtime.close()


def test_unknown_paths_and_methods_get_json_errors(tmp_path):
    runtime, app = make_app(tmp_path)
    client = app.test_client()
    r = client.get("/no/such/path")
    assert r.status_code == 404 and r.get_json()["status"] == 404
    r = client.delete("/api/runs")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    runtime.close()


# -- log redaction ---------------------------------------------------------------------------
def test_redaction_hides_secrets_intake_keys_and_authorization_values():
    text = logsafe.redact('POST /e/abc123?x=1 key=s3cret-value Authorization: Bearer tok-999',
                          secrets=["s3cret-value"])
    assert "abc123" not in text and "s3cret-value" not in text and "tok-999" not in text
    assert text.count(logsafe.REDACTED) == 3


def test_installed_redaction_covers_loggers_configured_later(caplog):
    secret = "planted-secret-4c1d9e"
    logsafe.install([secret])
    logger = logging.getLogger("some.library.configured.later")
    with caplog.at_level(logging.INFO):
        logger.info("connecting with %s", secret)
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            logger.exception("oops")
    assert caplog.records
    assert secret not in caplog.text
    assert logsafe.REDACTED in caplog.text
