"""OpenTelemetry traces: one trace per run across its executions, spans of step attempts,
sleeps, waits and backoffs, the caller's ``traceparent`` honoured, export over OTLP/HTTP,
and nothing imported when tracing is off."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

from tengo_jobs import Jobs, RunStatus, tracing  # noqa: E402
from tengo_jobs.store.schema import EventRow, RunRow  # noqa: E402
from tengo_jobs.testing import JobsTester  # noqa: E402

from webhelpers import EVENT_KEY, make_app  # noqa: E402


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.set_tracer(tracing.build(exporter, simple=True))
    yield exporter
    tracing.set_tracer(None)


def _by_name(exporter):
    out: dict[str, list] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_a_run_is_one_trace_across_its_executions(jobs, tester, spans):
    tries = {"n": 0}

    def flaky():
        tries["n"] += 1
        if tries["n"] == 1:
            raise RuntimeError("gateway down")
        return "paid"

    @jobs.function("pay", event="pay", retries=2)
    def pay(ctx, step):
        step.run("validate", lambda: True)
        step.sleep("cool-off", "10s")
        step.run("charge", flaky)
        got = step.wait_for_event("confirm", event="confirmed", timeout="1h")
        return {"confirmed": got is None}

    tester.send({"name": "pay", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED

    named = _by_name(spans)
    trace_id, root_span_id = tracing.run_trace_ids(run.id)
    every = spans.get_finished_spans()
    assert {s.context.trace_id for s in every} == {trace_id}  # one trace, all executions

    [root] = named["run pay"]
    assert root.context.span_id == root_span_id and root.parent is None
    assert root.attributes["tengo.status"] == "completed"
    assert root.attributes["tengo.run_id"] == run.id

    executions = named["execution"]
    assert len(executions) >= 4  # start, after the sleep, after the backoff, after the timeout
    assert all(e.parent.span_id == root_span_id for e in executions)
    execution_ids = {e.context.span_id for e in executions}

    attempts = sorted(named["step charge"], key=lambda s: s.attributes["tengo.attempt"])
    assert [a.attributes["tengo.attempt"] for a in attempts] == [1, 2]
    failed, ok = attempts
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes["tengo.status"] == "failed"
    assert any(e.name == "exception" and "gateway down" in e.attributes["exception.message"]
               for e in failed.events)
    assert ok.attributes["tengo.status"] == "completed"
    assert ok.attributes["tengo.step_key"] == "charge"
    assert ok.attributes["tengo.function_id"] == "pay"
    assert failed.parent.span_id in execution_ids and ok.parent.span_id in execution_ids

    [sleep] = named["sleep cool-off"]
    assert sleep.end_time - sleep.start_time == 10_000 * 1_000_000  # to its wake-up
    [backoff] = named["backoff charge"]
    assert backoff.end_time >= backoff.start_time  # the test settings retry at once
    assert backoff.attributes["tengo.kind"] == "backoff"
    [wait] = named["wait confirm"]
    assert wait.attributes["tengo.status"] == "timed_out"
    assert wait.end_time - wait.start_time == 3_600_000 * 1_000_000
    assert named["step validate"][0].parent.span_id in execution_ids


def test_a_matched_wait_is_one_span_and_a_failed_run_records_its_error(jobs, tester, spans):
    @jobs.function("waiter", event="start")
    def waiter(ctx, step):
        step.wait_for_event("approval", event="approved", timeout="1d")
        step.run("after", lambda: 1)
        raise ValueError("nope")

    tester.send({"name": "start", "data": {}})
    tester.run_until_idle(advance_time=False)
    tester.send({"name": "approved", "data": {}})
    [run] = [r for r in tester.run_until_idle() if r.function_id == "waiter"]
    assert run.status == RunStatus.FAILED

    named = _by_name(spans)
    [wait] = named["wait approval"]  # exported once, though later executions replay it
    assert wait.attributes["tengo.status"] == "matched"
    [root] = named["run waiter"]
    assert root.attributes["tengo.status"] == "failed"
    assert root.status.status_code == StatusCode.ERROR
    assert root.events[0].attributes["exception.message"] == "nope"


def test_an_event_with_a_traceparent_continues_the_callers_trace(tmp_path, spans):
    runtime, app = make_app(tmp_path)
    try:
        jobs = Jobs(app_id="traced", runtime=runtime)

        @jobs.function("greet", event="user.signed-up")
        def greet(ctx, step):
            return step.run("hello", lambda: "hi")

        caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        header = f"00-{caller_trace}-{caller_span}-01"
        answer = app.test_client().post(
            f"/e/{EVENT_KEY}", json={"name": "user.signed-up", "data": {}},
            headers={"traceparent": header})
        assert answer.status_code == 200
        [event_id] = answer.get_json()["ids"]
        [run] = JobsTester(runtime).run_until_idle()
        # stored with the event and its run
        assert EventRow.get_by_id(event_id).traceparent == header
        assert RunRow.get_by_id(run.id).traceparent == header

        named = _by_name(spans)
        # the run's trace is the caller's: its root span's parent is the caller's span
        [root] = named["run greet"]
        run_trace, run_root = tracing.run_trace_ids(run.id, header)
        assert run_trace == int(caller_trace, 16)
        assert root.context.trace_id == int(caller_trace, 16)
        assert root.context.span_id == run_root
        assert root.parent.span_id == int(caller_span, 16) and root.parent.is_remote
        [execution] = named["execution"]
        [step] = named["step hello"]
        assert execution.parent.span_id == run_root
        assert step.parent.span_id == execution.context.span_id
        assert {s.context.trace_id for s in spans.get_finished_spans()} == {int(caller_trace, 16)}

        [received] = named["event.received"]
        assert received.context.trace_id == int(caller_trace, 16)
        assert received.parent.span_id == int(caller_span, 16)
        assert received.attributes["tengo.event_ids"] == (event_id,)
        [link] = received.links
        assert (link.context.trace_id, link.context.span_id) == (run_trace, run_root)

        # a malformed header is ignored: the event is accepted, no span
        spans.clear()
        answer = app.test_client().post(f"/e/{EVENT_KEY}", json={"name": "user.signed-up",
                                                                 "data": {}},
                                        headers={"traceparent": "00-zz-bad-01"})
        assert answer.status_code == 200 and "event.received" not in _by_name(spans)
        [run] = [r for r in JobsTester(runtime).run_until_idle() if r.id != run.id]
        assert RunRow.get_by_id(run.id).traceparent is None
        [root] = _by_name(spans)["run greet"]
        assert root.parent is None and root.context.trace_id == tracing.run_trace_ids(run.id)[0]
    finally:
        runtime.close()


def test_jobs_send_inside_an_active_span_continues_its_trace(jobs, tester, spans):
    from opentelemetry.sdk.trace import TracerProvider

    @jobs.function("child-of-caller", event="order.placed")
    def handler(ctx, step):
        step.run("a", lambda: 1)
        step.sleep("pause", "1s")
        return step.run("b", lambda: 2)

    caller_tracer = TracerProvider().get_tracer("the-app")  # the application's own tracing
    with caller_tracer.start_as_current_span("checkout") as caller:
        jobs.send({"name": "order.placed", "data": {}})
    caller_ctx = caller.get_span_context()
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED

    named = _by_name(spans)
    [root] = named["run child-of-caller"]
    assert root.context.trace_id == caller_ctx.trace_id
    assert root.parent.span_id == caller_ctx.span_id
    executions = named["execution"]
    assert len(executions) == 2  # before and after the sleep, both in the caller's trace
    assert all(e.parent.span_id == root.context.span_id for e in executions)
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {caller_ctx.trace_id}

    # outside any span, a send starts a trace of the run's own
    jobs.send({"name": "order.placed", "data": {}})
    [other] = [r for r in tester.run_until_idle() if r.id != run.id]
    [root2, _] = sorted(_by_name(spans)["run child-of-caller"],
                        key=lambda s: s.context.trace_id == caller_ctx.trace_id)
    assert root2.parent is None
    assert root2.context.trace_id == tracing.run_trace_ids(other.id)[0]


class _Receiver(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[str, str, bytes]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_reach_an_otlp_http_receiver_configured_by_the_standard_variables(
        jobs, tester, monkeypatch):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _Receiver.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "tengo-test")
        tracing.set_tracer(None)
        tracer = tracing.get_tracer()
        assert tracer.enabled

        @jobs.function("exported", event="go")
        def exported(ctx, step):
            step.run("one", lambda: 1)
            step.sleep("nap", "1s")
            return step.run("two", lambda: 2)

        from opentelemetry.sdk.trace import TracerProvider

        with TracerProvider().get_tracer("app").start_as_current_span("caller") as caller:
            jobs.send({"name": "go", "data": {}})  # the run continues the caller's trace
        caller_ctx = caller.get_span_context()
        [run] = tester.run_until_idle()
        tracer.flush()
        assert _Receiver.posts
        names, traces, parents = [], set(), {}
        for path, content_type, body in _Receiver.posts:
            assert path == "/v1/traces" and content_type == "application/x-protobuf"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                service = {a.key: a.value.string_value
                           for a in resource_spans.resource.attributes}["service.name"]
                assert service == "tengo-test"
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        names.append(span.name)
                        traces.add(span.trace_id)
                        parents[span.name] = span.parent_span_id
        assert {"run exported", "step one", "step two", "sleep nap", "execution"} <= set(names)
        assert traces == {caller_ctx.trace_id.to_bytes(16, "big")}
        assert parents["run exported"] == caller_ctx.span_id.to_bytes(8, "big")
        assert len(names) == len(set(names)) + 1  # two executions; every other span once
    finally:
        tracing.set_tracer(None)
        server.shutdown()


def test_without_the_extra_tracing_is_a_no_op_and_imports_nothing(tmp_path):
    """opentelemetry made unimportable (the extra not installed), even with an endpoint set:
    the engine runs a function with the no-op tracer. (redis-py imports opentelemetry on
    its own when it is installed, so the check is that ours needs none of it.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    code = """
import sys
sys.modules["opentelemetry"] = None  # the extra is not installed
from tengo_jobs import Jobs, tracing
from tengo_jobs.testing import JobsTester, make_test_runtime
runtime = make_test_runtime()
jobs = Jobs(app_id="plain", runtime=runtime)
@jobs.function("plain", event="go")
def plain(ctx, step):
    return step.run("one", lambda: 1)
tester = JobsTester(runtime)
tester.send({"name": "go", "data": {}})
[run] = tester.run_until_idle()
assert run.status.value == "completed", run.status
assert tracing.get_tracer() is tracing.NOOP
runtime.close()
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "the 'otel' extra is not installed" in done.stderr


def test_unconfigured_tracing_is_the_no_op_tracer(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    assert not tracing.configured()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.configured()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configured()


@pytest.mark.parametrize("header", ["", "00-abc-def-01", "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",
                                    "00-" + "0" * 32 + "-" + "1" * 16 + "-01"])
def test_malformed_traceparents_are_refused(header):
    assert tracing.parse_traceparent(header) is None


def test_a_valid_traceparent_parses():
    assert tracing.parse_traceparent("00-" + "a" * 32 + "-" + "b" * 16 + "-01") == (
        int("a" * 32, 16), int("b" * 16, 16), 1)
