"""An Inngest app written with inngest-py and served by its own Flask adapter runs here.

``tests/py_sdk_app.py`` serves two functions with ``inngest.flask.serve(app, client,
functions)`` (``is_production=False``, ``api_base_url`` and ``event_api_base_url`` at our
server) under gunicorn, a real process. A ``PUT`` to its serve endpoint syncs it (inngest-py
posts ``/fn/register``); events sent with inngest-py's client start runs that our worker
drives over HTTP; their steps and output are read through the REST API.

``tests/test_inngest_python_sdk.py`` covers inngest-py's event client alone.

The server runs without ``TENGO_SIGNING_KEY``: in its dev mode inngest-py registers without
the signing key's hash, which our sync requires whenever a signing key is set.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import inngest
import pytest

from procs import TESTS
from sdk_stack import App, DevServer, steps_by_name, wait_run
from webhelpers import EVENT_KEY

pytestmark = pytest.mark.integration

APP = "py-sdk-app"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pyserve")
    server = DevServer(tmp, signing_key=None)
    app = None
    try:
        app = App([sys.executable, "-m", "gunicorn", "py_sdk_app:app", "-b", "127.0.0.1:{port}",
                   "-w", "1", "--access-logfile", "-"],
                  {**os.environ, "TENGO_URL": server.base}, tmp / "py_app.log", cwd=TESTS,
                  ready="Booting worker")
        yield server, app
    finally:
        if app is not None:
            app.stop()
        server.stop()


def _ms(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def _client(server: DevServer) -> inngest.Inngest:
    return inngest.Inngest(app_id="py-sender", is_production=False,
                           event_api_base_url=server.base, event_key=EVENT_KEY)


def test_flask_serve_syncs_its_functions_with_a_put(stack):
    server, app = stack
    answer = app.sync()
    assert "registered 2 function(s) of app 'py-sdk-app'" in str(answer), answer
    [listed] = [a for a in server.get("/api/apps")["apps"] if a["app_id"] == APP]
    assert listed["url"] == app.serve_url and listed["framework"] == "flask"
    assert listed["sdk"].startswith("py:v0.5.") and listed["unsupported"] == []
    functions = {f["id"]: f for f in server.get("/api/functions")["data"]}
    assert functions[f"{APP}-greet-user"]["triggers"] == [{"event": "py/user.signed-up"}]
    assert functions[f"{APP}-charge-once"]["retries"] == 2


def test_events_from_the_python_client_run_the_steps_sleep_and_retry_here(stack):
    server, app = stack
    app.sync()
    greet, charge = _client(server).send_sync([
        inngest.Event(name="py/user.signed-up", data={"userId": "u-7", "name": "ana"}),
        inngest.Event(name="py/payment.due", data={"amount": 1500})])

    run = wait_run(server, greet, function_id=f"{APP}-greet-user")
    assert run["output"] == {"greeting": "Hola, Ana!", "userId": "u-7"}
    assert [(s["name"], s["kind"], s["status"]) for s in run["steps"]] == [
        ("load-user", "run", "completed"), ("pause", "sleep", "completed"),
        ("compose-greeting", "run", "completed")]
    steps = steps_by_name(run)
    assert steps["load-user"]["output"] == {"id": "u-7", "name": "Ana"}
    pause = steps["pause"]  # inngest-py sends the sleep's end as an ISO time, a second on
    assert _ms(pause["ended_at"]) - _ms(pause["started_at"]) >= 900
    assert steps["compose-greeting"]["started_at"] >= pause["ended_at"]

    run = wait_run(server, charge, function_id=f"{APP}-charge-once")
    assert run["output"] == {"receipt": {"charged": 1500, "attempt": 1}}
    [step] = run["steps"]
    assert (step["name"], step["status"], step["attempts"]) == ("charge", "completed", 2)
