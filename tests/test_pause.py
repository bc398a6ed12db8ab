"""Pausing and resuming a function: runs are created but not executed while it is paused,
timers still fire, the sweeper leaves them alone, cron ticks are skipped; on resume the due
runs are enqueued oldest first. The state is a row, so it holds across processes and restarts.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tengo_jobs import Jobs, cli
from tengo_jobs.errors import FunctionNotFoundError
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step
from tengo_jobs.store.schema import CronStateRow as CronState
from tengo_jobs.testing import JobsTester, make_test_runtime

from webhelpers import EVENT_KEY, bearer, make_app

HOUR = 3_600_000
T0 = 1_767_225_600_000  # the test runtime's FakeClock start


def _status(run_id: str) -> str:
    return Run.get_by_id(run_id).status.value


def _steps(run_id: str) -> dict[str, str]:
    return {s.key: s.status.value for s in Step.select().where(Step.run_id == run_id)}


@pytest.fixture
def fns(jobs):
    @jobs.function("held", event="order.placed")
    def held(ctx, step):
        step.run("first", lambda: 1)
        step.sleep("nap", ctx.event.data.get("nap", "1h"))
        return step.run("second", lambda: 2)

    @jobs.function("free", event="order.placed")
    def free(ctx, step):
        return step.run("only", lambda: "ok")

    return held, free


def test_a_paused_function_keeps_its_runs_but_executes_none(backend, fns, tester):
    state = backend.control.pause("held")
    assert state["paused"] is True and state["paused_at"] is not None
    tester.send({"name": "order.placed", "data": {}})
    tester.run_until_idle()
    held = Run.get(Run.function_id == "held")
    assert held.status.value == "queued" and _steps(held.id) == {}  # created, nothing ran
    assert _status(Run.get(Run.function_id == "free").id) == "completed"  # others unaffected
    # a wake-up for it is consumed without executing: the run stays as it was
    assert backend.executor.execute(held.id) == "skipped"
    assert _status(held.id) == "queued" and Run.get_by_id(held.id).lease_owner is None

    resumed = backend.control.resume("held")
    assert resumed["paused"] is False and resumed["resumed_runs"] == 1
    tester.run_until_idle()
    assert _status(held.id) == "completed"
    assert _steps(held.id) == {"first": "completed", "nap": "completed", "second": "completed"}


def test_sleeping_runs_that_come_due_wait_and_resume_oldest_due_first(backend, fns, tester):
    tester.send([{"name": "order.placed", "data": {"nap": "2h"}},
                 {"name": "order.placed", "data": {"nap": "1h"}}])
    tester.run_until_idle(advance_time=False)
    naps = {r.id: r.wake_at for r in Run.select().where(Run.function_id == "held")}
    assert {_status(r) for r in naps} == {"sleeping"}
    backend.control.pause("held")
    backend.clock.set(T0 + 3 * HOUR)
    tester.run_until_idle()  # the timers fire; nothing of "held" executes
    for run_id in naps:
        assert _status(run_id) == "queued"
        assert _steps(run_id)["nap"] == "completed" and "second" not in _steps(run_id)
    # the sweeper does not send them again while paused
    assert backend.store.timers.unsent(backend.clock.now(), backend.clock.now() + 1, 100) == []

    enqueued = []
    backend.control.enqueue = enqueued.extend
    assert backend.control.resume("held")["resumed_runs"] == 2
    assert enqueued == sorted(naps, key=naps.get)  # the 1h nap came due first
    tester.run_until_idle()
    assert {_status(r) for r in naps} == {"completed"}


def test_pause_and_resume_are_idempotent_and_name_unknown_functions(backend, fns):
    first = backend.control.pause("held", now=T0 + 5)
    again = backend.control.pause("held", now=T0 + 999)
    assert again["paused_at"] == first["paused_at"]  # the first pause is kept
    assert backend.control.resume("held")["resumed_runs"] == 0
    assert backend.control.resume("held") == {**backend.control.pause_state("held"),
                                              "resumed_runs": 0}
    with pytest.raises(FunctionNotFoundError, match="no function 'nope'"):
        backend.control.pause("nope")
    with pytest.raises(FunctionNotFoundError):
        backend.control.resume("nope")


def test_cron_ticks_of_a_paused_function_are_skipped_and_not_run_on_resume(backend, jobs):
    fn = jobs.function("hourly", cron="0 * * * *")(lambda ctx, step: "tick")
    backend.timekeeper.ensure_cron_state([fn.id], now=T0)
    backend.control.pause("hourly")
    assert backend.timekeeper.fire_cron(fn, now=T0 + HOUR + 10) == []
    assert backend.timekeeper.fire_cron(fn, now=T0 + 2 * HOUR + 10) == []
    assert Run.select().where(Run.function_id == "hourly").count() == 0
    [listed] = [f for f in backend.control.functions() if f["id"] == "hourly"]
    assert listed["paused"] is True and listed["skipped_cron_ticks"] == 2
    assert listed["last_skipped_tick"] == "2026-01-01T02:00:00.000Z"
    assert CronState.get_by_id("hourly").last_tick_ms == T0 + 2 * HOUR

    backend.control.resume("hourly")
    assert backend.timekeeper.fire_cron(fn, now=T0 + 2 * HOUR + 20) == []  # no backfill
    [run_id] = backend.timekeeper.fire_cron(fn, now=T0 + 3 * HOUR + 10)
    assert Run.get_by_id(run_id).unique_key == f"cron:hourly:{T0 + 3 * HOUR}"
    [listed] = [f for f in backend.control.functions() if f["id"] == "hourly"]
    assert listed["paused"] is False and listed["paused_at"] is None


def test_the_pause_is_a_row_every_process_sees(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_test_runtime(url)
    Jobs(app_id="a", runtime=first).function("held", event="go")(lambda ctx, step: 1)
    first.control.pause("held")
    first.send({"name": "go"})
    first.close()
    second = make_test_runtime(url)  # another process, after a restart
    try:
        Jobs(app_id="a", runtime=second).function("held", event="go")(lambda ctx, step: 1)
        assert second.control.pause_state("held")["paused"] is True
        [run] = Run.select()
        assert second.executor.execute(run.id) == "skipped"
        second.control.resume("held")
        JobsTester(second).run_until_idle()
        assert _status(run.id) == "completed"
    finally:
        second.close()


# -- the HTTP API and the CLI -------------------------------------------------------------------
@pytest.fixture
def web(tmp_path):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="api-test", runtime=runtime)
    jobs.function("held", event="order.placed")(lambda ctx, step: step.run("s", lambda: 1))
    yield runtime, app.test_client()
    runtime.close()


def test_pause_and_resume_over_http(web):
    runtime, client = web
    assert client.post("/api/functions/held/pause").status_code == 401
    r = client.post("/api/functions/held/pause", headers=bearer())
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["paused"] is True and r.get_json()["id"] == "held"
    listed = {f["id"]: f for f in client.get("/api/functions", headers=bearer()).get_json()["data"]}["held"]
    assert listed["paused"] is True and listed["paused_at"] == r.get_json()["paused_at"]

    assert client.post(f"/e/{EVENT_KEY}", json={"name": "order.placed"}).status_code == 200
    JobsTester(runtime).run_until_idle()
    [run] = Run.select()
    assert run.status.value == "queued"
    r = client.post("/api/functions/held/resume", headers=bearer())
    assert r.status_code == 200 and r.get_json()["resumed_runs"] == 1
    assert r.get_json()["paused"] is False
    JobsTester(runtime).run_until_idle()
    assert _status(run.id) == "completed"

    missing = client.post("/api/functions/nope/pause", headers=bearer())
    assert missing.status_code == 404 and "no function 'nope'" in missing.get_json()["error"]
    paths = client.get("/openapi.json", headers=bearer()).get_json()["paths"]
    assert paths["/api/functions/{function_id}/pause"]["post"]["operationId"] == "pauseFunction"
    assert "resumeFunction" == paths["/api/functions/{function_id}/resume"]["post"]["operationId"]


def test_cli_functions_pause_resume_and_list(web, monkeypatch):
    runtime, _ = web
    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    runner = CliRunner()
    paused = runner.invoke(cli.main, ["functions", "pause", "held"])
    assert paused.exit_code == 0 and "function held paused since" in paused.output
    listed = runner.invoke(cli.main, ["functions"])
    assert listed.exit_code == 0 and "held" in listed.output and "paused since" in listed.output
    resumed = runner.invoke(cli.main, ["functions", "resume", "held"])
    assert resumed.exit_code == 0 and "resumed; 0 run(s) enqueued" in resumed.output
    assert "paused" not in runner.invoke(cli.main, ["functions"]).output
    missing = runner.invoke(cli.main, ["functions", "pause", "nope"])
    assert missing.exit_code == 1 and "no function 'nope'" in missing.output
