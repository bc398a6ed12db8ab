"""The dashboard's events, functions, performance and health pages in a real browser (issue
19), on the fixtures of ``tests/test_dashboard_browser.py`` (Debian's Chromium driven by
Playwright against a live ``tengo-jobs dev``).

Send a test event from the form: invalid JSON is shown next to the field (as typed, by the
page's script, and after posting, by the server) with the text kept; fixed, the event's page
shows the run it started. A function is paused and resumed from its page, and invoked with a
JSON payload; the performance page charts the runs once the scheduler rolled them up; the
health page shows the processes' heartbeats. Each page is saved as a screenshot."""

from __future__ import annotations

import re

from test_dashboard_browser import browser, dev, login, page, send, shot, wait_for_run_status  # noqa: F401

BAD_JSON = '{"order": "B-1",'


def test_send_a_test_event_with_a_json_error_then_fixed_and_see_the_run_it_started(page, dev):
    base, files = dev
    files["flag"].write_text("fixed")
    login(page, base)
    page.goto(f"{base}/events")
    page.fill("form.send-event input[name=name]", "dash/charge")
    page.fill("form.send-event textarea[name=data]", BAD_JSON)
    page.wait_for_selector("#data-error:not([hidden])")  # the page's script, while typing
    page.click("form.send-event button")
    page.wait_for_load_state()
    error = page.text_content("#data-error")
    assert page.is_visible("#data-error") and "data" in error, error
    assert page.input_value("form.send-event textarea[name=data]") == BAD_JSON  # kept
    assert page.input_value("form.send-event input[name=name]") == "dash/charge"
    assert page.get_attribute("form.send-event textarea[name=data]", "aria-invalid") == "true"
    shot(page, "events-send-error")

    page.fill("form.send-event textarea[name=data]", '{"order": "B-1"}')
    page.click("form.send-event button")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/events/\w+$"))
    event_id = page.url.rsplit("/", 1)[1]
    run_id = wait_for_run_status(page, base, event_id, "completed")
    page.reload()
    row = page.locator("table.outcomes tr", has=page.locator("a", has_text="dash-charge"))
    assert row.locator(f"a[href='/runs/{run_id}']").count() == 1
    assert "completed" in row.text_content()
    assert '"order": "B-1"' in page.text_content("pre.event-data")
    shot(page, "event")
    page.goto(f"{base}/events")
    shot(page, "events")


def test_pause_resume_and_invoke_a_function_then_read_its_performance_and_health(page, dev):
    base, files = dev
    files["flag"].write_text("fixed")
    failed = send(base, "dash/hostile", {"payload": "gateway <b>down</b>"})
    wait_for_run_status(page, base, failed, "failed")
    login(page, base)

    page.goto(f"{base}/functions/dash-charge")
    page.click("section.actions button.pause")
    page.wait_for_url(f"{base}/functions/dash-charge")
    assert "paused" in page.text_content("h1")
    page.goto(f"{base}/functions")
    row = page.locator("table.functions tr", has=page.locator("a", has_text="dash-charge"))
    assert row.locator("span.status.paused").count() == 1
    shot(page, "functions")
    page.goto(f"{base}/functions/dash-charge")
    page.click("section.actions button.resume")
    page.wait_for_url(f"{base}/functions/dash-charge")
    assert "paused" not in page.text_content("h1")

    page.fill("form.invoke textarea[name=data]", '{"order": "INV-7"}')
    page.click("form.invoke button")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/runs/\w+$"))
    for _ in range(150):
        if "completed" in page.text_content("h1"):
            break
        page.wait_for_timeout(100)
        page.reload()
    assert "completed" in page.text_content("h1")
    assert '"charged": "INV-7"' in page.text_content("pre.output")

    # the scheduler rolls the runs up (every 5 s in dev, once they are 10 s old)
    for _ in range(60):
        page.goto(f"{base}/performance?window=1h")
        if "No failed runs in this window" not in page.text_content("table.top-errors"):
            break
        page.wait_for_timeout(1_000)
    assert "gateway <b>down</b>" in page.text_content("table.top-errors")  # as text
    assert page.locator("svg.chart rect.completed, svg.chart rect.failed").count() >= 1
    shot(page, "performance")
    page.goto(f"{base}/performance?window=24h&function=dash-charge")
    assert "dash-charge" in page.text_content("h1")
    for _ in range(60):  # the invoked run ended later: it is in the next roll-up
        page.goto(f"{base}/functions/dash-charge")
        if "completed 1" in " ".join(page.text_content("p.kpis").split()):
            break
        page.wait_for_timeout(1_000)
    assert "completed 1" in " ".join(page.text_content("p.kpis").split())
    assert page.locator("svg.chart rect.completed").count() == 1
    shot(page, "function")

    page.goto(f"{base}/health")
    assert page.text_content("table.health td") == "ok"
    assert "scheduler" in page.text_content("table.processes")
    shot(page, "health")
