"""The dashboard's runs page and run page (issue 19): filters, keyset pages, capped counts,
acting on selected runs, the live-refresh fragment, the Gantt timeline and why a run is not
running. On SQLite and PostgreSQL (``backend``)."""

from __future__ import annotations

import re

import pytest

from tengo_jobs import Jobs
from tengo_jobs.process.web import create_app
from tengo_jobs.process.web.timeline import gantt, tick_interval
from tengo_jobs.store import run_pages
from tengo_jobs.store.run_pages import RunFilters, RunPages
from tengo_jobs.testing import JobsTester
from webhelpers import form_token

HOUR = 3_600_000


@pytest.fixture
def site(backend):
    jobs = Jobs("dash-runs-test", runtime=backend)

    @jobs.function("dr-pay", event="dr/pay", retries=0)
    def pay(ctx, step):
        order = step.run("check", lambda: ctx.event.data["order"])
        if ctx.event.data.get("fail"):
            step.run("charge", _decline)
        return {"paid": order}

    @jobs.function("dr-nap", event="dr/nap")
    def nap(ctx, step):
        step.run("before", lambda: 1)
        step.sleep("long-nap", "6h")
        return "woke"

    @jobs.function("dr-flaky", event="dr/flaky", retries=3)
    def flaky(ctx, step):
        return step.run("fetch", lambda: _fail_twice(ctx.event.data["key"]))

    @jobs.function("dr-debounced", event="dr/typed",
                   debounce={"period": "10m", "key": "event.data.doc"})
    def debounced(ctx, step):
        return "saved"

    app = create_app(backend)
    return backend, app.test_client(), JobsTester(backend)


def _decline():
    raise ValueError("card declined <b>for real</b>")


_TRIES: dict[str, int] = {}


def _fail_twice(key: str) -> str:
    _TRIES[key] = _TRIES.get(key, 0) + 1
    if _TRIES[key] <= 2:
        raise ConnectionError(f"try {_TRIES[key]} <i>refused</i>")
    return "fetched"


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([0-9A-Z]{26})"', html)


def _send(runtime, tester, name, data, *, advance_ms=1000):
    [event_id] = runtime.send({"name": name, "data": data})
    tester.run_until_idle(advance_time=False)  # a sleeper stays asleep
    runtime.clock.advance(advance_ms)
    return runtime.store.queries.get_event(event_id)["runs"][0]["id"]


def test_runs_page_filters_by_status_function_time_event_name_and_data_text(site):
    runtime, client, tester = site
    start = runtime.clock.now()
    paid = _send(runtime, tester, "dr/pay", {"order": "A-1", "customer": "Lucía"})
    failed = _send(runtime, tester, "dr/pay", {"order": "B-2", "fail": True})
    runtime.clock.advance(2 * HOUR)
    napping = _send(runtime, tester, "dr/nap", {"who": "cat"})

    everything = _ids(client.get("/").get_data(as_text=True))
    assert everything == [napping, failed, paid]  # newest first

    def listed(query):
        answer = client.get("/?" + query)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return _ids(answer.get_data(as_text=True))

    assert listed("status=failed") == [failed]
    assert listed("function=dr-nap") == [napping]
    assert listed("function=dr-pay&status=completed") == [paid]
    assert listed("event=dr/nap") == [napping]
    assert listed("text=B-2") == [failed]
    assert listed("text=luc%C3%ADa") == [paid]  # in the stored data, case aside
    assert listed("text=50%25") == []  # % is a character to find, not a wildcard
    iso = lambda ms: __import__("datetime").datetime.utcfromtimestamp(ms / 1000).isoformat()  # noqa: E731
    assert listed(f"from={iso(start + HOUR)}") == [napping]
    assert listed(f"to={iso(start + HOUR)}") == [failed, paid]
    assert listed(f"from={iso(start)}&to={iso(start + HOUR)}&event=dr/pay&text=A-1") == [paid]


def test_bad_filters_are_a_400_naming_the_parameter(site):
    _, client, _ = site
    for query, name in (("status=sleepy", "status"), ("from=yesterday", "from"),
                        ("from=2026-02-01T00:00:00&to=2026-01-01T00:00:00", "from"),
                        ("cursor=not-a-cursor", "cursor"), ("text=" + "x" * 201, "text")):
        answer = client.get("/?" + query)
        assert answer.status_code == 400, query
        assert name in answer.get_data(as_text=True), query
        assert client.get("/runs-table?" + query).status_code == 400, query


def test_keyset_pages_go_to_older_runs_and_back_to_newer_ones(site):
    runtime, client, tester = site
    ids = [_send(runtime, tester, "dr/pay", {"order": f"P-{i}"}) for i in range(7)]
    newest_first = ids[::-1]
    pages = RunPages(runtime.store.queries.d)
    first = pages.page(RunFilters(), limit=3)
    assert [r["id"] for r in first["data"]] == newest_first[:3]
    assert first["prev_cursor"] is None
    second = pages.page(RunFilters(), cursor=first["next_cursor"], limit=3)
    assert [r["id"] for r in second["data"]] == newest_first[3:6]
    third = pages.page(RunFilters(), cursor=second["next_cursor"], limit=3)
    assert [r["id"] for r in third["data"]] == newest_first[6:] and third["next_cursor"] is None
    back = pages.page(RunFilters(), before=third["prev_cursor"], limit=3)
    assert [r["id"] for r in back["data"]] == newest_first[3:6]
    top = pages.page(RunFilters(), before=back["prev_cursor"], limit=3)
    assert [r["id"] for r in top["data"]] == newest_first[:3] and top["prev_cursor"] is None

    # by function (one index range per status, merged): the same pages across statuses
    mixed = [_send(runtime, tester, "dr/pay", {"order": f"M-{i}", "fail": i % 2 == 0})
             for i in range(4)][::-1] + newest_first
    _send(runtime, tester, "dr/nap", {})  # another function's, never listed
    seen, cursor = [], None
    while True:
        page = pages.page(RunFilters(function_id="dr-pay"), cursor=cursor, limit=4)
        seen += [r["id"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == mixed
    assert pages.page(RunFilters(function_id="dr-none"))["data"] == []

    # the page's links carry the cursor and the filters
    html = client.get("/?function=dr-pay").get_data(as_text=True)
    older = re.search(r'<a rel="next" href="([^"]+)"', html)
    assert older is None  # 11 runs fit one page of 50
    monkey_limit = client.get(f"/?function=dr-pay&cursor={newest_first[2]}").get_data(as_text=True)
    assert _ids(monkey_limit) == newest_first[3:]
    newer = re.search(r'<a rel="prev" href="([^"]+)"', monkey_limit).group(1).replace("&amp;", "&")
    assert "function=dr-pay" in newer and f"before={newest_first[3]}" in newer
    assert _ids(client.get(newer).get_data(as_text=True)) == mixed[:4] + newest_first[:3]


def test_counts_per_status_stop_at_the_cap(site, monkeypatch):
    runtime, client, tester = site
    for i in range(3):
        _send(runtime, tester, "dr/pay", {"order": f"C-{i}"})
    _send(runtime, tester, "dr/pay", {"order": "C-x", "fail": True})
    counts = RunPages(runtime.store.queries.d).status_counts(RunFilters())
    assert counts["completed"] == {"n": 3, "capped": False}
    assert counts["failed"] == {"n": 1, "capped": False} and counts["queued"]["n"] == 0
    monkeypatch.setattr(run_pages, "COUNT_CAP", 2)
    html = client.get("/").get_data(as_text=True)
    assert re.search(r"completed <b>2\+</b>", html) and re.search(r"failed <b>1</b>", html)
    only_nap = RunPages(runtime.store.queries.d).status_counts(RunFilters(function_id="dr-nap"))
    assert all(c["n"] == 0 for c in only_nap.values())


def test_event_filters_search_a_bounded_window_and_offer_the_older_runs(site, monkeypatch):
    runtime, client, tester = site
    wanted = _send(runtime, tester, "dr/pay", {"order": "needle-1"})
    for i in range(4):
        _send(runtime, tester, "dr/pay", {"order": f"hay-{i}"})
    monkeypatch.setattr(run_pages, "SEARCH_WINDOW", 3)
    html = client.get("/?text=needle").get_data(as_text=True)
    assert _ids(html) == []
    assert "among the newest 3 runs searched" in html
    link = re.search(r'<a rel="next" href="([^"]+)">Search older runs', html).group(1)
    assert _ids(client.get(link.replace("&amp;", "&")).get_data(as_text=True)) == [wanted]


def test_cancel_selected_cancels_the_checked_runs_and_counts_the_finished_as_refused(site):
    runtime, client, tester = site
    sleepers = [_send(runtime, tester, "dr/nap", {"n": i}) for i in range(3)]
    done = _send(runtime, tester, "dr/pay", {"order": "D-1"})
    token = form_token(client, "/")
    answer = client.post("/runs/selected", data={
        "csrf_token": token, "action": "cancel", "run_id": [sleepers[0], sleepers[1], done],
        "function": "dr-nap"})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert "function=dr-nap" in location
    statuses = {r: runtime.store.queries.run(r).status.value for r in [*sleepers, done]}
    assert statuses == {sleepers[0]: "cancelled", sleepers[1]: "cancelled",
                        sleepers[2]: "sleeping", done: "completed"}
    page = client.get(location).get_data(as_text=True)
    assert "Cancelled 2 runs; 1 could not be cancelled (already finished)" in page


def test_replay_selected_replays_finished_runs_only(site):
    runtime, client, tester = site
    failed = _send(runtime, tester, "dr/pay", {"order": "R-1", "fail": True})
    sleeping = _send(runtime, tester, "dr/nap", {})
    answer = client.post("/runs/selected", data={
        "csrf_token": form_token(client, "/"), "action": "replay", "run_id": [failed, sleeping]})
    assert answer.status_code == 303
    assert runtime.store.queries.get_run(failed)["replays"] != []
    assert runtime.store.queries.get_run(sleeping)["replays"] == []
    assert "Replayed 1 run; 1 could not be replayed (not finished)" in \
        client.get(answer.headers["Location"]).get_data(as_text=True)


def test_acting_on_selected_runs_needs_the_form_token_an_action_and_a_run(site):
    runtime, client, tester = site
    sleeper = _send(runtime, tester, "dr/nap", {})
    assert client.post("/runs/selected", data={"action": "cancel", "run_id": sleeper}
                       ).status_code == 403
    token = form_token(client, "/")
    nothing = client.post("/runs/selected", data={"csrf_token": token, "action": "cancel"})
    assert nothing.status_code == 400 and "run_id" in nothing.get_data(as_text=True)
    wrong = client.post("/runs/selected", data={"csrf_token": token, "action": "delete",
                                                 "run_id": sleeper})
    assert wrong.status_code == 400 and "action" in wrong.get_data(as_text=True)
    assert runtime.store.queries.run(sleeper).status.value == "sleeping"


def test_the_live_refresh_fragment_is_the_table_alone_with_new_runs(site):
    runtime, client, tester = site
    page = client.get("/?status=completed").get_data(as_text=True)
    assert '<script src="/static/tj/runs.js" defer></script>' in page
    assert 'data-src="/runs-table?status=completed"' in page
    before = client.get("/runs-table?status=completed").get_data(as_text=True)
    assert "<html" not in before and _ids(before) == []
    new = _send(runtime, tester, "dr/pay", {"order": "L-1"})
    assert _ids(client.get("/runs-table?status=completed").get_data(as_text=True)) == [new]
    script = client.get("/static/tj/runs.js")
    assert script.status_code == 200 and b"/runs-table" not in script.data  # URL from the page
    assert b"setInterval" in script.data


def test_run_page_draws_one_timeline_bar_per_step_and_labelled_gaps(site):
    runtime, client, tester = site
    napping = _send(runtime, tester, "dr/nap", {})
    html = client.get(f"/runs/{napping}").get_data(as_text=True)
    svg = re.search(r'<svg class="gantt".*?</svg>', html, flags=re.S).group(0)
    assert len(re.findall(r'<rect class="exec', svg)) == 1  # the "before" step
    gap = re.search(r'data-step="long-nap"><rect class="gap".*?<title>([^<]*)</title>', svg)
    assert gap and "sleep" in gap.group(1) and "until" in gap.group(1)
    assert re.search(r"Sleeping in step <code>long-nap</code> until \d{4}-", html)

    failed = _send(runtime, tester, "dr/pay", {"order": "G-1", "fail": True})
    html = client.get(f"/runs/{failed}").get_data(as_text=True)
    svg = re.search(r'<svg class="gantt".*?</svg>', html, flags=re.S).group(0)
    assert len(re.findall(r'<rect class="exec', svg)) == 2
    assert len(re.findall(r'<rect class="exec failed"', svg)) == 1
    assert "<b>for real</b>" not in html and "&lt;b&gt;for real&lt;/b&gt;" in html
    assert "&#34;order&#34;: &#34;G-1&#34;" in html  # the triggering event's payload, escaped


def test_a_debounced_run_says_it_is_debounced_and_until_when(site):
    runtime, client, tester = site
    [event_id] = runtime.send({"name": "dr/typed", "data": {"doc": "d-1"}})
    tester.run_until_idle(advance_time=False)
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    assert run["status"] == "queued"
    why = re.search(r'<section class="why".*?</section>', client.get(
        f"/runs/{run['id']}").get_data(as_text=True), flags=re.S).group(0)
    assert "Debounced on key <code>d-1</code>: due at" in why


def test_timeline_puts_overlapping_steps_on_lanes_of_their_own_and_escapes_labels():
    t0 = 1_767_225_600_000

    def iso(ms):
        from tengo_jobs.durations import ms_to_iso
        return ms_to_iso(t0 + ms)

    run = {"created_at": iso(0), "started_at": iso(100), "ended_at": iso(1000),
           "status": "completed"}
    steps = [{"key": "a", "kind": "run", "status": "completed", "attempts": 1,
              "started_at": iso(200), "ended_at": iso(500)},
             {"key": "<b>", "kind": "run", "status": "completed", "attempts": 3,
              "started_at": iso(250), "ended_at": iso(600)},
             {"key": "c", "kind": "sleep", "status": "completed", "attempts": 1,
              "started_at": iso(600), "ended_at": iso(900)}]
    chart = gantt(run, steps, now=t0 + 5000)
    lanes = {b["step"]: b["y"] for b in chart["bars"] if b["step"] and b["kind"] != "queue"}
    assert lanes["a"] != lanes["<b>"]  # parallel: two lanes
    assert lanes["c"] in (lanes["a"], lanes["<b>"])  # after them: a lane is free again
    kinds = [(b["kind"], b["step"]) for b in chart["bars"]]
    assert ("queue", "a") in kinds and ("exec", "a") in kinds and ("gap", "c") in kinds
    assert any("×3 attempts" in b["label"] for b in chart["bars"])
    assert [t["label"] for t in chart["ticks"]][:3] == ["0", "+200ms", "+400ms"]  # 1 s span, 8 ticks
    assert tick_interval(60_000) == 10_000 and tick_interval(7) == 1


def _flaky_run(runtime, tester, key):
    key = f"{key}-{runtime.store.dialect.name}"  # counted per database
    [event_id] = runtime.send({"name": "dr/flaky", "data": {"key": key}})
    tester.run_until_idle()  # time advances through the two backoffs
    return runtime.store.queries.get_event(event_id)["runs"][0]["id"]


@pytest.mark.runtime_settings(retry_base_ms=2_000, retry_max_ms=60_000)
def test_a_step_that_failed_twice_lists_each_failed_attempt_and_draws_a_bar_per_attempt(site):
    runtime, client, tester = site
    run_id = _flaky_run(runtime, tester, "twice")
    run = runtime.store.queries.get_run(run_id)
    assert run["status"] == "completed"
    [fetch] = run["steps"]
    assert fetch["attempts"] == 3 and fetch["status"] == "completed"
    log = fetch["attempts_log"]
    assert [a["attempt"] for a in log] == [1, 2]
    assert [a["error"]["message"] for a in log] == ["try 1 <i>refused</i>",
                                                    "try 2 <i>refused</i>"]
    assert all(a["error"]["name"] == "ConnectionError" and "stack" in a["error"] for a in log)
    assert log[0]["started_at"] <= log[0]["ended_at"] < log[0]["retry_at"] <= log[1]["started_at"]
    html = client.get(f"/runs/{run_id}").get_data(as_text=True)
    svg = re.search(r'<svg class="gantt".*?</svg>', html, flags=re.S).group(0)
    bars = re.findall(r'data-step="fetch"><rect class="(exec[^"]*)"', svg)
    assert bars == ["exec failed", "exec failed", "exec"]
    assert len(re.findall(r'data-step="fetch"><rect class="backoff"', svg)) == 2
    assert "Attempt 1 failed" in html and "Attempt 2 failed" in html
    assert "<i>refused</i>" not in html and "try 2 &lt;i&gt;refused&lt;/i&gt;" in html
    assert html.count('<details class="stack">') >= 2


def test_a_run_whose_steps_succeed_at_once_logs_no_attempt(site):
    from tengo_jobs.store.schema import StepAttemptRow
    runtime, client, tester = site
    run_id = _send(runtime, tester, "dr/pay", {"order": "H-1"})
    run = runtime.store.queries.get_run(run_id)
    assert run["status"] == "completed"
    assert [s["attempts_log"] for s in run["steps"]] == [[]]
    assert StepAttemptRow.select().where(StepAttemptRow.run_id == run_id).count() == 0


def test_the_run_api_returns_each_steps_failed_attempts(site):
    runtime, client, tester = site
    run_id = _flaky_run(runtime, tester, "api")
    answer = client.get(f"/api/runs/{run_id}")
    if answer.status_code == 401:
        pytest.skip("the API needs a key in this configuration")
    [fetch] = answer.get_json()["steps"]
    assert [a["attempt"] for a in fetch["attempts_log"]] == [1, 2]


def test_timeline_draws_a_backing_off_step_and_a_step_failed_for_good_attempt_by_attempt():
    from tengo_jobs.durations import ms_to_iso
    t0 = 1_767_225_600_000

    def iso(ms):
        return ms_to_iso(t0 + ms)

    def failed(n, start, end, retry_at):
        return {"attempt": n, "started_at": iso(start), "ended_at": iso(end),
                "retry_at": retry_at and iso(retry_at),
                "error": {"name": "IOError", "message": f"<try {n}>"}}

    run = {"created_at": iso(0), "started_at": iso(0), "status": "running"}
    backing_off = {"key": "b", "kind": "run", "status": "retrying", "attempts": 2,
                   "started_at": iso(0), "ended_at": None,
                   "attempts_log": [failed(1, 0, 100, 1000), failed(2, 1000, 1200, 5000)]}
    chart = gantt(run, [backing_off], now=t0 + 2000, wakes={"b": t0 + 5000})
    kinds = [b["kind"] for b in chart["bars"] if b["step"] == "b"]
    assert kinds == ["exec failed", "backoff", "exec failed", "backoff"]
    assert "IOError: <try 2>" in chart["bars"][-2]["title"]  # escaped by the template

    for_good = {"key": "g", "kind": "run", "status": "failed", "attempts": 2,
                "started_at": iso(0), "ended_at": iso(1500),
                "attempts_log": [failed(1, 0, 100, 1000), failed(2, 1000, 1500, None)]}
    chart = gantt({**run, "ended_at": iso(1500), "status": "failed"}, [for_good], now=t0 + 2000)
    bars = [b for b in chart["bars"] if b["step"] == "g"]
    assert [b["kind"] for b in bars] == ["exec failed", "backoff", "exec failed"]
    assert bars[-1]["title"].startswith("g: failed, 500ms")  # the last attempt's own start
