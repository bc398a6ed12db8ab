"""Middleware: hooks around executions, steps and sends, in the order documented, on the
sync and the async path; the encryption example of docs/middleware.md with a toy cipher."""

from __future__ import annotations

import json

import pytest

from tengo_jobs import ConfigurationError, Jobs, Middleware, RunStatus
from tengo_jobs.engine.drivers import Completed, Suspended


class Recorder(Middleware):
    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def before_execution(self, ctx):
        self.log.append((self.name, "before_execution", ctx.function_id))

    def after_execution(self, ctx, outcome):
        self.log.append((self.name, "after_execution", type(outcome).__name__))

    def before_step(self, ctx, step_id):
        self.log.append((self.name, "before_step", step_id))

    def after_step(self, ctx, step_id, output, error):
        self.log.append((self.name, "after_step", step_id, output,
                         None if error is None else str(error)))

    def transform_input(self, ctx, step_id, args, kwargs):
        return tuple(a + 1 if isinstance(a, int) else a for a in args), kwargs

    def before_send_events(self, events):
        self.log.append((self.name, "before_send", [e["name"] for e in events]))
        return [{**e, "data": {**e.get("data", {}), "by": self.name}} for e in events]

    def after_send_events(self, events, ids):
        self.log.append((self.name, "after_send", len(ids)))


def test_hooks_run_around_executions_and_steps_in_order_and_replayed_steps_skip_them(backend, tester):
    log: list = []
    jobs = Jobs("mw", runtime=backend, middleware=[Recorder("outer", log), Recorder("inner", log)])

    @jobs.function("mw-fn", event="mw.go", retries=0)
    def fn(ctx, step):
        n = step.run("add", lambda x: x * 10, 1)  # each transform_input adds 1: (1+1+1)*10
        step.sleep("nap", "1m")
        return n

    jobs.send({"name": "mw.go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == 30
    assert log == [
        ("outer", "before_send", ["mw.go"]), ("inner", "before_send", ["mw.go"]),
        ("inner", "after_send", 1), ("outer", "after_send", 1),
        # first execution: the step runs, then the sleep suspends it
        ("outer", "before_execution", "mw-fn"), ("inner", "before_execution", "mw-fn"),
        ("outer", "before_step", "add"), ("inner", "before_step", "add"),
        ("inner", "after_step", "add", 30, None), ("outer", "after_step", "add", 30, None),
        ("inner", "after_execution", "Suspended"), ("outer", "after_execution", "Suspended"),
        # second execution: "add" replays, no step hooks
        ("outer", "before_execution", "mw-fn"), ("inner", "before_execution", "mw-fn"),
        ("inner", "after_execution", "Completed"), ("outer", "after_execution", "Completed"),
    ]
    event = backend.store.queries.get_event(run.event_id)
    assert event["data"]["by"] == "inner"  # before_send_events changed what was stored


def test_after_step_sees_the_error_and_the_async_path_calls_the_same_hooks(backend, tester):
    log: list = []
    jobs = Jobs("mw-async", runtime=backend, middleware=[Recorder("m", log)])

    async def boom(x):
        raise ValueError(f"no {x}")

    @jobs.function("mw-async-fn", event="mw.async", retries=0)
    async def fn(ctx, step):
        return await step.run("boom", boom, 1)

    jobs.send({"name": "mw.async"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    assert [e for e in log if e[1] not in ("before_send", "after_send")] == [
        ("m", "before_execution", "mw-async-fn"), ("m", "before_step", "boom"),
        ("m", "after_step", "boom", None, "no 2"), ("m", "after_execution", "Failed")]


def test_functions_of_a_client_without_middleware_see_none(backend, tester):
    log: list = []
    Jobs("with", runtime=backend, middleware=[Recorder("m", log)])
    plain = Jobs("without", runtime=backend)

    @plain.function("plain-fn", event="plain.go")
    def fn(ctx, step):
        return step.run("one", lambda: 1)

    plain.send({"name": "plain.go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and fn.middleware == ()
    assert log == []


def test_step_send_event_goes_through_the_send_hooks(backend, tester):
    log: list = []
    jobs = Jobs("mw-send", runtime=backend, middleware=[Recorder("m", log)])

    @jobs.function("sender", event="send.go")
    def sender(ctx, step):
        step.send_event("notify", {"name": "user.notified", "data": {}})

    backend.send({"name": "send.go"})  # no client: no send hooks
    tester.run_until_idle()
    sends = [e for e in log if e[1] in ("before_send", "after_send")]
    assert sends == [("m", "before_send", ["user.notified"]), ("m", "after_send", 1)]


def test_middleware_must_be_instances():
    with pytest.raises(ConfigurationError, match=r"middleware=\.\.\.\)\[0\] is the class Recorder"):
        Jobs("bad", runtime=object(), middleware=[Recorder])
    with pytest.raises(ConfigurationError, match="must be a list"):
        Jobs("bad", runtime=object(), middleware=Middleware())
    with pytest.raises(ConfigurationError, match=r"\[1\] must be a tengo_jobs.Middleware"):
        Jobs("bad", runtime=object(), middleware=[Middleware(), "x"])


# -- the encryption example of docs/middleware.md, with a toy cipher ---------------------------
def toy_encrypt(text: str) -> str:
    return "enc:" + text[::-1]


def toy_decrypt(text: str) -> str:
    assert text.startswith("enc:")
    return text[4:][::-1]


class EncryptField(Middleware):
    """Step results' ``field`` is stored encrypted; the handler always sees it clear."""

    def __init__(self, field: str):
        self.field = field

    def transform_output(self, ctx, step_id, value):
        if isinstance(value, dict) and self.field in value:
            value = {**value, self.field: toy_encrypt(json.dumps(value[self.field]))}
        return value

    def transform_stored(self, ctx, step_id, value):
        if isinstance(value, dict) and self.field in value:
            value = {**value, self.field: json.loads(toy_decrypt(value[self.field]))}
        return value


def test_a_field_is_stored_encrypted_and_the_handler_sees_it_clear_on_both_paths(backend, tester):
    seen = []
    jobs = Jobs("crypt", runtime=backend, middleware=[EncryptField("card")])

    @jobs.function("charge", event="charge.go", retries=0)
    def charge(ctx, step):
        token = step.run("tokenize", lambda: {"card": {"pan": "4111"}, "last4": "1111"})
        seen.append(token)
        step.sleep("wait", "1s")
        return token["last4"]

    jobs.send({"name": "charge.go"})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert seen == [{"card": {"pan": "4111"}, "last4": "1111"}] * 2
    [stored] = [json.loads(s.output) for s in tester.steps(run.id) if s.key == "tokenize"]
    assert stored == {"card": toy_encrypt('{"pan": "4111"}'), "last4": "1111"}
    assert "4111" not in json.dumps(stored)
