"""The REST API (Flask test client): events, runs, cancel, replay, functions, auth."""

from __future__ import annotations

import pytest

from tengo_jobs import Jobs
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step, TimerRow as Timer
from tengo_jobs.testing import JobsTester

from webhelpers import EVENT_KEY, PASSWORD, basic, bearer, make_app

CALLS: list[str] = []


@pytest.fixture
def web(tmp_path):
    CALLS.clear()
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="api-test", runtime=runtime)

    @jobs.function("three-steps", event="order.placed")
    def three_steps(ctx, step):
        def record(name):
            CALLS.append(name)
            return f"{name}-done"
        a = step.run("a", record, "a")
        b = step.run("b", record, "b")
        c = step.run("c", record, "c")
        return [a, b, c]

    @jobs.function("sleeper", event="order.placed")
    def sleeper(ctx, step):
        step.sleep("nap", "1h")
        return "woke"

    @jobs.function("nightly", cron="TZ=America/Argentina/Buenos_Aires 0 9 * * *")
    def nightly(ctx, step):
        return None

    yield runtime, app.test_client(), JobsTester(runtime)
    runtime.close()


def _send(client, payload):
    r = client.post(f"/e/{EVENT_KEY}", json=payload)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["ids"]


def _run_of(function_id):
    return Run.get(Run.function_id == function_id)


# -- auth ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/events", "/api/runs", "/api/functions", "/metrics",
                                  "/api/runs/x", "/api/events/x"])
def test_rest_api_needs_the_dashboard_password(web, path):
    runtime, client, _ = web
    assert client.get(path).status_code == 401
    assert client.get(path, headers=bearer("wrong")).status_code == 401
    assert client.get(path, headers=basic("wrong")).status_code == 401
    r = client.get(path, headers={"Authorization": "Basic !!!notbase64"})
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    assert client.get(path, headers=bearer()).status_code in (200, 404)
    assert client.get(path, headers=basic()).status_code in (200, 404)


def test_control_endpoints_need_the_dashboard_password(web):
    runtime, client, _ = web
    _send(client, {"name": "order.placed"})
    run_id = _run_of("sleeper").id
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 401
    assert client.post(f"/api/runs/{run_id}/replay").status_code == 401
    assert Run.get_by_id(run_id).status.value == "queued"


def test_event_key_is_not_a_dashboard_password(web):
    runtime, client, _ = web
    assert client.get("/api/runs", headers=bearer(EVENT_KEY)).status_code == 401


def test_development_without_password_is_open(tmp_path):
    runtime, app = make_app(tmp_path, env="development", dashboard_password=None)
    assert app.test_client().get("/api/runs").status_code == 200
    runtime.close()


def test_production_refuses_to_start_without_keys_or_password(tmp_path):
    from tengo_jobs.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="TENGO_EVENT_KEYS"):
        make_app(tmp_path, env="production", event_keys=())
    with pytest.raises(ConfigurationError, match="TENGO_DASHBOARD_PASSWORD"):
        make_app(tmp_path, env="production", dashboard_password=None)


# -- events ----------------------------------------------------------------------------------
def test_event_detail_lists_the_runs_it_started(web):
    runtime, client, _ = web
    [event_id] = _send(client, {"name": "order.placed", "data": {"order": 7}})
    body = client.get(f"/api/events/{event_id}", headers=bearer()).get_json()
    assert body["name"] == "order.placed" and body["data"] == {"order": 7}
    assert sorted(r["function_id"] for r in body["runs"]) == ["sleeper", "three-steps"]
    assert client.get("/api/events/NOPE", headers=bearer()).status_code == 404


def test_events_list_filters_by_name_and_paginates_with_a_cursor(web):
    runtime, client, _ = web
    for i in range(5):
        runtime.clock.advance(1000)
        _send(client, {"name": "order.placed" if i % 2 == 0 else "other", "data": {"i": i}})
    page1 = client.get("/api/events?limit=2", headers=bearer()).get_json()
    assert [e["data"]["i"] for e in page1["data"]] == [4, 3]
    page2 = client.get(f"/api/events?limit=2&cursor={page1['next_cursor']}", headers=bearer()).get_json()
    page3 = client.get(f"/api/events?limit=2&cursor={page2['next_cursor']}", headers=bearer()).get_json()
    assert [e["data"]["i"] for e in page2["data"] + page3["data"]] == [2, 1, 0]
    assert page3["next_cursor"] is None
    named = client.get("/api/events?name=other", headers=bearer()).get_json()
    assert [e["data"]["i"] for e in named["data"]] == [3, 1]


# -- runs ------------------------------------------------------------------------------------
def test_run_detail_has_steps_with_status_attempts_timings_and_output(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle()
    run = client.get(f"/api/runs/{_run_of('three-steps').id}", headers=bearer()).get_json()
    assert run["status"] == "completed" and run["output"] == ["a-done", "b-done", "c-done"]
    assert run["error"] is None and run["created_at"].endswith("Z") and run["ended_at"].endswith("Z")
    assert [s["key"] for s in run["steps"]] == ["a", "b", "c"]
    first = run["steps"][0]
    assert first["status"] == "completed" and first["attempts"] == 1 and first["output"] == "a-done"
    assert first["started_at"].endswith("Z") and first["ended_at"].endswith("Z")
    assert client.get("/api/runs/NOPE", headers=bearer()).status_code == 404


def test_runs_filter_by_status_function_and_time(web):
    runtime, client, tester = web
    t0 = runtime.now()
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)  # three-steps completes, sleeper sleeps
    runtime.clock.advance(60_000)
    _send(client, {"name": "order.placed"})
    get = lambda q: client.get(f"/api/runs?{q}", headers=bearer()).get_json()["data"]  # noqa: E731
    assert {r["function_id"] for r in get("status=completed")} == {"three-steps"}
    assert {r["function_id"] for r in get("status=sleeping")} == {"sleeper"}
    assert len(get("function=sleeper")) == 2
    assert len(get(f"since={t0 + 30_000}")) == 2
    assert len(get("until=2026-01-01T00:00:30Z")) == 2  # the clock starts at 2026-01-01T00:00:00Z
    assert len(get("since=2026-01-01T00:00:30%2B00:00")) == 2


@pytest.mark.parametrize("query, field", [("status=done", "status"), ("status=", "status"), ("limit=0", "limit"), ("limit=", "limit"),
                                          ("limit=abc", "limit"), ("limit=1000", "limit"),
                                          ("since=yesterday", "since"), ("cursor=x", "cursor")])
def test_bad_run_filters_are_400_naming_the_parameter(web, query, field):
    runtime, client, _ = web
    r = client.get(f"/api/runs?{query}", headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == field


# -- cancel ----------------------------------------------------------------------------------
def test_cancel_a_sleeping_run_deletes_its_timer_and_it_never_resumes(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    run_id = _run_of("sleeper").id
    assert Timer.select().where(Timer.run_id == run_id).count() == 1
    r = client.post(f"/api/runs/{run_id}/cancel", headers=bearer())
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    assert r.get_json()["ended_at"] is not None
    assert Timer.select().where(Timer.run_id == run_id).count() == 0
    tester.run_until_idle()  # moves time past the sleep
    assert Run.get_by_id(run_id).status.value == "cancelled"
    # cancelling again is a no-op; a completed run cannot be cancelled
    assert client.post(f"/api/runs/{run_id}/cancel", headers=bearer()).status_code == 200
    done = _run_of("three-steps").id
    r = client.post(f"/api/runs/{done}/cancel", headers=bearer())
    assert r.status_code == 409 and "completed" in r.get_json()["error"]
    assert client.post("/api/runs/NOPE/cancel", headers=bearer()).status_code == 404


def test_cancel_stops_an_executing_run_at_its_next_checkpoint(tmp_path):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="api-test", runtime=runtime)
    ran = []

    @jobs.function("long", event="go")
    def long(ctx, step):
        step.run("first", lambda: ran.append("first"))
        # cancelled from outside while this step executes
        step.run("second", lambda: (ran.append("second"), runtime.control.cancel(ctx.run_id)))
        step.run("third", lambda: ran.append("third"))

    runtime_ids = jobs.send({"name": "go"})
    [run] = Run.select().where(Run.event_id == runtime_ids[0])
    assert runtime.executor.execute(run.id) == "lease-lost"
    assert ran == ["first", "second"]
    assert Run.get_by_id(run.id).status.value == "cancelled"
    assert [s.key for s in Step.select().where(Step.run_id == run.id)] == ["first"]
    runtime.close()


# -- replay ----------------------------------------------------------------------------------
def test_replay_from_the_start_runs_every_step_again_as_a_new_run(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    original = _run_of("three-steps").id
    CALLS.clear()
    r = client.post(f"/api/runs/{original}/replay", headers=bearer())
    assert r.status_code == 201
    new = r.get_json()
    assert new["id"] != original and new["status"] == "queued" and new["steps"] == []
    tester.run_until_idle(advance_time=False)
    assert CALLS == ["a", "b", "c"]
    assert Run.get_by_id(new["id"]).status.value == "completed"


def test_replay_from_a_step_reuses_the_earlier_outputs(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    original = _run_of("three-steps").id
    CALLS.clear()
    r = client.post(f"/api/runs/{original}/replay", json={"from_step": "b"}, headers=basic())
    assert r.status_code == 201
    new = r.get_json()
    assert [s["key"] for s in new["steps"]] == ["a"]
    tester.run_until_idle(advance_time=False)
    assert CALLS == ["b", "c"]  # "a" replayed from its stored output
    detail = client.get(f"/api/runs/{new['id']}", headers=bearer()).get_json()
    assert detail["output"] == ["a-done", "b-done", "c-done"]


@pytest.mark.parametrize("body, field", [({"from_step": "zzz"}, "from_step"),
                                         ({"from_step": 3}, "from_step"),
                                         ({"step": "a"}, "step"), ([1], "body")])
def test_replay_with_bad_input_is_400(web, body, field):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    run_id = _run_of("three-steps").id
    r = client.post(f"/api/runs/{run_id}/replay", json=body, headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == field
    assert client.post("/api/runs/NOPE/replay", headers=bearer()).status_code == 404
    assert Run.select().count() == 2


# -- functions -------------------------------------------------------------------------------
def test_functions_list_triggers_next_cron_counts_and_percentiles(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    fns = {f["id"]: f for f in client.get("/api/functions", headers=bearer()).get_json()["data"]}
    assert set(fns) >= {"three-steps", "sleeper", "nightly"}
    assert fns["three-steps"]["triggers"] == [{"event": "order.placed"}]
    assert fns["three-steps"]["counts"]["completed"] == 1
    assert fns["sleeper"]["counts"]["sleeping"] == 1
    assert fns["three-steps"]["duration_ms"]["sample"] == 1
    assert fns["three-steps"]["duration_ms"]["p50"] == 0  # the fake clock did not move
    # 09:00 in Buenos Aires (UTC-3) after 2026-01-01T00:00Z is 12:00Z the same day
    assert fns["nightly"]["next_cron_fire"] == "2026-01-01T12:00:00.000Z"
    assert fns["sleeper"]["next_cron_fire"] is None


def test_nul_bytes_in_parameters_are_400(web):
    runtime, client, _ = web
    r = client.get("/api/runs?function=a%00b", headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == "function"
    r = client.get("/api/runs/a%00b", headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == "run_id"


def test_a_repeated_query_parameter_is_400(web):
    runtime, client, _ = web
    r = client.get("/api/runs?limit=5&limit=6", headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == "limit"


# -- rerun from a step with new input, bulk cancel and bulk replay -----------------------------
def test_replay_from_a_step_with_new_input_links_to_the_original(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    original = _run_of("three-steps").id
    CALLS.clear()
    r = client.post(f"/api/runs/{original}/replay", json={"from_step": "b", "input": ["B"]},
                    headers=bearer())
    assert r.status_code == 201, r.get_json()
    new = r.get_json()
    assert new["replay_of"] == original
    assert new["replay_note"] == {"from_step": "b", "changed": "input", "input": ["B"]}
    tester.run_until_idle(advance_time=False)
    assert CALLS == ["B", "c"]
    detail = client.get(f"/api/runs/{new['id']}", headers=bearer()).get_json()
    assert detail["output"] == ["a-done", "B-done", "c-done"] and detail["replays"] == []
    assert client.get(f"/api/runs/{original}", headers=bearer()).get_json()["replays"] == [
        new["id"]]
    # a supplied result: the step does not run; null is a result
    CALLS.clear()
    r = client.post(f"/api/runs/{original}/replay", json={"from_step": "c", "output": None},
                    headers=bearer())
    assert r.status_code == 201 and r.get_json()["replay_note"]["changed"] == "output"
    tester.run_until_idle(advance_time=False)
    detail = client.get(f"/api/runs/{r.get_json()['id']}", headers=bearer()).get_json()
    assert CALLS == [] and detail["output"] == ["a-done", "b-done", None]


@pytest.mark.parametrize("body, field", [({"input": [1]}, "from_step"),
                                         ({"from_step": "b", "input": 5}, "input"),
                                         ({"from_step": "b", "input": [], "output": 1}, "output")])
def test_replay_with_bad_input_or_output_is_400(web, body, field):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    r = client.post(f"/api/runs/{_run_of('three-steps').id}/replay", json=body, headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_bulk_cancel_by_condition_and_time_answers_how_many(web):
    runtime, client, tester = web
    t0 = runtime.clock.now()
    for i in range(3):
        _send(client, {"name": "order.placed", "data": {"region": "ar" if i else "uy"}})
    tester.run_until_idle(advance_time=False)  # the three sleepers sleep
    r = client.post("/api/cancellations", headers=bearer(), json={
        "function_id": "sleeper", "started_after": t0, "if": 'event.data.region == "ar"'})
    assert r.status_code == 200 and r.get_json() == {"cancelled": 2}
    statuses = sorted(r.status.value for r in Run.select().where(Run.function_id == "sleeper"))
    assert statuses == ["cancelled", "cancelled", "sleeping"]
    r = client.post("/api/cancellations", headers=basic(), json={
        "function_id": "sleeper", "started_before": "2999-01-01T00:00:00Z"})
    assert r.get_json() == {"cancelled": 1}


@pytest.mark.parametrize("body, field", [
    ({"function_id": "sleeper"}, "all"),
    ({}, "function_id"),
    ({"function_id": "sleeper", "if": "event.data.x =="}, "if"),
    ({"function_id": "sleeper", "if": 3}, "if"),
    ({"function_id": "sleeper", "started_after": "yesterday"}, "started_after"),
    ({"function_id": "sleeper", "started_before": True}, "started_before"),
    ({"function_id": "sleeper", "all": "yes"}, "all"),
    ({"function_id": "sleeper", "all": True, "status": "failed"}, "status"),
])
def test_bulk_cancel_with_bad_input_is_400_naming_the_field(web, body, field):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    r = client.post("/api/cancellations", json=body, headers=bearer())
    assert r.status_code == 400 and r.get_json()["field"] == field, r.get_json()
    assert {r.status.value for r in Run.select()} == {"queued"}


def test_bulk_replay_of_completed_runs_links_each_to_its_original(web):
    runtime, client, tester = web
    _send(client, {"name": "order.placed"})
    _send(client, {"name": "order.placed"})
    tester.run_until_idle(advance_time=False)
    originals = sorted(r.id for r in Run.select().where(Run.function_id == "three-steps"))
    r = client.post("/api/replays", headers=bearer(),
                    json={"function_id": "three-steps", "status": ["completed"]})
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    assert answer["replayed"] == 2
    assert sorted(Run.get_by_id(i).replay_of for i in answer["run_ids"]) == originals
    for body, field in [({"function_id": "three-steps"}, "all"),
                        ({"function_id": "three-steps", "status": "sleeping"}, "status"),
                        ({"function_id": "three-steps", "if": "true"}, "if")]:
        bad = client.post("/api/replays", json=body, headers=bearer())
        assert bad.status_code == 400 and bad.get_json()["field"] == field
    doc = client.get("/openapi.json", headers=bearer()).get_json()
    assert doc["paths"]["/api/replays"]["post"]["responses"]["200"]["content"][
        "application/json"]["schema"]["required"] == ["replayed", "run_ids"]
    assert "if" in doc["paths"]["/api/cancellations"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
