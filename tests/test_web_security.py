"""R11 (issue 8): the web app walked route by route, as an attacker would.

- every route of the URL map without credentials answers 401 (``/healthz`` is public;
  the event API with a bad key is a 401 as documented);
- a state-changing request behind the dashboard password that a cross-site page could
  make (a form post, ``text/plain``, another ``Origin``) is refused: 403, or 415 on the API;
- every response carries the security headers, errors and 404s included;
- XSS payloads in event names and data, step errors and function ids are inert on every
  dashboard page that shows them: the HTML parsed has no element, attribute or URL that
  came from a payload, and the payload is there as text;
- an oversize body is a 413 on the event API, the REST API and the dashboard.
"""

from __future__ import annotations

import html.parser
import re
from urllib.parse import quote

import pytest

import actors  # noqa: F401  (Tengo Lugar's pages and actions: part of the URL map walked)
from tengo_jobs import Jobs
from tengo_jobs.process.web import create_app, csrf
from tengo_jobs.process.web.headers import SECURITY_HEADERS
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import EVENT_KEY, PASSWORD, basic, bearer, form_token

PUBLIC = {"/healthz",  # liveness only (issue 8, R11)
          "/static/tj/dashboard.css", "/login"}  # style; the login form (test_web_login.py)
LOGOUT = "/logout"  # a form's token is all it takes (it ends a session, nothing more)
# An event key or the signing key (the SDK sync, as Inngest's dev server), not the password;
# SDKs post from anywhere, so no cross-site check either (tests/test_sdk_protocol.py).
EVENT_API = {"/e/<eventkey:event_key>", "/api/events", "/fn/register"}
SESSION_API = "/app/actions/"  # Tengo Lugar's actions: a session bearer token, never a cookie
EVIL = "https://evil.example"

SCRIPT = "<script>alert('tj-xss')</script>"
ATTR = '"><img src=x onerror=alert(1)>'
URL = "javascript:alert(document.domain)"
FN_ID = 'xss-"><img src=x onerror=alert(2)>'
EVENT_NAME = 'xss.<script>alert(3)</script>'


@pytest.fixture
def secured(tmp_path):
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'sec.db'}", event_keys=(EVENT_KEY,),
                                dashboard_password=PASSWORD)
    jobs = Jobs("xss-app", runtime=runtime)

    @jobs.function(FN_ID, event=EVENT_NAME, retries=0)
    def hostile(ctx, step):
        step.run(f"echo {SCRIPT}", lambda: {"html": SCRIPT, "attr": ATTR, "url": URL})
        step.run(ATTR, lambda: (_ for _ in ()).throw(ValueError(f"{SCRIPT} {ATTR} {URL}")))

    app = create_app(runtime)
    yield runtime, app, app.test_client()
    runtime.close()


def _routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "X", rule.rule)
            yield rule, method, path


def test_every_route_without_credentials_is_a_401(secured):
    _, app, client = secured
    seen = 0
    for rule, method, path in _routes(app):
        if rule.rule in PUBLIC or rule.rule == LOGOUT or rule.rule == "/fn/register":
            continue
        answer = client.open(path, method=method)
        if answer.status_code == 302:  # a dashboard page sends a browser to its login form
            assert method == "GET" and answer.headers["Location"].startswith("/login?"), rule
        else:
            assert answer.status_code == 401, (method, rule.rule, answer.status_code)
        seen += 1
    assert seen >= 14  # the dashboard, the API, metrics, the stylesheet, the event API, the app's
    for path in PUBLIC:
        assert client.get(path).status_code in (200, 503)
    # a key or password that is wrong, not missing, is a 401 as well
    assert client.post("/e/not-the-key", json={"name": "x"}).status_code == 401
    assert client.get("/api/runs", headers=bearer("wrong")).status_code == 401
    assert client.get("/", headers=basic("wrong")).status_code == 401


def test_security_headers_on_every_response(secured):
    _, app, client = secured
    answers = []
    for rule, method, path in _routes(app):
        answers.append(client.open(path, method=method))  # mostly 401s
        answers.append(client.open(path, method=method, headers=basic()))  # 200s, 400s, 404s…
    answers += [client.get("/no/such/page"), client.delete("/healthz"),  # 404, 405
                client.post(f"/e/{EVENT_KEY}", data="{", content_type="application/json"),  # 400
                client.post("/events/send", headers=basic(), data={"name": "x"})]  # 403
    assert {200, 400, 401, 403, 404, 405} <= {a.status_code for a in answers}
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.path, answer.status_code, name)
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


# -- cross-site request forgery -------------------------------------------------------------
def _protected_posts(app, client):
    """The state-changing routes behind the dashboard password (a browser's cached basic
    auth would reach them)."""
    out = []
    for rule, method, path in _routes(app):
        if method == "GET" or rule.rule in EVENT_API or rule.rule.startswith(SESSION_API):
            continue
        out.append((rule.rule, method, path))
    return out


def test_a_cross_site_form_post_with_cached_credentials_is_refused_everywhere(secured):
    runtime, app, client = secured
    posts = _protected_posts(app, client)
    assert {r for r, _, _ in posts} >= {"/events/send", "/api/runs/<run_id>/cancel",
                                        "/api/runs/<run_id>/replay"}
    hostile = [
        dict(data={"name": "forged", "data": "{}"}, headers={**basic(), "Origin": EVIL}),
        dict(data={"name": "forged", "data": "{}"},
             headers={**basic(), "Sec-Fetch-Site": "cross-site", "Origin": EVIL}),
        dict(data="{}", content_type="text/plain", headers={**basic(), "Referer": f"{EVIL}/x"}),
        dict(data={"name": "forged"}, headers=basic()),  # same origin, but no token
        dict(data='{"name": "forged"}', content_type="text/plain", headers=basic()),
    ]
    for rule, method, path in posts:
        for request in hostile:
            answer = client.open(path, method=method, **request)
            assert answer.status_code in (403, 415), (rule, request, answer.status_code)
    assert runtime.store.queries.list_events(limit=10)["data"] == []


def test_the_send_test_event_form_needs_its_token_and_this_origin(secured):
    runtime, app, client = secured
    token = form_token(client, headers=basic())
    form = {"name": "dash.sent", "data": '{"a": 1}', "csrf_token": token}
    refused = client.post("/events/send", data={**form, "csrf_token": "0." + "0" * 64},
                          headers=basic())
    assert refused.status_code == 403 and "CSRF token" in refused.get_data(as_text=True)
    cross = client.post("/events/send", data=form, headers={**basic(), "Origin": EVIL})
    assert cross.status_code == 403 and "evil.example" in cross.get_data(as_text=True)
    same_site = client.post("/events/send", data=form,
                            headers={**basic(), "Sec-Fetch-Site": "same-site"})
    assert same_site.status_code == 403
    for headers in ({}, {"Origin": "http://localhost"}, {"Referer": "http://localhost/events"},
                    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}):
        answer = client.post("/events/send", data=form, headers={**basic(), **headers})
        assert answer.status_code == 302, (headers, answer.get_data(as_text=True)[:300])
    assert len(runtime.store.queries.list_events(limit=10)["data"]) == 4


def test_form_tokens_expire_and_are_shared_by_the_web_processes_of_one_deployment(secured, tmp_path):
    runtime, app, _ = secured
    other_process = create_app(runtime)  # the same settings: another gunicorn worker
    other = make_test_runtime(f"sqlite:///{tmp_path / 'other.db'}", dashboard_password="another-pass-31")
    other_deployment = create_app(other)
    try:
        with app.app_context():
            token = csrf.issue_token(now=1_000_000)
            assert csrf.token_ok(token, now=1_000_000 + 3600)
            assert not csrf.token_ok(token, now=1_000_000 + csrf.TOKEN_MAX_AGE_S + 1)
            assert not csrf.token_ok(token[:-1] + ("0" if token[-1] != "0" else "1"), now=1_000_000)
            assert not csrf.token_ok("garbage", now=1_000_000)
        with other_process.app_context():
            assert csrf.token_ok(token, now=1_000_000)
        with other_deployment.app_context():
            assert not csrf.token_ok(token, now=1_000_000)
    finally:
        other.close()


def test_the_api_takes_json_bodies_only(secured):
    runtime, app, client = secured
    [event_id] = runtime.send({"name": EVENT_NAME})
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = client.post(f"/api/runs/{run['id']}/replay", data="{}", content_type=content_type,
                             headers=bearer())
        assert answer.status_code == 415, content_type
        assert "application/json" in answer.get_json()["error"]
        assert answer.get_json()["status"] == 415
    answer = client.post(f"/api/runs/{run['id']}/replay", data=b"{}", headers=bearer())  # no type
    assert answer.status_code == 415
    cross = client.post(f"/api/runs/{run['id']}/replay", json={}, headers={**bearer(), "Origin": EVIL})
    assert cross.status_code == 403 and cross.get_json()["status"] == 403
    # what scripts and the CLI send is unchanged
    assert client.post(f"/api/runs/{run['id']}/replay", json={}, headers=bearer()).status_code == 201
    assert client.post(f"/api/runs/{run['id']}/replay", headers=bearer()).status_code == 201


def test_the_event_api_still_takes_what_curl_and_the_sdks_send(secured):
    _, _, client = secured
    # curl -d sends application/x-www-form-urlencoded; Inngest's SDKs application/json, from
    # any origin: the event key in the URL is the credential
    for request in (dict(data='{"name": "curl.sent"}', content_type="application/x-www-form-urlencoded"),
                    dict(json={"name": "sdk.sent"}, headers={"Origin": EVIL}),
                    dict(data='{"name": "plain.sent"}', content_type="text/plain")):
        answer = client.post(f"/e/{EVENT_KEY}", **request)
        assert answer.status_code == 200, answer.get_json()
    answer = client.post("/api/events", data='[{"name": "a"}]', headers=bearer(EVENT_KEY),
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200


# -- XSS ------------------------------------------------------------------------------------
FORBIDDEN_TAGS = {"script", "img", "iframe", "object", "embed", "style", "base", "frame",
                  "frameset", "meta-refresh", "link-import"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster"}


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def _assert_inert(page: str, where: str) -> str:
    parsed = _Elements()
    parsed.feed(page)
    for tag, attrs in parsed.tags:
        if tag == "script" and (dict(attrs).get("src") or "").startswith("/static/tj/"):
            continue  # the dashboard's own script file (the runs page's live refresh)
        assert tag not in FORBIDDEN_TAGS, (where, tag, attrs)
        if tag == "link":
            assert dict(attrs).get("rel") == "stylesheet", (where, attrs)
        for name, value in attrs:
            assert not name.startswith("on"), (where, tag, name, value)
            assert name != "style", (where, tag, value)  # the CSP allows no inline style
            if name in URL_ATTRS and value:
                assert value.startswith(("/", "?", "#")), (where, tag, name, value)
    return "".join(parsed.text)


def test_xss_payloads_are_inert_on_every_page_that_shows_them(secured):
    runtime, app, client = secured
    [event_id] = runtime.send({"name": EVENT_NAME, "data": {"html": SCRIPT, "attr": ATTR, "url": URL}})
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    assert run["status"] == "failed"
    pages = {
        "/": [FN_ID, SCRIPT],  # the run's function and its error
        f"/?function={quote(FN_ID)}": [FN_ID],  # echoed in the filter's input
        f"/?status={quote(ATTR)}": [ATTR],  # echoed in the error
        f"/runs/{run['id']}": [FN_ID, SCRIPT, ATTR, URL],
        f"/runs/{quote(ATTR, safe='')}": [ATTR],  # "no run …" echoes the id
        "/events": [EVENT_NAME],
        f"/events/{event_id}": [EVENT_NAME, SCRIPT, ATTR, URL],
        "/functions": [FN_ID, EVENT_NAME],
        "/outbox": [],
        f"/events?name={quote(EVENT_NAME)}": [EVENT_NAME],  # echoed in the filter's input
        f"/functions/{quote(FN_ID, safe='')}": [FN_ID, EVENT_NAME],
        "/performance": [FN_ID, SCRIPT],  # per function, and the top errors
        f"/performance?function={quote(FN_ID, safe='')}": [FN_ID],
        "/health": [],
    }
    runtime.timekeeper.roll_up_stats(now=runtime.clock.now() + 60_000)
    for path, payloads in pages.items():
        answer = client.get(path, headers=basic())
        assert answer.status_code in (200, 400, 404), path
        page = answer.get_data(as_text=True)
        text = _assert_inert(page, path)
        for payload in payloads:
            assert payload in text or _json_escaped(payload) in page, (path, payload)
        assert "<script>" not in page and '"><img' not in page, path


def _json_escaped(payload: str) -> str:
    """How Flask's ``tojson`` writes a payload into HTML (``<`` as ``\\u003c``…)."""
    return (payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("'", "\\u0027").replace('"', '\\"'))


def test_dashboard_pages_use_no_inline_script_or_style(secured):
    runtime, app, client = secured
    runtime.send({"name": EVENT_NAME, "data": {}})
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.list_runs()["data"]
    for path in ("/", f"/runs/{run['id']}", "/events", "/functions", "/outbox", "/performance",
                 "/health", f"/functions/{quote(FN_ID, safe='')}"):
        page = client.get(path, headers=basic()).get_data(as_text=True)
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
        assert page.count("<script") == len(scripts) and not any(s.strip() for s in scripts), path
        assert all(src.startswith("/static/tj/") for src in
                   re.findall(r'<script src="([^"]*)"', page)), path  # files of this origin only
        assert "<style" not in page and " style=" not in page, path
        assert '<link rel="stylesheet" href="/static/tj/dashboard.css">' in page, path
    script = client.get("/static/tj/json-field.js", headers=basic())
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    css = client.get("/static/tj/dashboard.css", headers=basic())
    assert css.status_code == 200 and css.mimetype == "text/css" and b".bar rect" in css.data


# -- oversize bodies ------------------------------------------------------------------------
def test_oversize_bodies_are_413_on_the_event_api_the_rest_api_and_the_dashboard(secured):
    _, app, client = secured
    intake_limit = app.config["TENGO_MAX_REQUEST_BYTES"]
    form_limit = app.config["TENGO_MAX_FORM_BYTES"]
    big = b"[" + b'{"name": "x"},' * (intake_limit // 14) + b'{"name": "x"}]'
    answer = client.post(f"/e/{EVENT_KEY}", data=big, content_type="application/json")
    assert answer.status_code == 413 and answer.get_json()["status"] == 413
    body = b'{"from_step": "' + b"a" * form_limit + b'"}'
    answer = client.post("/api/runs/X/replay", data=body, content_type="application/json",
                         headers=bearer())
    assert answer.status_code == 413 and "limit" in answer.get_json()["error"]
    token = form_token(client, headers=basic())
    answer = client.post("/events/send", headers=basic(),
                         data={"name": "x", "data": "[" + "1," * form_limit + "1]", "csrf_token": token})
    assert answer.status_code == 413
    assert all(answer.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
