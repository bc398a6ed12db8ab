"""Why an event started no run, as users see it: ``GET /api/events/<id>``, ``tengo-jobs
events show``, ``GET /api/functions`` (the settings) and ``/metrics`` (skips by reason)."""

from __future__ import annotations

from click.testing import CliRunner

from tengo_jobs import Jobs, cli
from tengo_jobs.testing import JobsTester

from webhelpers import EVENT_KEY, bearer, make_app


def _send(client, payload):
    r = client.post(f"/e/{EVENT_KEY}", json=payload)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["ids"][0]


def test_skipped_and_folded_events_are_explained_by_api_cli_and_metrics(tmp_path, monkeypatch):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="flow", runtime=runtime)

    @jobs.function("once", event="pay", idempotency="event.data.id")
    def once(ctx, step):
        return None

    @jobs.function("grouped", event="pay", batch_events={"max_size": 2, "timeout": "5s"})
    def grouped(ctx, step):
        return len(ctx.events)

    client = app.test_client()
    first = _send(client, {"name": "pay", "data": {"id": 1}})
    second = _send(client, {"name": "pay", "data": {"id": 1}})
    JobsTester(runtime).run_until_idle(advance_time=False)

    body = client.get(f"/api/events/{second}", headers=bearer()).get_json()
    batch_run = client.get(f"/api/events/{first}", headers=bearer()).get_json()["runs"]
    [grouped_run] = [r["id"] for r in batch_run if r["function_id"] == "grouped"]
    assert body["runs"] == []
    assert sorted((f["function_id"], f["status"], f["reason"], f["run_id"])
                  for f in body["flow_control"]) == [
        ("grouped", "batched", None, grouped_run), ("once", "skipped", "idempotency", None)]

    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    shown = CliRunner().invoke(cli.main, ["events", "show", second])
    assert shown.exit_code == 0, shown.output
    assert "skipped (idempotency)" in shown.output
    assert f"batched into run {grouped_run}" in shown.output
    missing = CliRunner().invoke(cli.main, ["events", "show", "NOPE"])
    assert missing.exit_code == 1

    functions = {f["id"]: f for f in client.get("/api/functions", headers=bearer()).get_json()["data"]}
    assert functions["once"]["flow_control"] == {"idempotency": "event.data.id"}
    assert functions["grouped"]["flow_control"]["batch_events"]["max_size"] == 2

    metrics = client.get("/metrics", headers=bearer()).data.decode()
    assert 'tengo_runs_skipped_24h{function="once",reason="idempotency"} 1.0' in metrics
    assert 'tengo_runs_skipped_24h{function="grouped",reason="batched"} 1.0' in metrics
    runtime.close()
