"""Tengo Lugar's eight TypeScript functions, as their document writes them, run here unchanged.

``tests/js/seed/functions.mjs`` holds the team's code (side effects go to an in-memory
recorder the app serves at ``/recorded``); ``tests/js/seed_app.mjs`` serves it with inngest
3.32.7's ``inngest/express`` adapter (what the team's Next.js handler mirrors), and a second
process serves ``notify-trip-update`` alone with ``inngest/node`` under another app id. Both
are synced with a ``PUT`` to their serve endpoint; the seed's events are sent with the
official TypeScript client; every check reads our REST API (runs, run detail with steps) and
the app's recorder. One ``tengo-jobs dev`` server (SQLite) and the two apps serve the module.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from sdk_stack import (DevServer, node_app, require_node_sdk, runs_of, send, steps_by_name,
                       wait_run)
from procs import wait_until

pytestmark = pytest.mark.integration

APP, NODE_APP = "tengo-lugar", "tengo-lugar-node"
SEED_FUNCTIONS = ["send-verification-email", "process-payment", "daily-trip-reminder",
                  "payment-reminder", "welcome-sequence", "notify-trip-update",
                  "process-document", "unstable-operation"]


def fn(local_id: str, app: str = APP) -> str:
    return f"{app}-{local_id}"


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    node = require_node_sdk("express")
    tmp = tmp_path_factory.mktemp("seed")
    server = DevServer(tmp)
    apps = []
    try:
        apps.append(node_app(node, server, tmp, "seed_app.mjs", "express", name="express",
                             SEED_SLEEP="1s"))
        apps.append(node_app(node, server, tmp, "seed_app.mjs", "node", "notify-trip-update",
                             name="node", SEED_APP_ID=NODE_APP))
        synced = [app.sync() for app in apps]
        yield node, server, apps[0], apps[1], synced
    finally:
        for app in apps:
            app.stop()
        server.stop()


def _recorded(app, kind: str, **match) -> list[dict]:
    return [r for r in app.recorded()
            if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]


def test_the_express_app_registers_the_eight_functions_and_the_node_app_its_one(seed):
    node, server, express, node_served, synced = seed
    assert "registered" in synced[0]["message"] and "registered 1 function(s)" in synced[1]["message"]
    apps = {a["app_id"]: a for a in server.get("/api/apps")["apps"]}
    assert apps[APP]["url"] == express.serve_url and apps[APP]["framework"] == "express"
    assert apps[NODE_APP]["url"] == node_served.serve_url and apps[NODE_APP]["framework"] == "nodejs"
    assert apps[APP]["sdk"] == apps[NODE_APP]["sdk"] == "js:v3.32.7"
    registered = {f["id"]: f for f in server.get("/api/functions")["data"]}
    assert {fn(f) for f in SEED_FUNCTIONS} | {fn("notify-trip-update", NODE_APP)} <= set(registered)
    assert registered[fn("welcome-sequence")]["triggers"] == [{"event": "user.registered"}]
    assert registered[fn("process-document")]["retries"] == 3
    assert registered[fn("process-payment")]["retries"] == 3  # Inngest's default


def test_verification_email_reads_the_document_then_sends_one_email(seed):
    node, server, express, _, _ = seed
    [found, missing] = send(node, server.base, *[
        {"name": "document-verification-email",
         "data": {"userId": "user-ana", "email": "ana@example.com", "documentId": doc,
                  "type": "verification"}} for doc in ("doc-1", "doc-missing")])
    run = wait_run(server, found)
    assert run["output"] == {"success": True, "documentId": "doc-1"}
    assert [s["name"] for s in run["steps"]] == ["get-document", "send-email"]
    assert run["steps"][0]["output"]["user"]["name"] == "Ana"
    [email] = _recorded(express, "email", to="ana@example.com", template="document-verification")
    assert email["data"] == {"userName": "Ana", "documentType": "verification", "documentId": "doc-1"}

    # The team throws outside any step: the whole function is retried (3 retries), then fails.
    failed = wait_run(server, missing, status="failed")
    assert "Document doc-missing not found" in failed["error"]["message"]
    assert failed["attempt"] == 3
    assert [s["name"] for s in failed["steps"]] == ["get-document"]
    assert failed["steps"][0]["output"] is None and failed["steps"][0]["attempts"] == 1


def test_process_payment_runs_four_steps_and_the_gateway_decides_the_notification(seed):
    node, server, express, _, _ = seed
    approved, declined = send(node, server.base, *[
        {"name": "payment.submitted", "data": {"paymentId": pid, "userId": "user-carla", "amount": 1}}
        for pid in ("pay-1", "pay-declined")])
    run = wait_run(server, approved)
    assert run["output"] == {"success": True, "paymentId": "pay-1", "status": True}
    steps = steps_by_name(run)
    assert list(steps) == ["validate-payment", "process-gateway", "update-status", "send-notification"]
    assert steps["process-gateway"]["output"] == {"success": True, "transactionId": "tx-1500-ARS"}
    assert steps["update-status"]["output"]["status"] == "APPROVED"

    run = wait_run(server, declined)
    assert run["output"] == {"success": True, "paymentId": "pay-declined", "status": False}
    assert steps_by_name(run)["update-status"]["output"]["status"] == "REJECTED"
    titles = [r["title"] for r in _recorded(express, "notification", userId="user-carla")
              if r["link"] in ("/payments/pay-1", "/payments/pay-declined")]
    assert sorted(titles) == ["Payment Approved", "Payment Rejected"]


def test_welcome_sequence_sleeps_between_its_three_emails(seed):
    node, server, express, _, _ = seed
    [event] = send(node, server.base, {"name": "user.registered", "data": {
        "userId": "user-dora", "email": "dora@example.com", "name": "Dora"}})
    run = wait_run(server, event)
    assert run["output"] == {"success": True, "emailsSent": 3}
    assert [(s["name"], s["kind"], s["status"]) for s in run["steps"]] == [
        ("send-welcome-email", "run", "completed"), ("delay-after-welcome", "sleep", "completed"),
        ("send-guide-email", "run", "completed"), ("delay-after-guide", "sleep", "completed"),
        ("send-features-email", "run", "completed")]
    emails = _recorded(express, "email", to="dora@example.com")
    assert [e["template"] for e in emails] == ["welcome", "getting-started", "features"]
    # SEED_SLEEP=1s: each email at least a second after the one before it
    assert all(b["at"] - a["at"] >= 1000 for a, b in zip(emails, emails[1:])), emails


def test_notify_trip_update_runs_in_both_apps_and_a_failed_notification_fails_its_run(seed):
    node, server, express, node_served, _ = seed
    ok, unknown = send(node, server.base, *[
        {"name": "trip.status-changed", "data": {"tripId": "trip-1", "newStatus": "CANCELLED",
                                                 "userId": user}} for user in ("user-carla", "user-nobody")])
    for app_id, app in ((APP, express), (NODE_APP, node_served)):
        run = wait_run(server, ok, function_id=fn("notify-trip-update", app_id))
        assert run["output"] == {"success": True} and run["app_id"] == app_id
        assert [s["name"] for s in run["steps"]] == ["send-notification"]
        [note] = _recorded(app, "notification", userId="user-carla", type="trip_update")
        assert note["metadata"] == {"tripId": "trip-1", "status": "CANCELLED"}

    # `if (!result.success) throw new Error(...)`: outside the step, so the function retries
    # (Inngest's default 3) with the step's result memoized, then fails with the team's message.
    failed = wait_run(server, unknown, function_id=fn("notify-trip-update"), status="failed")
    # the SDK's own error, as Inngest shows it: {name, message, stack}
    assert failed["error"]["name"] == "Error"
    assert failed["error"]["message"].startswith(
        "Failed to send notification: User user-nobody not found")
    assert failed["attempt"] == 3
    [step] = failed["steps"]
    assert step["attempts"] == 1 and step["output"]["success"] is False


def test_process_document_verifies_skips_decided_documents_and_stops_on_a_missing_one(seed):
    node, server, express, _, _ = seed
    verified, decided, missing = send(node, server.base, *[
        {"name": "document.uploaded", "data": {"documentId": doc, "userId": "user-carla"}}
        for doc in ("doc-2", "doc-decided", "doc-gone")])
    run = wait_run(server, verified)
    assert run["output"] == {"success": True, "documentId": "doc-2", "status": "VERIFIED"}
    assert [s["name"] for s in run["steps"]] == ["get-document", "update-status", "send-notification"]
    assert wait_run(server, decided)["output"] == {"skipped": True,
                                                 "reason": "Document already processed"}
    # NonRetriableError: failed on its first attempt despite retries: 3
    failed = wait_run(server, missing, status="failed")
    assert failed["attempt"] == 0 and "Document doc-gone not found" in failed["error"]["message"]


def test_unstable_operation_records_each_failing_attempt_of_its_step(seed):
    node, server, express, _, _ = seed
    recovers, fails = send(node, server.base,
                           {"name": "unstable.operation", "data": {"failTimes": 1}},
                           {"name": "unstable.operation", "data": {"shouldFail": True}})
    run = wait_run(server, recovers, function_id=fn("unstable-operation"))
    assert run["output"] == {"success": True, "attempts": 2}
    [step] = run["steps"]
    assert (step["name"], step["status"], step["attempts"]) == ("unstable-step", "completed", 2)

    run = wait_run(server, fails, function_id=fn("unstable-operation"), status="failed")
    [step] = run["steps"]
    assert (step["name"], step["status"], step["attempts"]) == ("unstable-step", "failed", 4)
    assert (step["error"]["name"], step["error"]["message"]) == (
        "Error", "the unstable operation failed (shouldFail=true)")
    assert "stack" in step["error"]
    assert "the unstable operation failed (shouldFail=true)" in run["error"]["message"]


def test_unstable_operation_on_failure_logs_the_error_and_notifies_the_admin(seed):
    node, server, express, _, _ = seed
    [fails] = send(node, server.base, {"name": "unstable.operation",
                                       "data": {"shouldFail": True, "tag": "on-failure"}})
    wait_run(server, fails, function_id=fn("unstable-operation"), status="failed")
    handled = wait_until(lambda: [r for r in server.get("/api/runs", function=fn(
        "unstable-operation-failure"))["data"] if r["status"] == "completed"],
        timeout=10, message="the onFailure run")
    assert handled
    [logged] = [r for r in _recorded(express, "error-log")
                if r["context"]["eventData"].get("event", {}).get("data", {}).get("tag") == "on-failure"]
    assert logged["message"] == "the unstable operation failed (shouldFail=true)"
    assert _recorded(express, "notification", userId="user-bruno", title="Job Failed")


def test_a_future_dated_payment_reminder_starts_at_its_ts(seed):
    node, server, express, _, _ = seed
    due_at = int(time.time() * 1000) + 6_000
    due, paid = send(node, server.base,
                     {"name": "payment-reminder", "data": {"paymentId": "pay-due"}, "ts": due_at},
                     {"name": "payment-reminder", "data": {"paymentId": "pay-done"}})
    [queued] = runs_of(server, due)
    if time.time() * 1000 < due_at - 500:  # (a very busy machine may take longer to get here)
        assert queued["status"] == "queued" and queued["started_at"] is None
    assert wait_run(server, paid)["output"] == {"skipped": True,
                                              "reason": "Payment already processed"}

    run = wait_run(server, due, timeout=30)
    started = dt.datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp() * 1000
    assert started >= due_at
    assert run["output"] == {"success": True, "paymentId": "pay-due"}
    assert [s["name"] for s in run["steps"]] == ["get-payment", "send-reminder"]
    [note] = _recorded(express, "notification", link="/payments/pay-due")
    assert note["userId"] == "user-carla" and note["at"] >= due_at


def _next_nine_utc(now: dt.datetime) -> dt.datetime:
    nine = now.replace(hour=9, minute=0, second=0, microsecond=0)
    return nine if nine > now else nine + dt.timedelta(days=1)


def test_daily_trip_reminder_is_scheduled_at_nine_and_its_missed_tick_reminds_tomorrows_trip(seed):
    node, server, express, _, _ = seed
    [daily] = [f for f in server.get("/api/functions")["data"] if f["id"] == fn("daily-trip-reminder")]
    assert daily["triggers"] == [{"cron": "0 9 * * *"}] and daily["retries"] == 3
    now = dt.datetime.now(dt.timezone.utc)
    fire = dt.datetime.fromisoformat(daily["next_cron_fire"].replace("Z", "+00:00"))
    assert fire in (_next_nine_utc(now), _next_nine_utc(now - dt.timedelta(seconds=30)))

    # The dev server's scheduler, started before the sync, picked the cron up.
    wait_until(lambda: "cron tengo-lugar-daily-trip-reminder: scheduled (0 9 * * *)"
               in server.proc.log(), timeout=15, message="the scheduler to schedule the cron")

    # No API fires a cron tick on demand: start the last 09:00 tick the way the scheduler
    # catches up on a tick it missed (Timekeeper.fire_cron on the server's database); the dev
    # server's sweeper then delivers the run to its worker.
    run_id = _fire_missed_tick(server, fn("daily-trip-reminder"))
    run = wait_until(lambda: (lambda r: r if r["status"] in ("completed", "failed") else None)(
        server.get(f"/api/runs/{run_id}")), timeout=30, message="the cron run")
    assert run["status"] == "completed", run
    assert run["output"] == {"processedTrips": 1}
    assert [s["name"] for s in run["steps"]] == ["get-tomorrow-trips", "send-reminder-trip-trip-1"]
    reminded = sorted(r["userId"] for r in _recorded(express, "notification", type="trip_reminder"))
    assert reminded == ["user-ana", "user-bruno", "user-carla"]


def _fire_missed_tick(server: DevServer, function_id: str) -> str:
    from tengo_jobs.core.cron import parse_cron
    from tengo_jobs.testing import FakeClock, make_test_runtime

    now = int(time.time() * 1000)
    runtime = make_test_runtime(server.database_url, clock=FakeClock(now), migrate=False)
    try:
        runtime.sdk_apps.load()
        function = runtime.registry.get(function_id)
        tick = parse_cron(function.cron, function_id=function_id).latest_tick(now - 2 * 86_400_000, now)
        with runtime.store.atomic():
            runtime.store.cron.ensure([function_id], now)
            runtime.store.cron.set_last_tick(function_id, tick - 1, now)
        [run_id] = runtime.timekeeper.fire_cron(function, now=now)
        return run_id
    finally:
        _close(runtime)


def _close(runtime) -> None:
    """Close an in-process runtime, forgetting the SDK functions it loaded into the registry
    (the process-wide one, shared with the tests that follow)."""
    for function in runtime.registry.all():
        if function.runtime == "http":
            runtime.registry.remove(function.id)
    runtime.close()


def _sync_body(functions: list[dict]) -> dict:
    return {"url": "http://127.0.0.1:1/api/inngest", "deployType": "ping", "framework": "express",
            "appName": APP, "sdk": "js:v3.32.7", "v": "0.1", "functions": functions}


def _cron_config(cron: str) -> dict:
    fn_id = fn("daily-trip-reminder")
    return {"id": fn_id, "name": "daily-trip-reminder", "triggers": [{"cron": cron}],
            "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": 3}, "runtime": {
                "type": "http", "url": f"http://127.0.0.1:1/api/inngest?fnId={fn_id}&stepId=step"}}}}


def test_a_running_scheduler_schedules_the_cron_of_an_app_synced_after_it_started(tmp_path):
    from tengo_jobs.process.scheduler import Scheduler
    from tengo_jobs.testing import make_test_runtime

    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        runtime.sdk_apps.load()
        scheduler = Scheduler(runtime)  # started before the app's sync
        assert fn("daily-trip-reminder") not in scheduler.next_fire_times()
        runtime.sdk_apps.sync(_sync_body([_cron_config("0 9 * * *")]))
        scheduler._sdk_cron_job()
        nine = scheduler.next_fire_times()[fn("daily-trip-reminder")]
        assert nine == _next_nine_utc(dt.datetime.fromtimestamp(runtime.now() / 1000, dt.timezone.utc)
                                      ).timestamp() * 1000
        runtime.sdk_apps.sync(_sync_body([_cron_config("30 6 * * *")]))  # re-timed
        scheduler._sdk_cron_job()
        assert scheduler.next_fire_times()[fn("daily-trip-reminder")] % 86_400_000 == (6 * 60 + 30) * 60_000
        runtime.sdk_apps.sync(_sync_body([]))  # removed
        scheduler._sdk_cron_job()
        assert fn("daily-trip-reminder") not in scheduler.next_fire_times()
    finally:
        _close(runtime)
