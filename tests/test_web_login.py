"""The dashboard's login (issue 19): a form, a signed session cookie, logout; every route of
the URL map refused without a session; loopback-only access without a password; and the
run page's actions (cancel, rerun, rerun from a step with new input) as form posts."""

from __future__ import annotations

import re
import time

import pytest

import actors  # noqa: F401  (Tengo Lugar's pages: part of the URL map walked)
from tengo_jobs import Jobs
from tengo_jobs.process.web import auth, create_app
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import EVENT_KEY, PASSWORD, basic, bearer, form_token

# Routes a visitor without a session may reach: liveness, the stylesheet, logging in and
# out, and the event intake (its own event key).
# The event intake and the SDK sync take their own credentials (an event key; the signing
# key, as Inngest's dev server does), not the dashboard's.
OPEN = {"/healthz", "/static/tj/dashboard.css", "/login", "/logout", "/e/<eventkey:event_key>",
        "/api/events", "/fn/register"}
SESSION_API = "/app/actions/"  # Tengo Lugar's actions: their own session bearer token


@pytest.fixture
def site(tmp_path):
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'login.db'}", event_keys=(EVENT_KEY,),
                                dashboard_password=PASSWORD)
    jobs = Jobs("login-app", runtime=runtime)
    calls = {"prepare": 0, "charge": 0}

    @jobs.function("login-charge", event="login.charge", retries=0)
    def charge(ctx, step):
        def prepare():
            calls["prepare"] += 1
            return {"amount": ctx.event.data["amount"]}

        def do_charge(amount):
            calls["charge"] += 1
            if amount < 0:
                raise ValueError(f"negative amount {amount}")
            return {"charged": amount}

        order = step.run("prepare", prepare)
        return step.run("charge", do_charge, order["amount"])

    @jobs.function("login-nap", event="login.nap")
    def nap(ctx, step):
        step.sleep("nap", "1h")
        step.wait_for_event("approval", event="login.approved", timeout="2h",
                            if_exp="event.data.id == async.data.id")

    app = create_app(runtime)
    yield runtime, app, JobsTester(runtime), calls
    runtime.close()


def _login(client, password=PASSWORD, next_path=""):
    return client.post("/login", data={"password": password, "next": next_path,
                                       "csrf_token": form_token(client, "/login")})


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", "X", rule.rule)


def test_every_dashboard_and_api_route_needs_a_session(site):
    _, app, _, _ = site
    client = app.test_client()
    redirected = refused = 0
    for rule, method, path in _routes(app):
        if rule.rule in OPEN or rule.rule.startswith(SESSION_API):
            continue
        answer = client.open(path, method=method)
        if rule.rule.startswith(("/api/", "/metrics")) or method != "GET":
            assert answer.status_code == 401, (method, rule.rule, answer.status_code)
            refused += 1
        else:
            assert answer.status_code == 302, (method, rule.rule, answer.status_code)
            assert answer.headers["Location"].startswith("/login?next="), rule.rule
            redirected += 1
    assert redirected >= 5 and refused >= 10  # runs, run, events, event, functions, app pages
    assert client.get("/api/runs").headers["WWW-Authenticate"].startswith("Basic")


def test_login_sets_a_signed_http_only_cookie_and_logout_drops_it(site):
    _, app, _, _ = site
    client = app.test_client()
    wrong = _login(client, "not-it")
    assert wrong.status_code == 401 and "wrong password" in wrong.get_data(as_text=True)
    assert client.get_cookie(auth.SESSION_COOKIE) is None

    answer = _login(client, next_path="/functions")
    assert answer.status_code == 303 and answer.headers["Location"] == "/functions"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Max-Age=43200" in cookie  # TENGO_SESSION_LIFETIME's default, 12 h
    page = client.get("/functions")
    assert page.status_code == 200 and "Log out" in page.get_data(as_text=True)
    assert client.get("/api/runs").status_code == 200  # the session works for the API too

    out = client.post("/logout", data={"csrf_token": form_token(client, "/")})
    assert out.status_code == 303 and out.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_the_cookie_is_secure_over_https_and_next_stays_on_this_site(site):
    _, app, _, _ = site
    client = app.test_client()
    token = form_token(client, "/login")
    answer = client.post("/login", base_url="https://localhost",
                         data={"password": PASSWORD, "next": "//evil.example/x",
                               "csrf_token": token})
    assert "Secure" in answer.headers["Set-Cookie"]
    assert answer.headers["Location"] == "/"  # not another site
    for bad in ("https://evil.example/", "/\\evil.example", "javascript:alert(1)"):
        assert auth.safe_next(bad) is None
    assert auth.safe_next("/runs/x?status=failed") == "/runs/x?status=failed"


def test_a_forged_expired_or_old_password_cookie_is_refused(site, tmp_path):
    runtime, app, _, _ = site
    client = app.test_client()
    with app.test_request_context():
        expired = auth.issue_session(now=time.time() - 12 * 3600 - 60)
        fresh = auth.issue_session()
    for value in (expired, fresh[:-2] + "xx", "garbage"):
        client.set_cookie(auth.SESSION_COOKIE, value)
        assert client.get("/").status_code == 302, value
    client.set_cookie(auth.SESSION_COOKIE, fresh)
    assert client.get("/").status_code == 200
    # a password change logs everyone out: the key is derived from it
    other = make_test_runtime(f"sqlite:///{tmp_path / 'other.db'}", dashboard_password="new-pass-41")
    try:
        other_client = create_app(other).test_client()
        other_client.set_cookie(auth.SESSION_COOKIE, fresh)
        assert other_client.get("/").status_code == 302
    finally:
        other.close()


def test_login_without_a_csrf_token_is_refused(site):
    _, app, _, _ = site
    client = app.test_client()
    answer = client.post("/login", data={"password": PASSWORD})
    assert answer.status_code == 403 and client.get_cookie(auth.SESSION_COOKIE) is None


def test_bearer_and_basic_auth_keep_working_for_scripts(site):
    _, app, _, _ = site
    client = app.test_client()
    assert client.get("/api/runs", headers=bearer()).status_code == 200
    assert client.get("/api/runs", headers=basic()).status_code == 200
    assert client.get("/", headers=basic()).status_code == 200
    assert client.get("/", headers=basic("wrong")).status_code == 401
    assert client.get("/metrics", headers=bearer()).status_code == 200


def test_the_session_lifetime_is_configurable(tmp_path):
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'l.db'}", dashboard_password=PASSWORD,
                                session_lifetime_ms=600_000)
    try:
        client = create_app(runtime).test_client()
        answer = _login(client)
        assert "Max-Age=600" in answer.headers["Set-Cookie"]
    finally:
        runtime.close()


def test_session_lifetime_is_read_from_the_environment():
    from tengo_jobs.config import Settings
    from tengo_jobs.errors import ConfigurationError

    assert Settings.from_env({"TENGO_SESSION_LIFETIME": "30m"}).session_lifetime_ms == 1_800_000
    assert Settings.from_env({}).session_lifetime_ms == 12 * 3_600_000
    with pytest.raises(ConfigurationError, match="TENGO_SESSION_LIFETIME"):
        Settings.from_env({"TENGO_SESSION_LIFETIME": "0s"})


def test_without_a_password_only_loopback_clients_get_in_and_a_banner_says_so(tmp_path):
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'open.db'}", dashboard_password=None)
    try:
        client = create_app(runtime).test_client()
        local = client.get("/")
        assert local.status_code == 200
        assert "no <code>TENGO_DASHBOARD_PASSWORD</code> is set" in local.get_data(as_text=True)
        for addr in ("127.0.0.1", "::1"):
            assert client.get("/api/runs", environ_base={"REMOTE_ADDR": addr}).status_code == 200
        remote = {"REMOTE_ADDR": "192.0.2.7"}
        page = client.get("/", environ_base=remote)
        assert page.status_code == 403 and "loopback" in page.get_data(as_text=True)
        assert client.get("/api/runs", environ_base=remote).status_code == 403
    finally:
        runtime.close()


# -- acting on runs from the run page -----------------------------------------------------------
def _logged_in(app):
    client = app.test_client()
    assert _login(client).status_code == 303
    return client


def _post_form(client, run_id, action, **fields):
    token = form_token(client, f"/runs/{run_id}")
    return client.post(f"/runs/{run_id}/{action}", data={"csrf_token": token, **fields})


def test_rerun_from_the_failed_step_with_new_input_keeps_the_earlier_steps(site):
    runtime, app, tester, calls = site
    client = _logged_in(app)
    tester.send({"name": "login.charge", "data": {"amount": -5}})
    [failed] = tester.run_until_idle()
    assert failed.status == "failed" and calls == {"prepare": 1, "charge": 1}

    page = client.get(f"/runs/{failed.id}").get_data(as_text=True)
    assert "negative amount -5" in page and "Stack trace" in page
    assert "Traceback (most recent call last)" in page and "do_charge" in page  # the stack
    assert "&#34;amount&#34;: -5" in page or "&quot;amount&quot;: -5" in page  # the event data
    assert "Rerun from charge" in page

    bad = _post_form(client, failed.id, "rerun", from_step="charge", input="[5,")
    assert bad.status_code == 400 and "input is not valid JSON" in bad.get_data(as_text=True)
    assert "[5," in bad.get_data(as_text=True)  # what was typed is kept

    answer = _post_form(client, failed.id, "rerun", from_step="charge", input="[5]")
    assert answer.status_code == 303
    new_id = answer.headers["Location"].rsplit("/", 1)[1]
    tester.run_until_idle()
    new = runtime.store.queries.get_run(new_id)
    assert new["status"] == "completed" and new["output"] == {"charged": 5}
    assert new["replay_of"] == failed.id
    assert calls == {"prepare": 1, "charge": 2}  # prepare was not run again
    detail = client.get(f"/runs/{new_id}").get_data(as_text=True)
    assert f"/runs/{failed.id}" in detail and "from step <code>charge</code>" in detail
    assert f"/runs/{new_id}" in client.get(f"/runs/{failed.id}").get_data(as_text=True)

    whole = _post_form(client, failed.id, "rerun")  # from the top: prepare runs again
    assert whole.status_code == 303
    tester.run_until_idle()
    assert calls["prepare"] == 2


def test_a_sleeping_run_says_until_when_and_can_be_cancelled(site):
    runtime, app, tester, _ = site
    client = _logged_in(app)
    tester.send({"name": "login.nap", "data": {"id": 1}})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == "sleeping"
    page = client.get(f"/runs/{run.id}").get_data(as_text=True)
    assert re.search(r"Sleeping in step <code>nap</code> until \d{4}-\d\d-\d\dT", page)

    runtime.clock.advance(3_600_000)
    tester.run_until_idle(advance_time=False)
    page = client.get(f"/runs/{run.id}").get_data(as_text=True)
    assert "for event <code>login.approved</code>" in page
    assert "event.data.id == async.data.id" in page

    refused = client.post(f"/runs/{run.id}/cancel", data={})  # no CSRF token
    assert refused.status_code == 403
    assert _post_form(client, run.id, "cancel").status_code == 303
    assert runtime.store.queries.get_run(run.id)["status"] == "cancelled"
    again = _post_form(client, run.id, "rerun", from_step="nope")
    assert again.status_code == 400 and "has no step &#39;nope&#39;" in again.get_data(as_text=True)


def test_the_failure_handler_run_and_the_original_link_both_ways(site):
    runtime, app, tester, _ = site
    jobs = Jobs("login-app2", runtime=runtime)

    @jobs.function("login-doomed", event="login.doomed", retries=0,
                   on_failure=lambda ctx, step: {"handled": True})
    def doomed(ctx, step):
        step.run("boom", lambda: 1 / 0)

    client = _logged_in(create_app(runtime))
    tester.send({"name": "login.doomed", "data": {}})
    runs = {r.function_id: r for r in tester.run_until_idle()}
    original = runs["login-doomed"]
    [handler] = [r for fid, r in runs.items() if fid != "login-doomed"]
    page = client.get(f"/runs/{original.id}").get_data(as_text=True)
    assert "Its failure handler ran as" in page and f"/runs/{handler.id}" in page
    back = client.get(f"/runs/{handler.id}").get_data(as_text=True)
    assert "Failure handler of" in back and f"/runs/{original.id}" in back
