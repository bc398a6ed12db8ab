"""inngest 3.32.7's step tools, driven here over HTTP: a step that fails once, waitForEvent
with ``match`` (resolved by a later event, or timing out to ``null``), ``step.invoke`` of one
SDK function by another, and parallel steps (``Promise.all``).

``tests/js/seed/steps_app.mjs`` serves the functions with ``inngest/node``; one
``tengo-jobs dev`` server (SQLite) and the app serve the module. Every check reads our REST
API, and the app's own list of the execution requests it received.
"""

from __future__ import annotations

import pytest
import requests

from sdk_stack import DevServer, node_app, require_node_sdk, runs_of, send, steps_by_name, wait_run
from procs import wait_until

pytestmark = pytest.mark.integration

APP = "steps-app"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    node = require_node_sdk()
    tmp = tmp_path_factory.mktemp("steps")
    server = DevServer(tmp)
    app = None
    try:
        app = node_app(node, server, tmp, "seed/steps_app.mjs")
        assert "registered 5 function(s)" in app.sync()["message"]
        yield node, server, app
    finally:
        if app is not None:
            app.stop()
        server.stop()


def _calls(app) -> dict[str, list[str]]:
    return requests.get(f"{app.url}/calls", timeout=5).json()


def test_a_step_that_fails_once_succeeds_on_its_second_attempt(stack):
    node, server, app = stack
    [event] = send(node, server.base, {"name": "steps/flaky", "data": {}})
    run = wait_run(server, event)
    assert run["output"] == {"value": {"attempt": 1}}
    [step] = run["steps"]
    assert (step["name"], step["status"], step["attempts"]) == ("flaky-step", "completed", 2)
    assert run["attempt"] == 0  # the step was retried, not the run


def test_wait_for_event_with_match_is_resolved_by_the_matching_later_event(stack):
    node, server, app = stack
    [placed] = send(node, server.base, {"name": "steps/order.placed", "data": {"orderId": "o-1"}})

    def waiting():
        runs = runs_of(server, placed)
        return runs and runs[0]["status"] == "waiting" and runs[0]
    run = wait_until(waiting, timeout=30, message="the run to wait for its approval")
    detail = server.get(f"/api/runs/{run['id']}")
    [wait] = detail["steps"]
    assert (wait["name"], wait["kind"], wait["status"]) == ("wait-for-approval", "wait", "waiting")

    # Another order's approval does not match (data.orderId differs); this order's does.
    other, approval = send(node, server.base,
                           {"name": "steps/order.approved", "data": {"orderId": "o-2", "by": "max"}},
                           {"name": "steps/order.approved", "data": {"orderId": "o-1", "by": "eva"}})
    run = wait_run(server, placed)
    assert run["output"] == {"outcome": "approved", "approvedBy": "eva"}
    wait = steps_by_name(run)["wait-for-approval"]
    # the payload as the SDK sent it: its id is the one the client gave the event
    assert wait["status"] == "completed"
    assert wait["output"]["id"] == server.get(f"/api/events/{approval}")["external_id"]
    assert wait["output"]["data"] == {"orderId": "o-1", "by": "eva"}


def test_wait_for_event_that_times_out_resumes_with_null(stack):
    node, server, app = stack
    [placed] = send(node, server.base, {"name": "steps/order.placed",
                                        "data": {"orderId": "o-late", "timeout": "2s"}})
    run = wait_run(server, placed, timeout=30)
    assert run["output"] == {"outcome": "expired", "approvedBy": None}
    wait = steps_by_name(run)["wait-for-approval"]
    assert wait["status"] == "completed" and wait["output"] is None


def test_step_invoke_runs_the_other_function_and_returns_its_result(stack):
    node, server, app = stack
    [event] = send(node, server.base, {"name": "steps/invoke", "data": {"n": 20}})
    run = wait_run(server, event, function_id=f"{APP}-invokes-double")
    assert run["output"] == {"result": {"doubled": 40}, "plusOne": 41}
    invoked = steps_by_name(run)["call-double"]
    assert invoked["kind"] == "invoke" and invoked["output"] == {"doubled": 40}
    children = [r for r in server.get("/api/runs", function=f"{APP}-double-it")["data"]
                if r["output"] == {"doubled": 40}]
    assert len(children) == 1 and children[0]["status"] == "completed"
    assert f"{APP}-double-it" in _calls(app)


def test_parallel_steps_both_complete_each_executed_as_a_planned_step(stack):
    node, server, app = stack
    [event] = send(node, server.base, {"name": "steps/parallel", "data": {}})
    run = wait_run(server, event)
    assert run["output"] == {"joined": "L+R"}
    steps = steps_by_name(run)
    assert [s["name"] for s in run["steps"]] == ["left", "right", "join"]
    assert all(s["status"] == "completed" and s["attempts"] == 1 for s in steps.values())
    # Promise.all: the SDK reported both as planned in one answer, and each ran in a request of
    # its own (stepId = its hashed id), not in the sequence of "step" calls.
    requested = _calls(app)[f"{APP}-parallel-steps"]
    assert steps["left"]["key"] in requested and steps["right"]["key"] in requested
    assert steps["join"]["key"] not in requested
