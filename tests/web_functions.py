"""Functions served by the live-server web tests (``TENGO_FUNCTIONS=web_functions``)."""

from tengo_jobs import Jobs

jobs = Jobs(app_id="web-live-test")

EVENTS = ["sdk.single", "sdk.batch", "ts.single", "ts.batch", "secret.test"]


@jobs.function("echo-event", event=EVENTS)
def echo_event(ctx, step):
    data = step.run("read-data", lambda: dict(ctx.event.data))
    return {"name": ctx.event.name, "data": data}
