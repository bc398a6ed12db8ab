"""Prometheus metrics under Inngest's names, read from the database: the right numbers on
both databases, and the same numbers from every worker of a gunicorn with two."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tengo_jobs import RunStatus
from tengo_jobs.process.web.metrics import DatabaseCollector

from webhelpers import EVENT_KEY, bearer, live_env, start_gunicorn


def _samples_of(families) -> dict:
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_inngest_named_metrics_count_runs_steps_and_output_bytes(jobs, tester, backend):
    @jobs.function("ok-fn", event="go")
    def ok_fn(ctx, step):
        return step.run("one", lambda: "x" * 10)  # '"xxxxxxxxxx"': 12 bytes of JSON

    @jobs.function("bad-fn", event="go", retries=0)
    def bad_fn(ctx, step):
        raise ValueError("boom")

    @jobs.function("sleepy", event="go")
    def sleepy(ctx, step):
        step.sleep("long", "1d")

    tester.send([{"name": "go", "data": {}}, {"name": "go", "data": {}}])
    before = _samples_of(DatabaseCollector(backend)._measure())
    assert before[("inngest_function_run_scheduled_total", (("fn", "ok-fn"),))] == 2
    assert before[("inngest_function_run_started_total", (("fn", "ok-fn"),))] == 0
    assert before[("inngest_steps_scheduled", ())] == 6
    assert before[("inngest_steps_running", ())] == 0
    backend.clock.advance(2_000)
    assert _samples_of(DatabaseCollector(backend)._measure())[
        ("tengo_scheduler_lag_seconds", ())] == pytest.approx(2.0)

    runs = tester.run_until_idle(advance_time=False)
    assert {r.status for r in runs} == {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.SLEEPING}
    s = _samples_of(DatabaseCollector(backend)._measure())
    for fn in ("ok-fn", "bad-fn", "sleepy"):
        assert s[("inngest_function_run_scheduled_total", (("fn", fn),))] == 2
        assert s[("inngest_function_run_started_total", (("fn", fn),))] == 2
    assert s[("inngest_function_run_ended_total", (("fn", "ok-fn"), ("status", "completed")))] == 2
    assert s[("inngest_function_run_ended_total", (("fn", "bad-fn"), ("status", "failed")))] == 2
    assert ("inngest_function_run_ended_total", (("fn", "sleepy"), ("status", "completed"))) not in s
    assert s[("inngest_step_output_bytes_total", (("fn", "ok-fn"),))] == 24
    assert s[("inngest_steps_scheduled", ())] == 0  # the sleepers are not due
    assert s[("tengo_scheduler_lag_seconds", ())] == 0
    assert s[("tengo_run_start_lag_seconds_count", (("function", "ok-fn"),))] == 2
    assert s[("tengo_run_start_lag_seconds_bucket",
              (("function", "ok-fn"), ("le", "1")))] == 0  # they waited 2 s to start
    assert s[("tengo_run_start_lag_seconds_bucket", (("function", "ok-fn"), ("le", "2.5")))] == 2


def test_inngest_running_counts_runs_holding_a_lease(jobs, tester, backend):
    seen = {}

    @jobs.function("looker", event="look")
    def looker(ctx, step):
        seen["during"] = _samples_of(DatabaseCollector(backend)._measure())[
            ("inngest_steps_running", ())]

    tester.send({"name": "look", "data": {}})
    tester.run_until_idle()
    assert seen["during"] == 1
    assert _samples_of(DatabaseCollector(backend)._measure())[("inngest_steps_running", ())] == 0


@pytest.mark.integration
def test_two_gunicorn_workers_report_the_same_numbers(tmp_path, postgres_url, redis_url,
                                                      queue_name):
    env = live_env(postgres_url, redis_url, queue_name)
    web, base = start_gunicorn(tmp_path / "web.log", env, workers=2)
    try:
        for i in range(7):
            r = requests.post(f"{base}/e/{EVENT_KEY}", json={"name": "sdk.single", "data": {"i": i}},
                              timeout=10)
            assert r.status_code == 200
        answers = set()
        for _ in range(12):  # a new connection each time: both workers answer some
            text = requests.get(f"{base}/metrics", headers={**bearer(), "Connection": "close"},
                                timeout=10).text
            s = _samples_of(text_string_to_metric_families(text))
            answers.add((s[("inngest_function_run_scheduled_total", (("fn", "echo-event"),))],
                         s[("inngest_steps_scheduled", ())] + s[("inngest_steps_running", ())]
                         + s.get(("inngest_function_run_ended_total",
                                  (("fn", "echo-event"), ("status", "completed"))), 0)))
        assert answers == {(7, 7)}
    finally:
        web.stop()
