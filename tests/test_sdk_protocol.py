"""Inngest's SDK protocol: an app served by inngest 3.32.7's own ``inngest/node`` adapter
syncs with ``PUT`` (its SDK posts ``/fn/register`` to us) and its functions run here,
driven over HTTP by the worker (:mod:`tengo_jobs.engine.drivers.http`).

``tests/js`` pins the SDK (``npm ci`` there); outside CI the process tests skip when Node.js
or the SDK is missing. The sync's mapping and refusals are also checked in-process.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from click.testing import CliRunner

from tengo_jobs import cli
from tengo_jobs.config import Settings
from tengo_jobs.engine.drivers.http import (HttpDriver, SdkFunctionError, SdkUnreachableError,
                                            SignatureError, canonical_json, sign,
                                            verify_signature)
from tengo_jobs.engine.sdk_sync import SyncOnStart
from tengo_jobs.errors import ConfigurationError

from conftest import require_tool, unavailable
from procs import TESTS, Proc, free_port, process_env, wait_until
from sdkprocs import require_node_sdk, send, start_app, start_dev
from webhelpers import EVENT_KEY, PASSWORD, api_get, bearer, make_app, wait_for_run

JS = TESTS / "js"
SIGNING_KEY = "signkey-test-" + "ab" * 32


def _require_node_sdk() -> str:
    node = require_tool("node", "Node.js is not installed")
    if not (JS / "node_modules" / "inngest" / "package.json").exists():
        unavailable("the inngest SDK is not installed: run (cd tests/js && npm ci)")
    return node


def _register_body(functions, app="py-sync-app", url="http://127.0.0.1:1/api/inngest"):
    return {"url": url, "deployType": "ping", "framework": "node", "appName": app,
            "sdk": "js:v3.32.7", "v": "0.1", "functions": functions}


def _fn(fn_id, app="py-sync-app", **extra):
    return {"id": f"{app}-{fn_id}", "name": fn_id, "triggers": [{"event": f"{fn_id}.go"}],
            "steps": {"step": {"id": "step", "name": "step", "runtime": {
                "type": "http", "url": f"http://127.0.0.1:1/api/inngest?fnId={app}-{fn_id}&stepId=step"},
                "retries": {"attempts": 1}}}, **extra}


def test_sync_maps_options_and_refuses_what_it_cannot_honour(tmp_path, monkeypatch):
    runtime, app = make_app(tmp_path)
    client = app.test_client()
    body = _register_body([
        _fn("limited", concurrency={"limit": 2, "key": "event.data.userId"},
            rateLimit={"limit": 1, "period": "1h", "key": "event.data.userId"},
            cancel=[{"event": "x.cancelled", "if": "event.data.id == async.data.id"}]),
        _fn("filtered", triggers=[{"event": "y", "expression": "event.data.ok == true"}]),
        _fn("bad-limit", concurrency={"limit": 0}),
    ])
    answer = client.post("/fn/register", json=body)
    assert answer.status_code == 200, answer.get_json()
    got = answer.get_json()
    assert got["functions"] == ["py-sync-app-limited"]
    assert len(got["unsupported"]) == 2
    assert "'py-sync-app-filtered'" in got["unsupported"][0] and "expression" in got["unsupported"][0]
    assert "'py-sync-app-bad-limit'" in got["unsupported"][1] and "concurrency" in got["unsupported"][1]

    fn = runtime.registry.get("py-sync-app-limited")
    assert fn.runtime == "http" and fn.retries == 1 and fn.events == ("limited.go",)
    assert fn.capacity.concurrency[0].limit == 2 and fn.flow.rate_limit.limit == 1
    assert fn.cancel_on[0].event == "x.cancelled"

    apps = client.get("/api/apps", headers=bearer()).get_json()["apps"]
    assert [(a["app_id"], a["url"], a["functions"]) for a in apps] == [
        ("py-sync-app", "http://127.0.0.1:1/api/inngest",
         ["py-sync-app-limited", "py-sync-app-filtered", "py-sync-app-bad-limit"])]

    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    listed = CliRunner().invoke(cli.main, ["apps"])
    assert listed.exit_code == 0, listed.output
    assert "py-sync-app" in listed.output and "http://127.0.0.1:1/api/inngest" in listed.output
    assert "refused: function 'py-sync-app-filtered'" in listed.output

    # Another process learns the app from tj_apps; a re-sync drops functions no longer sent.
    runtime.registry.remove("py-sync-app-limited")
    assert runtime.sdk_apps.refresh("py-sync-app-limited") is not None
    client.post("/fn/register", json=_register_body([_fn("other")]))
    assert runtime.registry.find("py-sync-app-limited") is None
    runtime.registry.remove("py-sync-app-other")


def test_sync_is_refused_without_the_hashed_signing_key_in_production(tmp_path):
    _, app = make_app(tmp_path, signing_key=SIGNING_KEY, env="production", allow_unsafe=True)
    client = app.test_client()
    refused = client.post("/fn/register", json=_register_body([]))
    assert refused.status_code == 401 and refused.get_json()["field"] == "Authorization"
    bad = client.post("/fn/register", json={"appName": "", "url": "x", "functions": []})
    assert bad.status_code == 401


def test_sync_without_a_bearer_is_taken_in_development_but_a_wrong_one_is_refused(tmp_path):
    # inngest-py's serve() in dev mode syncs with no Authorization header; Inngest's dev
    # server takes it. A bearer that is given must still be the hashed key.
    _, app = make_app(tmp_path, signing_key=SIGNING_KEY)
    client = app.test_client()
    taken = client.post("/fn/register", json=_register_body([]))
    assert taken.status_code == 200, taken.get_json()
    wrong = client.post("/fn/register", json=_register_body([]),
                        headers={"Authorization": "Bearer signkey-test-" + "00" * 32})
    assert wrong.status_code == 401 and "does not match" in wrong.get_json()["error"]


def test_sync_bad_body_is_a_400_naming_the_field(tmp_path):
    client = make_app(tmp_path)[1].test_client()
    answer = client.post("/fn/register", json={"appName": "a", "url": "ftp://x", "functions": []})
    assert answer.status_code == 400 and answer.get_json()["field"] == "url"


@pytest.mark.integration
def test_typescript_app_syncs_and_its_runs_complete_here(tmp_path):
    node = _require_node_sdk()
    port, app_port = free_port(), free_port()
    base, app_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app_port}/api/inngest"
    env = dict(DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}", TENGO_FUNCTIONS="web_functions",
               TENGO_ENV="development", TENGO_DASHBOARD_PASSWORD=PASSWORD, TENGO_RETRY_BASE="100ms",
               TENGO_RETRY_MAX="200ms", TENGO_SIGNING_KEY=SIGNING_KEY, PORT=str(port))
    dev = Proc([sys.executable, "-m", "tengo_jobs.cli", "dev", "--port", str(port)],
               process_env(**env), tmp_path / "dev.log")
    app = Proc([node, "serve_app.mjs", str(app_port)],
               {**os.environ, "INNGEST_DEV": base, "INNGEST_SIGNING_KEY": SIGNING_KEY},
               tmp_path / "app.log", cwd=JS)
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok, timeout=30,
                   message=f"tengo-jobs dev ({dev.log()})")
        wait_until(lambda: "listening" in app.log(), timeout=30, message="the SDK app")
        synced = requests.put(app_url, timeout=30)
        assert synced.status_code == 200, (synced.text, dev.log())
        assert "registered 2 function(s)" in synced.json()["message"]
        [listed] = api_get(base, "/api/apps")["apps"]
        assert listed["url"] == app_url and listed["sdk"] == "js:v3.32.7"

        sent = subprocess.run([node, "send.mjs", base, EVENT_KEY,
                               json.dumps({"name": "sdk/hello", "data": {"n": 20}}),
                               json.dumps({"name": "sdk/flaky", "data": {}})],
                              cwd=JS, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "INNGEST_DEV": "1"})
        hello, flaky = [json.loads(line)["ids"][0] for line in sent.stdout.splitlines()]

        run = wait_for_run(base, hello, timeout=60)
        assert run["function_id"] == "sdk-test-app-two-steps-and-a-sleep"
        assert run["output"] == {"first": {"n": 21}, "second": 42}
        steps = {s["name"]: s for s in run["steps"]}
        assert set(steps) == {"first", "nap", "second"}, run["steps"]
        assert steps["first"]["output"] == {"n": 21} and steps["second"]["output"] == 42
        assert steps["nap"]["status"] == "completed"

        run = wait_for_run(base, flaky, timeout=60)
        assert run["output"] == {"result": {"attempt": 1}}
        [unstable] = run["steps"]
        assert unstable["name"] == "unstable" and unstable["attempts"] == 2
    finally:
        app.stop()
        dev.stop()


def test_sync_registers_an_on_failure_handler_as_the_functions_failure_handler(tmp_path):
    runtime, app = make_app(tmp_path)
    failure = _fn("doomed-failure", triggers=[{
        "event": "inngest/function.failed",
        "expression": "event.data.function_id == 'py-sync-app-doomed'"}])
    failure["id"] = "py-sync-app-doomed-failure"
    orphan = _fn("gone-failure", triggers=[{
        "event": "inngest/function.failed",
        "expression": "event.data.function_id == 'py-sync-app-gone'"}])
    orphan["id"] = "py-sync-app-gone-failure"
    listener = _fn("listener", triggers=[{"event": "inngest/function.failed"}])
    got = app.test_client().post(
        "/fn/register", json=_register_body([_fn("doomed"), failure, orphan, listener])).get_json()
    assert got["functions"] == ["py-sync-app-doomed", "py-sync-app-doomed-failure"]
    assert any("'py-sync-app-gone-failure'" in r and "not registered" in r
               for r in got["unsupported"]), got
    assert any("'py-sync-app-listener'" in r and "onFailure" in r for r in got["unsupported"])
    fn = runtime.registry.get("py-sync-app-doomed")
    handler = runtime.registry.get("py-sync-app-doomed-failure")
    assert fn.on_failure is handler and handler.is_failure_handler
    assert handler.failure_of == "py-sync-app-doomed" and handler.events == ()
    assert handler.runtime == "http" and handler.retries == 1
    for fn_id in got["functions"]:
        runtime.registry.remove(fn_id)


@pytest.mark.integration
def test_typescript_on_failure_runs_with_the_function_failed_event(tmp_path):
    node = require_node_sdk()
    port, app_port = free_port(), free_port()
    base, app_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app_port}/api/inngest"
    dev = start_dev(tmp_path, port, TENGO_DASHBOARD_PASSWORD=PASSWORD)
    app = None
    try:
        app = start_app(node, "core_app.mjs", app_port, tmp_path / "app.log", server=base)
        assert requests.put(app_url, timeout=30).status_code == 200, dev.log()
        [event_id] = send(node, base, EVENT_KEY, {"name": "core/doomed", "data": {"id": 7}})
        failed = wait_for_run(base, event_id, status="failed", timeout=60)
        assert failed["error"]["name"] == "Error" and failed["error"]["message"] == "doomed 7"
        assert "stack" in failed["error"]

        def handler_run():
            runs = api_get(base, "/api/runs", function="sdk-core-app-doomed-failure")["data"]
            return runs if runs and runs[0]["status"] == "completed" else None

        [handled] = wait_until(handler_run, timeout=60, message="the onFailure run")
        detail = api_get(base, f"/api/runs/{handled['id']}")
        assert detail["output"] == {"failed": "sdk-core-app-doomed", "run": failed["id"],
                                    "message": "doomed 7", "original": {"id": 7}}
        assert [s["name"] for s in detail["steps"]] == ["note-failure"]
        event = api_get(base, f"/api/events/{detail['event_id']}")
        assert event["name"] == "inngest/function.failed"
        assert event["data"]["event"]["data"] == {"id": 7}
    finally:
        if app is not None:
            app.stop()
        dev.stop()


def test_sync_on_start_retries_until_the_app_answers_and_logs_no_credentials(caplog):
    answers = iter([(False, "not reachable (refused)"), (False, "HTTP 500: Failed to register"),
                    (True, "HTTP 200: registered 3 function(s)")])
    calls = []

    def fake_sync(url):
        calls.append(url)
        return next(answers)

    url = "http://user:secret-pass@127.0.0.1:9/api/inngest?token=secret-token"
    with caplog.at_level("INFO", logger="tengo_jobs.engine.sdk_sync"):
        syncer = SyncOnStart([url, url], sync=fake_sync)
        syncer.start().join(timeout=10)
    assert calls == [url, url, url]
    assert syncer.results[url] == (True, "HTTP 200: registered 3 function(s)")
    assert "http://127.0.0.1:9/api/inngest synced: HTTP 200: registered 3" in caplog.text
    assert "secret" not in caplog.text


def test_sync_on_start_gives_up_with_an_error_naming_the_app(caplog):
    with caplog.at_level("INFO", logger="tengo_jobs.engine.sdk_sync"):
        syncer = SyncOnStart(["http://127.0.0.1:9/api/inngest"], give_up_s=1.0,
                             sync=lambda url: (False, "not reachable (refused)"))
        syncer.start().join(timeout=10)
    assert "SDK app at http://127.0.0.1:9/api/inngest could not be synced" in caplog.text
    assert "not reachable (refused)" in caplog.text


def test_sdk_urls_come_from_the_environment_and_must_be_http():
    settings = Settings.from_env({"TENGO_SDK_URLS": "http://a:3000/api/inngest, https://b/x"})
    assert settings.sdk_urls == ("http://a:3000/api/inngest", "https://b/x")
    with pytest.raises(ConfigurationError, match="TENGO_SDK_URLS: 'localhost:3000/api/inngest'"):
        Settings.from_env({"TENGO_SDK_URLS": "localhost:3000/api/inngest"})


@pytest.mark.integration
def test_dev_with_sdk_url_syncs_the_app_on_start_without_a_manual_put(tmp_path):
    node = require_node_sdk()
    port, app_port = free_port(), free_port()
    base, app_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{app_port}/api/inngest"
    # the app starts after the server: the sync is retried with backoff until it is up
    dev = start_dev(tmp_path, port, "--sdk-url", app_url, TENGO_DASHBOARD_PASSWORD=PASSWORD)
    app = None
    try:
        time.sleep(1.0)
        app = start_app(node, "core_app.mjs", app_port, tmp_path / "app.log", server=base)

        def synced():
            apps = api_get(base, "/api/apps")["apps"]
            return apps if apps else None

        [listed] = wait_until(synced, timeout=30, message=f"the sync on start ({dev.log()})")
        assert listed["url"] == app_url and listed["app_id"] == "sdk-core-app"
        assert set(listed["functions"]) == {"sdk-core-app-doomed", "sdk-core-app-doomed-failure",
                                            "sdk-core-app-slow-step", "sdk-core-app-steady"}
        wait_until(lambda: "synced: HTTP 200" in dev.log(), timeout=10, message="the sync's log")
        [event_id] = send(node, base, EVENT_KEY, {"name": "core/steady", "data": {"id": 1}})
        assert wait_for_run(base, event_id, timeout=60)["output"] == {"a": 2, "b": 3}
    finally:
        if app is not None:
            app.stop()
        dev.stop()


# -- signatures, timeouts and limits -------------------------------------------------------------
NOW_MS = 1_790_000_000_000


def test_our_signature_is_the_sdks_over_the_body_it_canonicalizes(tmp_path):
    """The SDK (inngest 3.32.7's signDataWithKey) checks HMAC(canonicalize(JSON.parse(body)) +
    t): the RFC 8785 body we send and sign must give the same HMAC in Node."""
    node = require_node_sdk()
    payload = {"event": {"name": "a", "data": {"ratio": 1.0, "tiny": 1e-7, "text": "ñandú ✓",
                                                "big": 12345678901234, "z": None, "a": [3, 2]}},
               "steps": {}, "version": 1}
    body = canonical_json(payload)
    header = sign(body, SIGNING_KEY, 1_790_000_000)
    script = ("const {signDataWithKey} = require('inngest/helpers/net');"
              "const body = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              f"process.stdout.write(signDataWithKey(body, {SIGNING_KEY!r}, '1790000000'));")
    out = subprocess.run([node, "-e", script], input=body.decode(), cwd=JS, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert header == f"t=1790000000&s={out.stdout}"


def test_signature_check_refuses_forged_expired_and_malformed_headers():
    body = b'{"ok":true}'
    good = sign(body, SIGNING_KEY, NOW_MS // 1000 - 60)
    verify_signature(good, body, SIGNING_KEY, now_ms=NOW_MS)
    # the SDK signs its answers with t in milliseconds
    verify_signature(f"t={NOW_MS - 1000}&s=" + sign(body, SIGNING_KEY, NOW_MS - 1000).split("s=")[1],
                     body, SIGNING_KEY, now_ms=NOW_MS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(sign(body, "signkey-test-" + "cd" * 32, NOW_MS // 1000), body,
                         SIGNING_KEY, now_ms=NOW_MS)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(good, b'{"ok":false}', SIGNING_KEY, now_ms=NOW_MS)
    with pytest.raises(SignatureError, match="expired .*limit is 300 s"):
        verify_signature(sign(body, SIGNING_KEY, NOW_MS // 1000 - 301), body, SIGNING_KEY,
                         now_ms=NOW_MS)
    with pytest.raises(SignatureError, match="malformed"):
        verify_signature("s=abc", body, SIGNING_KEY, now_ms=NOW_MS)
    with pytest.raises(SignatureError, match="no X-Inngest-Signature"):
        verify_signature(None, body, SIGNING_KEY, now_ms=NOW_MS)


def test_register_refuses_a_forged_signature_and_production_without_a_key(tmp_path):
    from tengo_jobs.process.web.sdk_api import _hashed

    runtime, app = make_app(tmp_path, signing_key=SIGNING_KEY)
    client = app.test_client()
    body = json.dumps(_register_body([])).encode()
    auth = {"Authorization": f"Bearer {_hashed(SIGNING_KEY)}", "Content-Type": "application/json"}
    forged = client.post("/fn/register", data=body, headers={
        **auth, "X-Inngest-Signature": sign(body, "signkey-test-" + "cd" * 32, int(time.time()))})
    assert forged.status_code == 401
    assert forged.get_json()["field"] == "X-Inngest-Signature"
    assert "does not match" in forged.get_json()["error"]
    signed = client.post("/fn/register", data=body, headers={
        **auth, "X-Inngest-Signature": sign(body, SIGNING_KEY, int(time.time()))})
    assert signed.status_code == 200, signed.get_json()
    wrong_bearer = client.post("/fn/register", data=body, headers={
        **auth, "Authorization": "Bearer signkey-test-" + "00" * 32})
    assert wrong_bearer.status_code == 401 and "does not match" in wrong_bearer.get_json()["error"]


def test_register_is_refused_in_production_without_a_signing_key(tmp_path):
    _, prod = make_app(tmp_path, env="production", allow_unsafe=True)
    refused = prod.test_client().post("/fn/register", json=_register_body([]))
    assert refused.status_code == 401
    assert "TENGO_SIGNING_KEY is not set" in refused.get_json()["error"]


def test_production_with_sdk_urls_and_no_signing_key_refuses_to_start():
    settings = Settings.from_env({"TENGO_ENV": "production",
                                  "TENGO_SDK_URLS": "http://app:3000/api/inngest"})
    assert any("TENGO_SIGNING_KEY is not set (TENGO_SDK_URLS" in p
               for p in settings.production_problems("web"))
    keyed = Settings.from_env({"TENGO_ENV": "production", "TENGO_SIGNING_KEY": SIGNING_KEY,
                               "TENGO_SDK_URLS": "http://app:3000/api/inngest"})
    assert not any("TENGO_SIGNING_KEY" in p for p in keyed.production_problems("web"))


class _StubApp(http.server.BaseHTTPRequestHandler):
    """Answers each POST as the test's ``behaviour`` says (a stand-in SDK app)."""

    behaviour: dict = {}

    def do_POST(self):  # noqa: N802 - the http.server interface
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        b = self.behaviour
        time.sleep(b.get("sleep", 0))
        body = b.get("body", b'"done"')
        self.send_response(b.get("status", 200))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if b.get("signature"):
            self.send_header("X-Inngest-Signature", b["signature"](body))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the caller timed out
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_app():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/inngest?fnId=f&stepId=step", _StubApp.behaviour
    server.shutdown()
    server.server_close()
    _StubApp.behaviour.clear()


def test_http_driver_checks_answer_signatures_and_names_timeouts_and_size_limits(stub_app):
    url, behaviour = stub_app
    driver = HttpDriver(signing_key=SIGNING_KEY, production=True, timeout_s=0.5,
                        max_response_bytes=1024)
    now_ms = lambda: int(time.time() * 1000)  # noqa: E731
    behaviour["signature"] = lambda body: f"t={now_ms()}&s=" + sign(body, SIGNING_KEY, now_ms()).split("s=")[1]
    assert driver.call(url, {"event": {}}).body == "done"

    behaviour["signature"] = lambda body: sign(body, "signkey-prod-" + "cd" * 32, now_ms() // 1000)
    with pytest.raises(SdkFunctionError, match="bad signature: X-Inngest-Signature does not match"):
        driver.call(url, {"event": {}})
    del behaviour["signature"]
    with pytest.raises(SdkFunctionError, match="no X-Inngest-Signature"):
        driver.call(url, {"event": {}})
    # development: an unsigned answer (an SDK in dev mode) is accepted, a forged one is not
    dev_driver = HttpDriver(signing_key=SIGNING_KEY, timeout_s=0.5, max_response_bytes=1024)
    assert dev_driver.call(url, {"event": {}}).body == "done"
    behaviour["signature"] = lambda body: sign(body, "signkey-prod-" + "cd" * 32, now_ms() // 1000)
    with pytest.raises(SdkFunctionError, match="bad signature"):
        dev_driver.call(url, {"event": {}})
    del behaviour["signature"]

    behaviour["body"] = b'"' + b"x" * 2000 + b'"'
    with pytest.raises(SdkFunctionError, match="more than 1024 bytes \\(the response size limit\\)"):
        dev_driver.call(url, {"event": {}})
    behaviour["body"], behaviour["sleep"] = b'"late"', 1.5
    with pytest.raises(SdkFunctionError, match="did not answer within 0.5 s \\(the request timeout\\)"):
        dev_driver.call(url, {"event": {}})

    with pytest.raises(SdkFunctionError, match="TENGO_SIGNING_KEY is not set"):
        HttpDriver(production=True).call(url, {"event": {}})
    closed = f"http://127.0.0.1:{free_port()}/api/inngest"
    with pytest.raises(SdkUnreachableError, match="could not be reached"):
        dev_driver.call(closed, {"event": {}})


def test_sync_refuses_a_step_url_on_another_host_than_the_app(tmp_path):
    runtime, app = make_app(tmp_path)
    elsewhere = _fn("elsewhere")
    elsewhere["steps"]["step"]["runtime"]["url"] = "http://169.254.169.254/latest?fnId=x&stepId=step"
    got = app.test_client().post("/fn/register",
                                 json=_register_body([_fn("here"), elsewhere])).get_json()
    assert got["functions"] == ["py-sync-app-here"]
    [why] = got["unsupported"]
    assert "'py-sync-app-elsewhere'" in why and "http://169.254.169.254:" in why
    runtime.registry.remove("py-sync-app-here")


def test_an_unreachable_app_backs_off_without_spending_retries_until_the_grace_ends(tmp_path):
    from tengo_jobs.clock import FakeClock
    from tengo_jobs.engine.drivers.http import UNREACHABLE_GRACE_MS
    from tengo_jobs.testing import make_test_runtime

    clock = FakeClock(NOW_MS)
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'u.db'}", clock=clock,
                                retry_base_ms=1_000, retry_max_ms=8_000)
    try:
        port = free_port()  # nothing listens there
        url = f"http://127.0.0.1:{port}/api/inngest"
        fn = _fn("down")
        fn["steps"]["step"]["runtime"]["url"] = f"{url}?fnId=py-sync-app-down&stepId=step"
        runtime.sdk_apps.sync(_register_body([fn], url=url))
        runtime.send({"name": "down.go", "data": {}})
        [run] = runtime.store.queries.list_runs(function_id="py-sync-app-down")["data"]
        delays = []
        for _ in range(4):
            runtime.executor.execute(run["id"])
            row = runtime.store.queries.run(run["id"])
            assert row.attempt == 0 and row.status.value == "sleeping", row.status
            delays.append(row.wake_at - clock.now())
            clock.set(row.wake_at)
            runtime.timekeeper.fire_timers(now=clock.now())
        # max(TENGO_RETRY_BASE, half the time down), capped by TENGO_RETRY_MAX
        assert delays == [1_000, 1_000, 1_000, 1_500], delays
        clock.advance(UNREACHABLE_GRACE_MS)
        runtime.timekeeper.fire_timers(now=clock.now())
        runtime.executor.execute(run["id"])
        row = runtime.store.queries.run(run["id"])
        assert row.attempt == 1  # past the grace, an unreachable app spends a retry
        clock.set(row.wake_at)
        runtime.timekeeper.fire_timers(now=clock.now())
        runtime.executor.execute(run["id"])  # its only retry spent: the run fails
        detail = runtime.store.queries.get_run(run["id"])
        assert detail["status"] == "failed" and "could not be reached" in detail["error"]["message"]
    finally:
        runtime.registry.remove("py-sync-app-down")
        runtime.close()
