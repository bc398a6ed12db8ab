"""The dashboard's events, functions, performance and health pages (issue 19), and the
performance summaries they read (``store/stats.py``, migration 0013)."""

from __future__ import annotations

import re

import pytest

from tengo_jobs import Jobs, NonRetriableError
from tengo_jobs.process.web import create_app
from tengo_jobs.store.stats import BUCKET_MS, SETTLE_MS, percentile
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import PASSWORD, bearer, form_token

MINUTE = 60_000


def _declare(jobs):
    """A function that takes 2 s per run (one 2 s step), and one that fails."""
    @jobs.function("perf-slow", event="perf.slow", retries=0)
    def slow(ctx, step):
        clock = jobs.runtime.clock

        def work():
            clock.advance(2_000)
            return "done"

        return step.run("work", work)

    @jobs.function("perf-broken", event="perf.broken", retries=0)
    def broken(ctx, step):
        def explode():
            raise NonRetriableError(f"gateway refused order {ctx.event.data['order']}")

        step.run("explode", explode)

    return slow, broken


# -- the roll-up -------------------------------------------------------------------------------
def test_the_roll_up_counts_each_finished_run_once_with_its_durations_and_errors(jobs, tester):
    _declare(jobs)
    runtime = jobs.runtime
    stats = runtime.store.stats
    t0 = runtime.clock.now()
    stats.roll_up(t0)  # the first pass: nothing yet
    for _ in range(3):
        tester.send({"name": "perf.slow", "data": {}})
    tester.send({"name": "perf.broken", "data": {"order": "A-1"}})
    tester.send({"name": "perf.broken", "data": {"order": "A-1"}})
    tester.run_until_idle()
    now = runtime.clock.now() + SETTLE_MS + 1
    first = stats.roll_up(now)
    assert first["runs"] == 5
    assert stats.roll_up(now)["runs"] == 0  # a second pass counts nothing again
    assert stats.roll_up(now + 5 * MINUTE)["runs"] == 0

    day = stats.series(window="24h", now=now)
    assert day["totals"] == {"started": 5, "completed": 3, "failed": 2, "cancelled": 0}
    slow = stats.series(window="1h", now=now, function_ids=["perf-slow"])
    assert slow["totals"]["completed"] == 3 and slow["totals"]["failed"] == 0
    assert 1_000 <= slow["duration"]["p50"] <= 2_500 and slow["duration"]["n"] == 3
    assert slow["step"]["n"] == 3 and 1_000 <= slow["step"]["p95"] <= 2_500
    assert len(slow["points"]) == 12 and sum(p["completed"] for p in slow["points"]) == 3

    per_fn = stats.per_function(window="24h", now=now)
    assert per_fn["perf-slow"]["success_rate"] == 1.0
    assert per_fn["perf-broken"]["success_rate"] == 0.0

    [top] = stats.top_errors(window="7d", now=now)
    assert top["function_id"] == "perf-broken" and top["n"] == 2
    assert top["message"] == "gateway refused order A-1"
    assert top["last_run_id"] in {r.id for r in tester.runs("perf-broken")}
    steps = stats.slowest_steps(window="24h", now=now)
    assert steps[0]["function_id"] == "perf-slow" and steps[0]["step"] == "work"
    assert {s["step"]: s["failed"] for s in steps}["explode"] == 2


def test_runs_that_end_after_a_pass_are_counted_by_the_next(jobs, tester):
    _declare(jobs)
    runtime = jobs.runtime
    stats = runtime.store.stats
    tester.send({"name": "perf.slow", "data": {}})
    tester.run_until_idle()
    stats.roll_up(runtime.clock.now() + SETTLE_MS + 1)
    runtime.clock.advance(BUCKET_MS)
    tester.send({"name": "perf.slow", "data": {}})
    tester.run_until_idle()
    assert stats.roll_up(runtime.clock.now() + 1)["runs"] == 0  # not settled yet
    assert stats.roll_up(runtime.clock.now() + SETTLE_MS + 1)["runs"] == 1
    series = stats.series(window="1h", now=runtime.clock.now() + SETTLE_MS + 1)
    assert series["totals"]["completed"] == 2
    assert [p["completed"] for p in series["points"] if p["completed"]] == [1, 1]


def test_percentiles_come_from_the_histogram():
    assert percentile([0] * 22, 0.5) is None
    hist = [0] * 22
    hist[7] = 10  # ten runs between 500 ms and 1 s
    assert 500 <= percentile(hist, 0.5) <= 1_000
    hist[21] = 1  # one over a day: the open bucket gives its lower bound
    assert percentile(hist, 1.0) == 86_400_000


# -- the pages ---------------------------------------------------------------------------------
@pytest.fixture
def site(tmp_path):
    """A runtime with a dashboard password, a few functions, the app and a logged-in client."""
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'pages.db'}", dashboard_password=PASSWORD)
    jobs = Jobs("pages-app", runtime=runtime)
    _declare(jobs)

    @jobs.function("pages-daily", cron="TZ=America/Argentina/Buenos_Aires 0 9 * * *")
    def daily(ctx, step):
        return "ok"

    @jobs.function("pages-limited", event="pages.limited",
                   rate_limit={"limit": 1, "period": "1h", "key": "event.data.user"})
    def limited(ctx, step):
        return ctx.event.data

    @jobs.function("pages-debounced", event="pages.limited",
                   debounce={"period": "30s", "key": "event.data.user"})
    def debounced(ctx, step):
        return ctx.event.data

    app = create_app(runtime)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = bearer()["Authorization"]
    yield runtime, client, JobsTester(runtime)
    runtime.close()


def _html(answer) -> str:
    return answer.get_data(as_text=True)


def test_events_are_listed_newest_first_filtered_by_name_and_paged(site):
    runtime, client, tester = site
    for i in range(3):
        tester.send({"name": "perf.slow", "data": {"i": i}})
        runtime.clock.advance(1)
    tester.send({"name": "perf.broken", "data": {"order": "B-2"}, "id": "order-B-2"})
    page = _html(client.get("/events"))
    assert page.index("order-B-2") < page.index('{"i": 2}') < page.index('{"i": 0}')
    only = _html(client.get("/events?name=perf.broken"))
    assert "order-B-2" in only and '"i"' not in only
    first = runtime.store.queries.list_events(limit=2)
    second = _html(client.get(f"/events?cursor={first['next_cursor']}"))
    assert '{"i": 0}' in second and "order-B-2" not in second


def test_an_event_page_shows_its_payload_dedupe_id_runs_and_why_a_function_started_none(site):
    runtime, client, tester = site
    [first] = tester.send({"name": "pages.limited", "data": {"user": "u-1"}, "id": "signup-u-1"})
    [second] = tester.send({"name": "pages.limited", "data": {"user": "u-1"}})
    page = _html(client.get(f"/events/{second}"))
    assert "skipped: rate-limited" in page  # pages-limited started nothing for the second event
    assert "never deduplicated" in page
    page = _html(client.get(f"/events/{first}"))
    [folded] = [d["run_id"] for d in runtime.store.queries.get_event(first)["flow_control"]
                if d["status"] == "debounced"]  # the debounced run moved to the later event
    assert re.search(rf'debounced into run <a href="/runs/{folded}">', page)
    assert "signup-u-1" in page and "Dedupe id" in page and "&#34;u-1&#34;" in page
    [run] = tester.runs("pages-limited")
    assert f"/runs/{run.id}" in page  # the run it started, linked
    assert client.get("/events/NOPE").status_code == 404


def test_send_test_event_keeps_what_was_typed_and_shows_each_error_next_to_its_field(site):
    runtime, client, tester = site
    token = form_token(client)
    bad = client.post("/events/send", data={"name": "perf.slow", "data": '{"user": ',
                                            "id": "x-1", "csrf_token": token})
    assert bad.status_code == 400
    page = _html(bad)
    error = re.search(r'<p class="error field-error" role="alert" id="data-error">([^<]+)</p>', page)
    assert error and "data" in error.group(1)
    assert '>{&#34;user&#34;: </textarea>' in page and 'value="x-1"' in page  # the text kept
    reserved = client.post("/events/send", data={"name": "inngest/x", "data": "{}",
                                                 "csrf_token": token})
    assert reserved.status_code == 400
    assert re.search(r'id="name-error">[^<]*reserved prefix', _html(reserved))
    not_object = client.post("/events/send", data={"name": "perf.slow", "data": "[1]",
                                                   "csrf_token": token})
    assert re.search(r'id="data-error">[^<]*must be a JSON object', _html(not_object))
    assert runtime.store.queries.list_events()["data"] == []
    good = client.post("/events/send", data={"name": "perf.slow", "data": '{"user": 1}',
                                             "csrf_token": token})
    assert good.status_code == 302 and "/events/" in good.headers["Location"]


def test_a_function_page_shows_its_cron_fires_in_its_zone_and_utc_and_its_settings(site):
    runtime, client, _ = site
    runtime.clock.set(1_767_225_600_000)  # 2026-01-01T00:00Z = 2025-12-31 21:00 in Buenos Aires
    page = _html(client.get("/functions/pages-daily"))
    assert "in America/Argentina/Buenos_Aires" in page
    assert "2026-01-01 09:00 -03 (Thu)" in page and "2026-01-01 12:00 UTC" in page
    assert "2026-01-05 09:00 -03 (Mon)" in page and "2026-01-06" not in page  # five fires
    limited = _html(client.get("/functions/pages-limited"))
    assert "rate_limit" in limited and "event.data.user" in limited
    assert client.get("/functions/nope").status_code == 404


def test_invoke_starts_a_run_of_that_function_only_and_bad_json_is_shown_inline(site):
    runtime, client, tester = site
    token = form_token(client, "/functions/pages-limited")
    bad = client.post("/functions/pages-limited/invoke", data={"data": "{nope", "csrf_token": token})
    assert bad.status_code == 400
    assert re.search(r'id="data-error">[^<]*data', _html(bad)) and ">{nope</textarea>" in _html(bad)
    good = client.post("/functions/pages-limited/invoke",
                       data={"data": '{"user": "u-9"}', "csrf_token": token})
    assert good.status_code == 303
    run_id = good.headers["Location"].rsplit("/", 1)[1]
    tester.run_until_idle()
    assert tester.output(tester.run(run_id)) == {"user": "u-9"}
    assert [r.id for r in tester.runs()] == [run_id]  # pages-debounced (same event name) did not run
    again = client.post("/functions/pages-limited/invoke",
                        data={"data": '{"user": "u-9"}', "csrf_token": token})
    assert again.status_code == 303  # an invocation is not an event: its rate limit is not asked
    assert client.post("/functions/nope/invoke", data={"data": "{}", "csrf_token": token}
                       ).status_code == 404


def test_pause_and_resume_from_the_function_page_and_the_badge_on_pages_that_list_it(site):
    runtime, client, tester = site
    token = form_token(client, "/functions/perf-slow")
    answer = client.post("/functions/perf-slow/pause", data={"csrf_token": token})
    assert answer.status_code == 303
    assert runtime.control.pause_state("perf-slow")["paused"]
    [event_id] = tester.send({"name": "perf.slow", "data": {}})
    badge = '<span class="status paused"'
    held = [f"/runs/{r.id}" for r in tester.runs() if r.function_id == "perf-slow"]
    for path in ("/functions/perf-slow", "/functions", f"/events/{event_id}",
                 "/performance?function=perf-slow", "/performance", "/?function=perf-slow",
                 *held):
        page = _html(client.get(path))
        assert badge in page, path
    assert "Resume" in _html(client.get("/functions/perf-slow"))
    client.post("/functions/perf-slow/resume", data={"csrf_token": token})
    assert not runtime.control.pause_state("perf-slow")["paused"]
    assert badge not in _html(client.get("/functions"))
    refused = client.post("/functions/perf-slow/pause")  # no form token
    assert refused.status_code == 403 and not runtime.control.pause_state("perf-slow")["paused"]


def test_the_performance_page_reads_the_summaries_per_window_and_function(site):
    runtime, client, tester = site
    for _ in range(2):
        tester.send({"name": "perf.slow", "data": {}})
    tester.send({"name": "perf.broken", "data": {"order": "<b>C-3</b>"}})
    tester.run_until_idle()
    empty = _html(client.get("/performance"))
    assert "no roll-up has run yet" in empty
    runtime.timekeeper.roll_up_stats(now=runtime.clock.now() + SETTLE_MS + 1)
    page = _html(client.get("/performance?window=1h"))
    assert re.search(r"completed <b>2</b>", page) and re.search(r"failed <b>1</b>", page)
    assert "gateway refused order &lt;b&gt;C-3&lt;/b&gt;" in page  # escaped, grouped
    assert "<code>work</code>" in page and '<svg class="chart"' in page
    fn_page = _html(client.get("/performance?window=7d&function=perf-broken"))
    assert re.search(r"completed <b>0</b>", fn_page) and re.search(r"failed <b>1</b>", fn_page)
    assert client.get("/performance?window=2y").status_code == 400
    functions = _html(client.get("/functions"))
    assert "100.0 %" in functions and "0.0 %" in functions  # success rates over 24 h
    assert '<svg class="chart"' in _html(client.get("/functions/perf-slow"))


def test_the_health_page_shows_database_broker_timers_and_processes(site):
    runtime, client, tester = site
    runtime.make_heartbeat("worker").beat_now()
    runtime.timekeeper.sweep()
    page = _html(client.get("/health"))
    assert re.search(r"<th>Database</th><td class=\"health-ok\">ok", page)
    assert re.search(r"<th>Broker</th><td class=\"health-ok\">ok", page)
    assert "Sweeper's last pass" in page and "lost wake-up(s) sent again" in page
    assert "<td>worker</td>" in page
    assert "none due: the timer poll is up to date" in page
    tester.send({"name": "perf.slow", "data": {}, "ts": runtime.clock.now() + 1_000})
    runtime.clock.advance(120_000)
    late = _html(client.get("/health"))
    assert "event timer of run" in late and "2.0 min ago" in late


def test_the_first_roll_up_counts_the_runs_of_the_last_week_created_and_ended(jobs, tester):
    _declare(jobs)
    runtime = jobs.runtime
    tester.send({"name": "perf.slow", "data": {}})
    tester.run_until_idle()
    runtime.clock.advance(3 * 3_600_000)
    tester.send({"name": "perf.broken", "data": {"order": "D-4"}})
    tester.run_until_idle()
    now = runtime.clock.now() + SETTLE_MS + 1
    assert runtime.store.stats.roll_up(now)["runs"] == 2  # no roll-up had run before
    day = runtime.store.stats.series(window="24h", now=now)
    assert day["totals"] == {"started": 2, "completed": 1, "failed": 1, "cancelled": 0}
