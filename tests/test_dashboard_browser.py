"""The dashboard in a real browser (issue 19): Playwright driving Debian's Chromium
(``/usr/bin/chromium``; ``.ci/run`` installs it) against a live ``tengo-jobs dev``.

An on-call engineer's path: log in; find the failed run through the filters; open it; read
the error and its stack; fix the condition (a flag file the step reads) and rerun from the
failed step; see the run complete with the earlier step not run again; cancel a sleeping run.
And the boundary: an XSS payload in event data and in a step error renders as text, a POST
without a CSRF token is refused. Every page visited is saved as a screenshot under
``$TEST_ARTIFACTS_DIR/dashboard`` (default ``test-artifacts/dashboard``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests

from conftest import require_tool, unavailable
from procs import ROOT, Proc, free_port, process_env
from test_dev import _dev_command, wait_healthy

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "browser-dash-pass-3c9e"
XSS = "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>"
SHOTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "test-artifacts")) / "dashboard"


@pytest.fixture(scope="module")
def browser():
    require_tool(CHROMIUM, "Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def dev(tmp_path):
    """A live ``tengo-jobs dev`` with a dashboard password; yields (base URL, files)."""
    port = free_port()
    files = {"flag": tmp_path / "gateway-fixed", "calls": tmp_path / "calls.txt"}
    env = process_env(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'dash.db'}",
                      TENGO_FUNCTIONS="dash_funcs.browser_funcs", TENGO_ENV="development",
                      TENGO_DASHBOARD_PASSWORD=PASSWORD, DASH_FLAG_FILE=str(files["flag"]),
                      DASH_CALLS_FILE=str(files["calls"]))
    env.pop("REDIS_URL", None)
    proc = Proc(_dev_command(), env, tmp_path / "dev.log", cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, timeout=30)
        yield base, files
    finally:
        proc.stop()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def send(base: str, name: str, data: dict) -> str:
    answer = requests.post(f"{base}/e/dev-key", json={"name": name, "data": data}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()["ids"][0]


def api(base: str, path: str) -> dict:
    answer = requests.get(f"{base}/api{path}", headers={"Authorization": f"Bearer {PASSWORD}"},
                          timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_run_status(page, base: str, event_id: str, status: str) -> str:
    """The id of the event's run once it is ``status`` (polled through the API)."""
    def current():
        runs = api(base, f"/events/{event_id}").get("runs") or []
        return runs[0]["id"] if runs and runs[0]["status"] == status else None

    for _ in range(300):
        run_id = current()
        if run_id:
            return run_id
        page.wait_for_timeout(100)
    raise AssertionError(f"the run of event {event_id} never became {status}")


def login(page, base: str) -> None:
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login"), page.url
    shot(page, "login")
    page.fill("input[name=password]", "wrong")
    page.click("form.login button")
    assert "wrong password" in page.text_content("form.login")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button")
    page.wait_for_url(f"{base}/")
    assert page.is_visible("text=Log out")


def test_find_a_failed_run_rerun_it_from_the_failed_step_and_cancel_a_sleeper(page, dev):
    base, files = dev
    failed_event = send(base, "dash/charge", {"order": "A-17"})
    sleeper_event = send(base, "dash/nap", {})
    failed_id = wait_for_run_status(page, base, failed_event, "failed")
    sleeper_id = wait_for_run_status(page, base, sleeper_event, "sleeping")
    login(page, base)
    shot(page, "runs")

    # find it through the filters
    page.select_option("select[name=status]", "failed")
    page.fill("input[name=function]", "dash-charge")
    page.click("main form button")
    page.wait_for_url(re.compile(r".*status=failed.*"))
    assert page.locator(f"a[href='/runs/{sleeper_id}']").count() == 0
    shot(page, "runs-filtered")
    page.click(f"a[href='/runs/{failed_id}']")
    page.wait_for_url(f"{base}/runs/{failed_id}")

    # read the error and its stack
    assert "card declined for order A-17" in page.text_content("table.steps")
    page.click("details.stack summary")
    stack = page.text_content("details.stack pre")
    assert "Traceback (most recent call last)" in stack and "browser_funcs.py" in stack
    assert '"order": "A-17"' in page.text_content("pre.event-data")
    shot(page, "run-failed")

    # fix the condition, rerun from the failed step
    files["flag"].write_text("fixed")
    row = page.locator("table.steps tr", has=page.locator("code", has_text=re.compile("^charge$")))
    row.locator("details.rerun-from summary").click()
    row.locator("button", has_text="Rerun from charge").click()
    page.wait_for_url(re.compile(rf"{re.escape(base)}/runs/(?!{failed_id})\w+$"))
    new_id = page.url.rsplit("/", 1)[1]
    for _ in range(200):
        if "completed" in page.text_content("h1"):
            break
        page.wait_for_timeout(100)
        page.reload()
    assert "completed" in page.text_content("h1")
    assert '"charged": "A-17"' in page.text_content("pre.output")
    assert f"/runs/{failed_id}" in page.inner_html("main")  # linked to the run it reruns
    assert files["calls"].read_text().split() == ["prepare", "charge", "charge"]  # prepare kept
    shot(page, "run-rerun-completed")

    # cancel a sleeping run
    page.goto(f"{base}/runs/{sleeper_id}")
    assert re.search(r"Sleeping in step long-nap until \d{4}-", page.text_content("section.why"))
    shot(page, "run-sleeping")
    page.click("section.actions button.danger")
    page.wait_for_url(f"{base}/runs/{sleeper_id}")
    assert "cancelled" in page.text_content("h1")
    assert api(base, f"/runs/{sleeper_id}")["status"] == "cancelled"

    for path, name in (("/events", "events"), ("/functions", "functions"),
                       (f"/events/{failed_event}", "event")):
        page.goto(base + path)
        shot(page, name)

    page.click("header form.logout button")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")


def test_xss_payloads_render_as_text_and_a_post_without_a_token_is_refused(page, dev):
    base, _ = dev
    event_id = send(base, "dash/hostile", {"payload": XSS})
    run_id = wait_for_run_status(page, base, event_id, "failed")
    login(page, base)
    for path in (f"/runs/{run_id}", f"/events/{event_id}", "/", "/events"):
        page.goto(base + path)
        assert page.evaluate("window.__xss === undefined"), path
        assert page.locator("main img[src=x]").count() == 0, path
    page.goto(f"{base}/runs/{run_id}")
    assert XSS in page.text_content("table.steps")  # the step error, as text
    assert XSS in page.text_content("pre.event-data")  # the event data, as text
    shot(page, "run-xss-as-text")

    # a same-origin POST without the form's token (the session cookie goes with it)
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', body: new URLSearchParams({})}))
               .status""", f"{base}/runs/{run_id}/rerun")
    assert status == 403
    assert api(base, f"/runs/{run_id}")["replays"] == []


def test_runs_page_finds_by_event_data_refreshes_live_cancels_selected_and_draws_the_timeline(
        page, dev):
    base, _ = dev
    failed_event = send(base, "dash/charge", {"order": "Z-99"})
    nap_events = [send(base, "dash/nap", {"n": n}) for n in range(2)]
    failed_id = wait_for_run_status(page, base, failed_event, "failed")
    nappers = [wait_for_run_status(page, base, e, "sleeping") for e in nap_events]
    login(page, base)

    # find the failed run by its event's name and a text in its data, then by status
    page.fill("input[name=event]", "dash/charge")
    page.fill("input[name=text]", "z-99")  # case aside
    page.click("form.filters button")
    page.wait_for_url(re.compile(r".*text=z-99.*"))
    assert page.locator("table.runs tbody tr[data-run]").count() == 1
    assert page.locator(f"tr[data-run='{failed_id}']").count() == 1
    page.goto(f"{base}/?status=failed&function=dash-charge")
    assert page.locator(f"tr[data-run='{failed_id}']").count() == 1
    assert page.locator("tr[data-run]").count() == 1
    assert page.text_content("ul.counts a.failed b") == "1"
    assert page.text_content("ul.counts a.sleeping b") == "0"  # counts keep the function filter

    # live refresh: a run started now shows up without a reload
    page.goto(f"{base}/")
    page.evaluate("window.__same_page = true")
    late_event = send(base, "dash/nap", {"late": True})
    late_id = wait_for_run_status(page, base, late_event, "sleeping")
    page.wait_for_selector(f"tr[data-run='{late_id}']", timeout=20_000)
    assert page.evaluate("window.__same_page === true")  # no navigation happened
    shot(page, "runs")

    # select two sleeping runs and cancel them (the confirmation accepted)
    page.on("dialog", lambda dialog: dialog.accept())
    for run_id in nappers:
        page.check(f"tr[data-run='{run_id}'] input[name=run_id]")
    shot(page, "runs-selected")
    page.click("button[value=cancel]")
    page.wait_for_selector("p.notice")
    assert "Cancelled 2 runs" in page.text_content("p.notice")
    for run_id in nappers:
        assert api(base, f"/runs/{run_id}")["status"] == "cancelled"
    assert api(base, f"/runs/{late_id}")["status"] == "sleeping"

    # the run's timeline: one bar per step attempt, the failed one marked
    page.goto(f"{base}/runs/{failed_id}")
    gantt = page.locator("svg.gantt")
    assert gantt.count() == 1
    assert gantt.locator("rect.exec").count() == 2  # prepare and charge, one attempt each
    assert gantt.locator("rect.exec.failed").count() == 1
    assert gantt.locator("g[data-step='charge'] rect.exec title").text_content().startswith(
        "charge: failed")
    shot(page, "run-timeline")
    page.goto(f"{base}/runs/{late_id}")
    assert page.locator("svg.gantt g[data-step='long-nap'] rect.gap").count() == 1
    assert re.search(r"Sleeping in step long-nap until \d{4}-", page.text_content("section.why"))
