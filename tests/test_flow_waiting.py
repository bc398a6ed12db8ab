"""Why a run has not started yet, as users see it: ``waiting_reason`` in ``GET
/api/runs/<id>`` (declared in /openapi.json), ``tengo-jobs runs show``, and the capacity
gauges of ``/metrics`` — read while a run holds the slot (from inside its step)."""

from __future__ import annotations

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tengo_jobs import Jobs, RunStatus, cli
from tengo_jobs.durations import ms_to_iso
from tengo_jobs.testing import JobsTester

from webhelpers import EVENT_KEY, bearer, make_app


def _others_tried(backend, holder):
    """Inside the holder's step: every other runnable run is tried, as by other workers."""
    for run_id in backend.store.timers.runnable(backend.clock.now()):
        if run_id != holder:
            backend.executor.execute(run_id)


def test_a_run_waiting_for_a_keyed_slot_says_which_key_and_how_full(backend, jobs, tester):
    seen = {}

    @jobs.function("per-user", event="go", retries=0,
                   concurrency={"limit": 1, "key": "event.data.user"})
    def per_user(ctx, step):
        def work():
            if ctx.event.data["n"] == 0:
                _others_tried(backend, ctx.run_id)
                seen.update({r.id: backend.store.queries.get_run(r.id, now=backend.clock.now())
                             for r in backend.store.queries.runs("per-user")})
            return 1
        return step.run("work", work)

    for n, user in enumerate(["a", "a", "a", "b"]):
        tester.send({"name": "go", "data": {"n": n, "user": user}})
        tester.clock.advance(1)
    first = backend.store.timers.runnable(backend.clock.now())[0]
    backend.executor.execute(first)
    reasons = [seen[r]["waiting_reason"] for r in sorted(seen)]
    assert reasons[0] is None  # the holder, running
    for why in reasons[1:3]:
        assert why["kind"] == "concurrency" and why["scope"] == "fn"
        assert why["key"] == "event.data.user=a"
        assert (why["limit"], why["in_use"], why["waiting"]) == (1, 1, 2)
    assert reasons[3] is None  # user b had its own slot and completed
    assert [r.status for r in tester.run_until_idle()] == [RunStatus.COMPLETED] * 4
    assert all(backend.store.queries.get_run(r.id)["waiting_reason"] is None
               for r in backend.store.queries.runs())


def test_a_throttled_run_says_until_when(backend, jobs, tester):
    @jobs.function("paced", event="go", retries=0, throttle={"limit": 1, "period": "10s"})
    def paced(ctx, step):
        return ctx.event.data["n"]

    t0 = tester.clock.now()
    tester.send([{"name": "go", "data": {"n": n}} for n in range(4)])
    runs = backend.store.queries.runs("paced")
    reasons = [backend.store.queries.get_run(r.id, now=t0)["waiting_reason"] for r in runs]
    assert sorted(reasons, key=lambda r: r and r["until"] or "") == [
        # limit + burst (2) start at once, then one every 10 s
        None, None, {"kind": "throttle", "until": ms_to_iso(t0 + 10_000)},
        {"kind": "throttle", "until": ms_to_iso(t0 + 20_000)}]
    # a future-dated event of a function without throttle is not "throttled"
    @jobs.function("later", event="later")
    def later(ctx, step):
        return 1

    tester.send({"name": "later", "data": {}, "ts": t0 + 60_000})
    [run] = backend.store.queries.runs("later")
    assert backend.store.queries.get_run(run.id, now=t0)["waiting_reason"] is None
    tester.run_until_idle(advance_time=True)
    assert all(backend.store.queries.get_run(r.id)["waiting_reason"] is None
               for r in backend.store.queries.runs())


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_api_cli_openapi_and_metrics_show_the_waiting(tmp_path, monkeypatch):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="w", runtime=runtime)
    client = app.test_client()
    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    seen = {}

    @jobs.function("limited", event="go", retries=0, concurrency=1)
    def limited(ctx, step):
        def work():
            if ctx.event.data["n"] == 0:
                _others_tried(runtime, ctx.run_id)
                ids = [r.id for r in runtime.store.queries.runs("limited") if r.id != ctx.run_id]
                seen["api"] = [client.get(f"/api/runs/{i}", headers=bearer()).get_json()
                               for i in ids]
                seen["cli"] = CliRunner().invoke(cli.main, ["runs", "show", ids[0]])
                app.extensions.pop("tengo_jobs_metrics", None)
                seen["metrics"] = client.get("/metrics", headers=bearer()).data.decode()
            return 1
        return step.run("work", work)

    for n in range(3):
        assert client.post(f"/e/{EVENT_KEY}", json={"name": "go", "data": {"n": n}}).status_code == 200
        runtime.clock.advance(1)
    runtime.executor.execute(runtime.store.timers.runnable(runtime.clock.now())[0])

    for body in seen["api"]:
        assert body["status"] == "queued"
        assert body["waiting_reason"]["kind"] == "concurrency"
        assert body["waiting_reason"]["key"] is None
        assert (body["waiting_reason"]["limit"], body["waiting_reason"]["in_use"],
                body["waiting_reason"]["waiting"]) == (1, 1, 2)
    assert seen["cli"].exit_code == 0, seen["cli"].output
    assert "waiting for concurrency (function-wide, scope fn): 1/1 slots in use, 2 waiting" \
        in seen["cli"].output
    s = _samples(seen["metrics"])
    assert s[("tengo_runs_waiting_for_capacity", (("function", "limited"),))] == 2
    assert s[("tengo_concurrency_slots_in_use", (("function", "limited"), ("limit", "function")))] == 1

    spec = client.get("/openapi.json", headers=bearer()).get_json()
    detail = spec["paths"]["/api/runs/{run_id}"]["get"]["responses"]["200"]
    schema = detail["content"]["application/json"]["schema"]
    assert "waiting_reason" in schema["required"]
    assert schema["properties"]["waiting_reason"]["properties"]["kind"]["enum"] == [
        "concurrency", "throttle"]

    JobsTester(runtime).run_until_idle()
    app.extensions.pop("tengo_jobs_metrics", None)
    s = _samples(client.get("/metrics", headers=bearer()).data.decode())
    assert s[("tengo_runs_waiting_for_capacity", (("function", "limited"),))] == 0
    assert s[("tengo_concurrency_slots_in_use", (("function", "limited"), ("limit", "function")))] == 0
    runtime.close()
