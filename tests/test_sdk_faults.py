"""Faults around Inngest SDK apps, with real processes in production mode: gunicorn (web), a
``dramatiq`` worker and the scheduler on Redis + PostgreSQL, and an app served by inngest
3.32.7's own ``inngest/node`` adapter in cloud mode (``INNGEST_DEV=0``, signing its answers
and checking our signatures), synced with a ``PUT``.

- the worker SIGKILLed while the SDK is running a step: a new worker finishes the run; the
  step's side effect happened at least once and at most twice, its result is recorded once;
- the app down for 30 s: runs back off (without spending their retries) and continue; none
  fails (the web process syncs that app itself, from ``TENGO_SDK_URLS``);
- forged credentials refused: a sync with the wrong key or a forged signature, and an app
  holding another signing key.

The whole file takes about a minute and a half (the outage is 30 s by design).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time

import pytest
import requests

from procs import Proc, free_port, process_env, start_worker, wait_until
from sdkprocs import SIGNING_KEY, require_node_sdk, send, start_app
from webhelpers import EVENT_KEY, PASSWORD, api_get, live_env, start_gunicorn, wait_for_run

pytestmark = pytest.mark.integration

OUTAGE_S = 30


@contextlib.contextmanager
def sdk_stack(tmp_path, postgres_url, redis_url, queue_name, **extra):
    """web + worker + scheduler in production mode with a signing key; yields
    ``(base, procs)`` where ``procs`` is a dict the test may change (``"worker"``)."""
    env = live_env(postgres_url, redis_url, queue_name, TENGO_SIGNING_KEY=SIGNING_KEY,
                   TENGO_LEASE_TTL="2s", TENGO_REDELIVER_AFTER="2s", TENGO_SWEEP_INTERVAL="1s",
                   TENGO_RETRY_BASE="500ms", TENGO_RETRY_MAX="3s", **extra)
    procs: dict[str, Proc] = {}
    try:
        procs["web"], base = start_gunicorn(tmp_path / "web.log", env)
        procs["worker"] = start_worker("web_functions", tmp_path / "worker.log", threads=2, **env)
        procs["scheduler"] = Proc([sys.executable, "scheduler.py"], process_env(**env),
                                  tmp_path / "scheduler.log")
        procs["env"] = env  # type: ignore[assignment]
        yield base, procs
    finally:
        for name, proc in procs.items():
            if isinstance(proc, Proc):
                proc.stop()


def _sync(app_url: str, base: str) -> None:
    answer = requests.put(app_url, timeout=30)
    assert answer.status_code == 200, answer.text
    [listed] = api_get(base, "/api/apps")["apps"]
    assert listed["url"] == app_url and not listed["unsupported"], listed


def _logs(procs: dict, *extra: Proc) -> str:
    return "\n".join(f"--- {p.args[:3]}\n{p.log()[-3000:]}"
                     for p in [*procs.values(), *extra] if isinstance(p, Proc))


def test_worker_sigkilled_while_the_sdk_runs_a_step_loses_and_duplicates_nothing_beyond_a_retry(
        tmp_path, postgres_url, redis_url, queue_name):
    node = require_node_sdk()
    effects = tmp_path / "effects.txt"
    effects.write_text("")
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}/api/inngest"
    with sdk_stack(tmp_path, postgres_url, redis_url, queue_name) as (base, procs):
        app = start_app(node, "core_app.mjs", app_port, tmp_path / "app.log", server=base,
                        signing_key=SIGNING_KEY, production=True, EFFECTS_FILE=str(effects),
                        SLOW_STEP_MS="1500")
        try:
            _sync(app_url, base)
            [event_id] = send(node, base, EVENT_KEY, {"name": "core/slow", "data": {"id": 5}})
            # the SDK is inside the slow step (its side effect written): kill the worker now
            wait_until(lambda: effects.read_text().strip(), timeout=30,
                       message=f"the slow step to start\n{_logs(procs, app)}")
            procs["worker"].kill(signal.SIGKILL)
            procs["worker"].popen.wait(10)
            procs["worker"].stop()
            procs["worker"] = start_worker("web_functions", tmp_path / "worker2.log", threads=2,
                                           **procs["env"])  # type: ignore[arg-type]
            run = wait_for_run(base, event_id, timeout=60)
        except BaseException:
            print(_logs(procs, app))
            raise
        finally:
            app.stop()
    assert run["output"] == {"done": {"id": 5}, "after": 10}
    executions = effects.read_text().split()
    assert executions and set(executions) == {"5"}
    assert 1 <= len(executions) <= 2, executions
    steps = [(s["name"], s["status"]) for s in run["steps"]]
    assert steps == [("slow", "completed"), ("after", "completed")], run["steps"]
    assert run["steps"][0]["output"] == {"id": 5}


def test_app_down_for_thirty_seconds_runs_back_off_and_continue_without_spending_retries(
        tmp_path, postgres_url, redis_url, queue_name):
    node = require_node_sdk()
    app_port = free_port()
    app_url = f"http://127.0.0.1:{app_port}/api/inngest"
    # the web process syncs the app itself (TENGO_SDK_URLS), retrying until it is up
    with sdk_stack(tmp_path, postgres_url, redis_url, queue_name,
                   TENGO_SDK_URLS=app_url) as (base, procs):
        def serve(log_name):
            return start_app(node, "core_app.mjs", app_port, tmp_path / log_name, server=base,
                             signing_key=SIGNING_KEY, production=True)

        app = serve("app.log")
        try:
            wait_until(lambda: api_get(base, "/api/apps")["apps"], timeout=30,
                       message="the web process to sync the app (TENGO_SDK_URLS)")
            wait_until(lambda: "synced: HTTP 200" in procs["web"].log(), timeout=30,
                       message="the sync's log line")
            # two runs get to their sleep before the outage, two are sent during it
            before = send(node, base, EVENT_KEY,
                          *[{"name": "core/steady", "data": {"id": i}} for i in (1, 2)])
            for event_id in before:
                wait_until(lambda: any(s["name"] == "a" for s in _detail(base, event_id)["steps"]),
                           timeout=30, message="step a of the runs sent before the outage")
            app.stop()
            down_at = time.monotonic()
            during = send(node, base, EVENT_KEY,
                          *[{"name": "core/steady", "data": {"id": i}} for i in (3, 4)])
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            # still going: nothing failed while the app was down
            statuses = {_detail(base, e)["status"] for e in before + during}
            assert statuses <= {"queued", "running", "sleeping"}, statuses
            app = serve("app2.log")
            runs = [wait_for_run(base, e, timeout=60) for e in before + during]
        except BaseException:
            print(_logs(procs, app))
            raise
        finally:
            app.stop()
    assert [r["output"] for r in runs] == [{"a": i + 1, "b": i + 2} for i in (1, 2, 3, 4)]
    # the unreachable app did not spend the function's retry (it has one)
    assert {r["attempt"] for r in runs} == {0}, [(r["id"], r["attempt"]) for r in runs]
    worker_log = procs["worker"].log()
    assert "not counted as a retry" in worker_log


def _detail(base: str, event_id: str) -> dict:
    runs = api_get(base, f"/api/events/{event_id}")["runs"]
    return api_get(base, f"/api/runs/{runs[0]['id']}") if runs else {"status": "none", "steps": []}


def test_forged_sync_credentials_and_an_app_with_another_key_are_refused_in_production(
        tmp_path, postgres_url, redis_url, queue_name):
    from tengo_jobs.engine.drivers.http import sign
    from tengo_jobs.process.web.sdk_api import _hashed

    node = require_node_sdk()
    app_port = free_port()
    with sdk_stack(tmp_path, postgres_url, redis_url, queue_name) as (base, procs):
        body = json.dumps({"appName": "forged", "url": "http://127.0.0.1:1/api/inngest",
                           "functions": []}).encode()
        headers = {"Content-Type": "application/json"}
        no_key = requests.post(f"{base}/fn/register", data=body, headers=headers, timeout=10)
        assert no_key.status_code == 401 and no_key.json()["field"] == "Authorization"
        forged = requests.post(f"{base}/fn/register", data=body, timeout=10, headers={
            **headers, "Authorization": f"Bearer {_hashed(SIGNING_KEY)}",
            "X-Inngest-Signature": sign(body, "signkey-prod-" + "cd" * 32, int(time.time()))})
        assert forged.status_code == 401, forged.text
        assert forged.json()["field"] == "X-Inngest-Signature"
        assert "does not match" in forged.json()["error"]

        other_key = "signkey-prod-" + "ef" * 32
        app = start_app(node, "core_app.mjs", app_port, tmp_path / "app.log", server=base,
                        signing_key=other_key, production=True)
        try:
            refused = requests.put(f"http://127.0.0.1:{app_port}/api/inngest", timeout=30)
            # our server executes nothing for an app it does not trust, and says so to the SDK
            assert refused.status_code >= 400, refused.text
            assert "hashed signing key" in refused.text
            # a call to the app signed with our key is refused by the SDK in turn
            call = requests.post(f"http://127.0.0.1:{app_port}/api/inngest?fnId=sdk-core-app-steady"
                                 "&stepId=step", data=b"{}", timeout=10, headers={
                                     **headers, "X-Inngest-Signature": sign(b"{}", SIGNING_KEY,
                                                                            int(time.time()))})
            assert call.status_code in (401, 500), call.text
        finally:
            app.stop()
        assert api_get(base, "/api/apps")["apps"] == []
        assert PASSWORD not in procs["web"].log() and SIGNING_KEY not in procs["web"].log()
