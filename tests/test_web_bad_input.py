"""Hostile input at the web boundary is a 4xx naming the problem, never a 500 (issue 8, item 4).

Each case ran into a 500 before: ``RecursionError`` on deeply nested JSON, ``int()`` on
``²`` or 4,300 digits, SQLite's 64-bit integers, PostgreSQL refusing NUL characters,
UTF-8 refusing lone surrogates. Every test runs on SQLite and on PostgreSQL, because
several defects belonged to one dialect.
"""

from __future__ import annotations

import json

import pytest
from flask import request
from werkzeug.exceptions import BadRequest

import actors  # noqa: F401  (Tengo Lugar's pages take the same checks)
from tengo_jobs import Jobs
from tengo_jobs.process.web import create_app
from tengo_jobs.process.web.params import MAX_JSON_DEPTH, MAX_TIME_MS, MIN_TIME_MS
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import EVENT_KEY, PASSWORD, basic, bearer, form_token

DEEP = "[" * 1000 + "]" * 1000  # 2 KB
DEEP_EVENT = '{"name": "x", "data": {"a": ' + DEEP + "}}"


@pytest.fixture(params=["sqlite", "postgresql"])
def web(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bad.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    runtime = make_test_runtime(url, event_keys=(EVENT_KEY,), dashboard_password=PASSWORD)
    jobs = Jobs("bad-input", runtime=runtime)

    @jobs.function("bad-input-fn", event="bad.input")
    def fn(ctx, step):
        return step.run("only", lambda: ctx.event.data)

    app = create_app(runtime)
    yield runtime, app.test_client(), app
    runtime.close()


def _run(runtime) -> dict:
    [event_id] = runtime.send({"name": "bad.input", "data": {"k": 1}})
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    return run


def _error(answer, status=400) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True)[:400])
    return answer.get_json()


# -- deep nesting ---------------------------------------------------------------------------
def test_deeply_nested_json_is_a_400_on_the_event_api(web):
    runtime, client, _ = web
    for body in (DEEP, DEEP_EVENT):
        body_error = _error(client.post(f"/e/{EVENT_KEY}", data=body, content_type="application/json"))
        assert body_error["field"] == "body" and f"{MAX_JSON_DEPTH} levels" in body_error["error"]
        _error(client.post("/api/events", data=body, headers=bearer(EVENT_KEY),
                           content_type="application/json"))
    assert runtime.store.queries.list_events()["data"] == []


def test_the_nesting_limit_is_exactly_the_documented_one(web):
    _, client, _ = web
    def event(depth):  # the event object is level 1, its data level 2
        return '{"name": "x", "data": ' + '{"a": ' * (depth - 2) + "{}" + "}" * (depth - 2) + "}"
    assert client.post(f"/e/{EVENT_KEY}", data=event(MAX_JSON_DEPTH),
                       content_type="application/json").status_code == 200
    _error(client.post(f"/e/{EVENT_KEY}", data=event(MAX_JSON_DEPTH + 1),
                       content_type="application/json"))
    batch = "[" + event(MAX_JSON_DEPTH - 1) + "]"  # the array counts
    assert client.post(f"/e/{EVENT_KEY}", data=batch, content_type="application/json").status_code == 200
    _error(client.post(f"/e/{EVENT_KEY}", data="[" + event(MAX_JSON_DEPTH) + "]",
                       content_type="application/json"))


def test_deeply_nested_json_is_a_400_on_the_api_and_the_dashboard(web):
    runtime, client, app = web
    run = _run(runtime)
    error = _error(client.post(f"/api/runs/{run['id']}/replay", data=DEEP,
                               content_type="application/json", headers=bearer()))
    assert error["field"] == "body" and "levels" in error["error"]
    page = client.post("/events/send", headers=basic(), data={
        "name": "bad.input", "data": '{"a": ' + DEEP + "}", "csrf_token": form_token(client, headers=basic())})
    assert page.status_code == 400 and f"{MAX_JSON_DEPTH} levels" in page.get_data(as_text=True)
    # request.get_json() in any blueprint (an application's) has the same limit
    with app.test_request_context("/", method="POST", data=DEEP, content_type="application/json"):
        assert request.get_json(silent=True) is None
        with pytest.raises(BadRequest):
            request.get_json()


def test_nan_infinity_and_out_of_range_floats_are_refused(web):
    _, client, _ = web
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = '{"name": "x", "data": {"n": ' + literal + "}}"
        error = _error(client.post(f"/e/{EVENT_KEY}", data=body, content_type="application/json"))
        assert "not valid JSON" in error["error"] and error["field"] == "body"
    huge_int = '{"name": "x", "data": {"n": 1' + "0" * 4300 + "}}"
    assert "4300" in _error(client.post(f"/e/{EVENT_KEY}", data=huge_int,
                                        content_type="application/json"))["error"]


# -- since / until --------------------------------------------------------------------------
BAD_TIMES = [
    ("²", "ASCII digits"),  # str.isdigit() is True, int() refuses it
    ("١٢٣", "ASCII digits"),  # Arabic-Indic digits: int() would accept them
    ("1" * 4300, "out of range"),  # past Python's int() string limit
    ("9" * 20, "out of range"),  # past SQLite's 64-bit integers
    ("-" + "9" * 19, "out of range"),
    (str(MAX_TIME_MS + 1), "out of range"),
    ("10000-01-01T00:00:00Z", "ISO 8601"),
    ("0001-01-01T00:00:00+05:00", "out of range"),
]


def test_bad_times_are_400_naming_the_parameter_and_the_range(web):
    _, client, _ = web
    for path in ("/api/events", "/api/runs"):
        for name in ("since", "until"):
            for value, says in BAD_TIMES:
                error = _error(client.get(path, query_string={name: value}, headers=bearer()))
                assert error["field"] == name and says in error["error"], (path, name, value)
                assert len(error["error"]) < 300  # a 4,300-digit value is not echoed whole
                if says == "out of range":
                    assert str(MIN_TIME_MS) in error["error"] and str(MAX_TIME_MS) in error["error"]


def test_times_at_the_edges_of_the_range_are_accepted(web):
    _, client, _ = web
    for value in (str(MIN_TIME_MS), str(MAX_TIME_MS), "0", "0001-01-01T00:00:00Z",
                  "9999-12-31T23:59:59.999Z", "2026-01-31T09:00:00-03:00"):
        answer = client.get("/api/runs", query_string={"since": value}, headers=bearer())
        assert answer.status_code == 200, (value, answer.get_json())


def test_bad_limits_are_400(web):
    _, client, _ = web
    for value in ("²", "1" * 4300, "9" * 20, "-1", "1.5"):
        error = _error(client.get("/api/events", query_string={"limit": value}, headers=bearer()))
        assert error["field"] == "limit" and len(error["error"]) < 200


# -- NUL and lone surrogates ----------------------------------------------------------------
def test_nul_in_dashboard_and_api_paths_and_filters_is_a_400(web):
    _, client, _ = web
    for path in ("/runs/a%00b", "/events/a%00b", "/?function=a%00b", "/?cursor=a%00b",
                 "/?status=a%00b", "/events?cursor=%00", "/?a%00=1", "/outbox?x=%00"):
        answer = client.get(path, headers=basic())
        assert answer.status_code == 400, (path, answer.get_data(as_text=True)[:300])
        assert "NUL" in answer.get_data(as_text=True), path
    for path in ("/api/runs/a%00b", "/api/events/a%00b", "/api/runs?function=%00",
                 "/api/events?name=a%00", "/api/runs?event_id=%00", "/api/runs/a%00/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        assert "NUL" in _error(client.open(path, method=method, headers=bearer()))["error"], path


def test_nul_and_lone_surrogates_in_json_bodies_are_refused_where_they_would_be_stored(web):
    runtime, client, _ = web
    run = _run(runtime)
    for text in ("a\x00b", "\ud800", "x\udfffy"):
        body = json.dumps({"from_step": text})  # ensure_ascii: the escapes travel as JSON
        error = _error(client.post(f"/api/runs/{run['id']}/replay", data=body,
                                   content_type="application/json", headers=bearer()))
        assert error["field"] == "from_step"
        for field in ("name", "id"):
            event = json.dumps({"name": "bad.input", field: text} if field == "id" else {"name": text})
            error = _error(client.post(f"/e/{EVENT_KEY}", data=event, content_type="application/json"))
            assert error["field"] == field


def test_lone_surrogates_in_stored_event_data_do_not_break_the_dashboard(web):
    runtime, client, _ = web
    body = json.dumps({"name": "bad.input", "data": {"text": "a\ud800b", "\udfff": "key"}})
    answer = client.post(f"/e/{EVENT_KEY}", data=body, content_type="application/json")
    assert answer.status_code == 200
    [event_id] = answer.get_json()["ids"]
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    for path in (f"/events/{event_id}", "/events", f"/runs/{run['id']}", "/"):
        page = client.get(path, headers=basic())
        assert page.status_code == 200, path
    assert "a\\ud800b" in client.get(f"/events/{event_id}", headers=basic()).get_data(as_text=True)
    api = client.get(f"/api/events/{event_id}", headers=bearer())
    assert api.status_code == 200 and json.loads(api.data)["data"]["text"] == "a\ud800b"


def test_percent_encoded_surrogates_in_urls_are_harmless(web):
    _, client, _ = web
    # a surrogate's UTF-8-like bytes (invalid UTF-8) are decoded to U+FFFD, never to a surrogate
    for path in ("/runs/%ED%A0%80", "/?function=%ED%A0%80", "/events/%ED%BF%BF"):
        assert client.get(path, headers=basic()).status_code in (200, 404), path
    for path in ("/api/runs/%ED%A0%80", "/api/runs?function=%ED%A0%80"):
        assert client.get(path, headers=bearer()).status_code in (200, 404), path


def test_an_unknown_query_parameter_is_a_400_naming_it(web):
    _, client, _ = web
    r = client.get("/api/runs?function_id=x", headers=bearer())
    assert r.status_code == 400
    assert r.get_json()["field"] == "function_id" and "function" in r.get_json()["error"]
    assert client.get("/api/events?nme=a", headers=bearer()).status_code == 400
    assert client.get("/api/runs?function=x&limit=5", headers=bearer()).status_code == 200
