"""Event intake over HTTP (Flask test client): Inngest's /e/<key> and POST /api/events."""

from __future__ import annotations

import json

import pytest

from tengo_jobs import Jobs
from dramatiq.brokers.stub import StubBroker

from tengo_jobs import FakeClock, Runtime, Settings
from tengo_jobs.process.web import create_app
from tengo_jobs.core.events import MAX_EVENT_BYTES
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run

from procs import free_port
from webhelpers import EVENT_KEY, OTHER_KEY, bearer, make_app


@pytest.fixture
def web(tmp_path):
    runtime, app = make_app(tmp_path)
    jobs = Jobs(app_id="web-test", runtime=runtime)

    @jobs.function("on-signup", event="user.signup")
    def on_signup(ctx, step):
        return {"user": ctx.event.data.get("user")}

    yield runtime, app.test_client()
    runtime.close()


def test_one_event_is_stored_and_starts_its_run(web):
    runtime, client = web
    r = client.post(f"/e/{EVENT_KEY}", json={"name": "user.signup", "data": {"user": "ana"}})
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == 200 and len(body["ids"]) == 1
    row = EventRow.get_by_id(body["ids"][0])
    assert row.name == "user.signup" and json.loads(row.data) == {"user": "ana"}
    [run] = Run.select().where(Run.event_id == row.id)
    assert run.function_id == "on-signup" and run.status.value == "queued"


def test_a_batch_answers_one_id_per_event_in_order(web):
    runtime, client = web
    batch = [{"name": "user.signup", "data": {"user": f"u{i}"}} for i in range(5)]
    r = client.post(f"/e/{OTHER_KEY}", json=batch)
    assert r.status_code == 200
    ids = r.get_json()["ids"]
    assert len(ids) == 5
    assert [json.loads(EventRow.get_by_id(i).data)["user"] for i in ids] == [f"u{i}" for i in range(5)]
    assert Run.select().count() == 5


def test_api_events_takes_the_key_as_a_bearer_token(web):
    runtime, client = web
    r = client.post("/api/events", json={"name": "user.signup"}, headers=bearer(EVENT_KEY))
    assert r.status_code == 200 and len(r.get_json()["ids"]) == 1


def test_unknown_event_key_is_401_and_stores_nothing(web):
    runtime, client = web
    assert client.post("/e/not-a-key", json={"name": "user.signup"}).status_code == 401
    assert client.post("/api/events", json={"name": "user.signup"}).status_code == 401
    r = client.post("/api/events", json={"name": "user.signup"}, headers=bearer("wrong"))
    assert r.status_code == 401 and "event key" in r.get_json()["error"]
    assert EventRow.select().count() == 0


def test_development_accepts_any_event_key_like_inngest_dev_server(tmp_path):
    runtime, app = make_app(tmp_path, env="development", event_keys=())
    r = app.test_client().post("/e/whatever-key", json={"name": "x"})
    assert r.status_code == 200
    runtime.close()


def test_test_env_without_keys_accepts_none(tmp_path):
    runtime, app = make_app(tmp_path, event_keys=())
    assert app.test_client().post("/e/anything", json={"name": "x"}).status_code == 401
    runtime.close()


@pytest.mark.parametrize("body, field, index", [
    ({"data": {}}, "name", None),
    ({"name": 42}, "name", None),
    ({"name": "x", "data": [1, 2]}, "data", None),
    ({"name": "x", "data": "text"}, "data", None),
    ({"name": "x", "ts": "yesterday"}, "ts", None),
    ({"name": "x", "ts": 1.5}, "ts", None),
    ([{"name": "ok"}, {"name": "ok"}, {"name": "x", "data": 3}], "data", 2),
    ([{"name": "ok"}, {}], "name", 1),
    ("just a string", "event", None),
])
def test_bad_events_get_400_naming_field_and_index_and_nothing_is_stored(web, body, field, index):
    runtime, client = web
    r = client.post(f"/e/{EVENT_KEY}", json=body)
    assert r.status_code == 400
    err = r.get_json()
    assert err["status"] == 400 and err["field"] == field
    assert err.get("index") == index
    assert field in err["error"] or field == "event"
    assert EventRow.select().count() == 0 and Run.select().count() == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1,", b"\xff\xfe", b"", b"   "])
def test_malformed_or_empty_body_is_400(web, raw):
    runtime, client = web
    r = client.post(f"/e/{EVENT_KEY}", data=raw, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["field"] == "body"


def test_event_over_512_kib_is_413_and_nothing_is_stored(web):
    runtime, client = web
    big = {"name": "x", "data": {"blob": "a" * (MAX_EVENT_BYTES + 10)}}
    r = client.post(f"/e/{EVENT_KEY}", json=[{"name": "ok"}, big])
    assert r.status_code == 413
    assert r.get_json()["index"] == 1 and "512 KiB" in r.get_json()["error"]
    assert EventRow.select().count() == 0


def test_single_event_body_far_over_the_limit_is_refused_unparsed(web, monkeypatch):
    runtime, client = web
    import tengo_jobs.process.web.event_api as web_intake

    parsed = []
    monkeypatch.setattr(web_intake, "parse_json", lambda *a, **k: parsed.append(1))
    body = b'{"name": "x", "data": {"blob": "' + b"a" * (3 * MAX_EVENT_BYTES) + b'"}}'
    r = client.post(f"/e/{EVENT_KEY}", data=body, content_type="application/json")
    assert r.status_code == 413 and r.get_json()["field"] == "event"
    assert parsed == []


def test_more_than_5000_events_is_413(web):
    runtime, client = web
    r = client.post(f"/e/{EVENT_KEY}", json=[{"name": "x"}] * 5001)
    assert r.status_code == 413
    assert "5000" in r.get_json()["error"]
    assert EventRow.select().count() == 0


def test_request_over_the_request_limit_is_413_from_content_length(web):
    runtime, client = web
    # 11 MiB declared: refused before the body is read
    body = b"[" + b",".join([b'{"name":"x","data":{"b":"' + b"a" * 1000 + b'"}}'] * 11_000) + b"]"
    r = client.post(f"/e/{EVENT_KEY}", data=body, content_type="application/json")
    assert r.status_code == 413 and r.get_json()["field"] == "body"
    assert EventRow.select().count() == 0


def test_event_id_dedupes_within_24h_and_returns_the_original_id(web):
    runtime, client = web
    first = client.post(f"/e/{EVENT_KEY}", json={"name": "user.signup", "id": "signup-ana"})
    again = client.post(f"/e/{EVENT_KEY}", json={"name": "user.signup", "id": "signup-ana"})
    assert first.get_json()["ids"] == again.get_json()["ids"]
    assert Run.select().count() == 1


def test_future_ts_delays_the_run(web):
    runtime, client = web
    later = runtime.now() + 3_600_000
    r = client.post(f"/e/{EVENT_KEY}", json={"name": "user.signup", "ts": later})
    assert r.status_code == 200
    [run] = Run.select()
    assert run.wake_at == later and run.enqueued_at is None


def test_database_unavailable_is_503_never_2xx():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/gone?connect_timeout=1"
    runtime = Runtime(settings=Settings(database_url=url, env="test", event_keys=(EVENT_KEY,)),
                      broker=StubBroker(), clock=FakeClock(), set_global_broker=False)
    client = create_app(runtime).test_client()
    r = client.post(f"/e/{EVENT_KEY}", json={"name": "user.signup"})
    assert r.status_code == 503
    assert "database" in r.get_json()["error"]
    h = client.get("/healthz")
    assert h.status_code == 503 and h.get_json()["checks"]["database"].startswith("error")


def test_python_sdk_id_seed_makes_a_retried_request_start_nothing_twice(web):
    """The Python SDK retries a send after a 5xx or timeout with the same seed header."""
    runtime, client = web
    headers = {"X-Inngest-Event-Id-Seed": "1767225600000,kXpJM+AsFmctWQ=="}
    batch = [{"name": "user.signup", "data": {"i": 1}}, {"name": "user.signup", "data": {"i": 2}}]
    first = client.post(f"/e/{EVENT_KEY}", json=batch, headers=headers).get_json()["ids"]
    retry = client.post(f"/e/{EVENT_KEY}", json=batch, headers=headers).get_json()["ids"]
    assert first == retry and len(set(first)) == 2
    assert EventRow.select().count() == 2 and Run.select().count() == 2
    other = {"X-Inngest-Event-Id-Seed": "1767225600001,kXpJM+AsFmctWQ=="}
    client.post(f"/e/{EVENT_KEY}", json=batch, headers=other)
    assert Run.select().count() == 4


def test_malformed_id_seed_is_ignored(web):
    runtime, client = web
    for seed in ("garbage", "123,notbase64!!", "-5,kXpJM+AsFmctWQ==", "1,AAAA"):
        r = client.post(f"/e/{EVENT_KEY}", json={"name": "x"}, headers={"X-Inngest-Event-Id-Seed": seed})
        assert r.status_code == 200
    assert EventRow.select().where(EventRow.external_id.is_null(False)).count() == 0


def test_seeded_ids_are_ulids_that_sort_by_the_seed_time():
    from tengo_jobs.process.web.event_api import seeded_ids

    a = seeded_ids("1767225600000,kXpJM+AsFmctWQ==", 3)
    b = seeded_ids("1767225600001,AAAAAAAAAAAAAA==", 1)
    assert len(set(a)) == 3 and all(len(i) == 26 for i in a) and a[0] < b[0]


@pytest.mark.parametrize("field", ["name", "id", "v"])
def test_text_the_database_cannot_hold_is_400_not_500(web, field):
    runtime, client = web
    event = {"name": "ok", field: "bad\u0000text"}
    r = client.post(f"/e/{EVENT_KEY}", json=[{"name": "fine"}, event])
    assert r.status_code == 400
    assert r.get_json()["field"] == field and r.get_json()["index"] == 1
    raw = b'{"name": "lone \\udc00 surrogate"}'
    r = client.post(f"/e/{EVENT_KEY}", data=raw, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["field"] == "name"
    assert EventRow.select().count() == 0


@pytest.mark.parametrize("event, field", [({"name": "x", "ts": 10**19}, "ts"),
                                          ({"name": "x", "v": "v" * 65}, "v")])
def test_values_past_the_column_limits_are_400(web, event, field):
    runtime, client = web
    r = client.post(f"/e/{EVENT_KEY}", json=event)
    assert r.status_code == 400 and r.get_json()["field"] == field
