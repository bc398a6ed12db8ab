"""An Inngest app written with inngest-py (0.5), served by its own Flask adapter
(``inngest.flask.serve``) and pointed at a tengo_jobs server, unchanged otherwise:

    TENGO_URL=http://127.0.0.1:8288 gunicorn py_sdk_app:app -b 127.0.0.1:PORT

(run from ``tests/``). ``is_production=False`` is Inngest's dev mode: a ``PUT`` to
``/api/inngest`` registers the two functions with ``<TENGO_URL>/fn/register``.
``PY_SDK_SIGNING_KEY`` is sent with the sync when the server requires its hash.
"""

from __future__ import annotations

import datetime
import os

import flask
import inngest
import inngest.flask

client = inngest.Inngest(
    app_id="py-sdk-app",
    is_production=False,
    api_base_url=os.environ["TENGO_URL"],
    event_api_base_url=os.environ["TENGO_URL"],
    signing_key=os.environ.get("PY_SDK_SIGNING_KEY"),
)


@client.create_function(fn_id="greet-user", trigger=inngest.TriggerEvent(event="py/user.signed-up"))
def greet_user(ctx: inngest.ContextSync) -> dict:
    """Two steps around a one-second sleep; the second uses the first's memoized result."""
    step = ctx.step
    user = step.run("load-user", lambda: {"id": ctx.event.data["userId"],
                                          "name": ctx.event.data["name"].title()})
    step.sleep("pause", datetime.timedelta(seconds=1))
    greeting = step.run("compose-greeting", lambda: f"Hola, {user['name']}!")
    return {"greeting": greeting, "userId": user["id"]}


@client.create_function(fn_id="charge-once", retries=2,
                        trigger=inngest.TriggerEvent(event="py/payment.due"))
def charge_once(ctx: inngest.ContextSync) -> dict:
    """A step that fails on the function's first attempt and succeeds on the second."""
    def charge() -> dict:
        if ctx.attempt == 0:
            raise RuntimeError("the gateway timed out")
        return {"charged": ctx.event.data["amount"], "attempt": ctx.attempt}

    return {"receipt": ctx.step.run("charge", charge)}


app = flask.Flask(__name__)
inngest.flask.serve(app, client, [greet_user, charge_once])
