"""OpenTelemetry traces of runs: the one module that imports ``opentelemetry``.

With the ``otel`` extra installed and an OTLP endpoint configured the standard way
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, plus any other
``OTEL_EXPORTER_OTLP_*`` / ``OTEL_SERVICE_NAME`` / ``OTEL_BSP_*`` variable), :func:`get_tracer`
answers a :class:`Tracer` exporting over OTLP/HTTP; otherwise (no extra, no endpoint,
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``) the :class:`NoopTracer`, whose
calls cost an attribute look-up and return shared no-op objects, and nothing of
OpenTelemetry is imported.

**One trace per run.** A run executes in several executions (it suspends on sleeps, waits
and backoffs, perhaps on other workers), so no span stays open across them. Its trace id
and the span id of its root span are derived from the run id (:func:`run_trace_ids`): every
execution, anywhere, parents its spans on the same root, and the root span itself is
exported once, when the run ends (completed, failed, cancelled while executing), spanning
creation to end. Under it:

- ``execution``: one per execution (acquire to suspend/complete/fail/release);
- ``step <id>``: one per step attempt, with its error recorded and status ``ERROR`` when
  it raised;
- ``sleep <id>`` / ``backoff <id>`` / ``retry function``: from the suspension to the planned
  wake-up (``wake_at``), exported at the suspension;
- ``wait <id>``: from the suspension to the matching event (or the timeout), exported by
  the execution that resumes on it.

Attributes: ``tengo.function_id``, ``tengo.run_id``, ``tengo.step_key``, ``tengo.attempt``,
``tengo.status``.

**The caller's trace.** An event posted with a W3C ``traceparent`` header (or sent with
``jobs.send`` inside an active OpenTelemetry span, :func:`current_traceparent`) is stored
with that traceparent, and so is every run it starts (``tj_runs.traceparent``, migration
0012): such a run's trace is the caller's — its trace id is the caller's, its root span's
parent is the caller's span, and its root span id is still derived from the run id, so
every execution finds it (:func:`run_trace_ids`). The intake also records an
``event.received`` span in the caller's trace, linked to the root span of every run it
started (see ``docs/semantics.md``, "Traces").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

_NULL = contextlib.nullcontext(None)
_TRUE = ("1", "true", "yes", "on")


def run_trace_ids(run_id: str, traceparent: str | None = None) -> tuple[int, int]:
    """The trace id (128 bits) and root span id (64 bits) of run ``run_id``: the same in
    every process, so each execution's spans join the one trace. With the caller's
    ``traceparent`` (well-formed), the trace id is the caller's."""
    digest = hashlib.sha256(f"tengo-run:{run_id}".encode()).digest()
    span_id = int.from_bytes(digest[16:24], "big") or 1
    caller = parse_traceparent(traceparent)
    if caller is not None:
        return caller[0], span_id
    return (int.from_bytes(digest[:16], "big") or 1), span_id


def format_traceparent(trace_id: int, span_id: int, flags: int = 1) -> str:
    """A W3C ``traceparent`` header (version 00)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xff:02x}"


def current_traceparent() -> str | None:
    """The ``traceparent`` of the caller's active OpenTelemetry span, if any: read only when
    the application has imported OpenTelemetry itself (nothing is imported here)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
    except Exception:  # noqa: BLE001 - a broken tracing setup never fails a send
        return None
    if not context.is_valid:
        return None
    return format_traceparent(context.trace_id, context.span_id, int(context.trace_flags))


def parse_traceparent(header: str | None) -> tuple[int, int, int] | None:
    """``(trace id, span id, flags)`` of a W3C ``traceparent`` header, ``None`` if malformed."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or len(parts[1]) != 32 \
            or len(parts[2]) != 16 or len(parts[3]) != 2 or (parts[0] == "00" and len(parts) != 4):
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


class NoopTracer:
    """What the engine calls when tracing is off: nothing happens."""

    enabled = False

    def execution(self, inv: Any) -> contextlib.AbstractContextManager[Any]:
        return _NULL

    def step(self, inv: Any, key: str, attempt: int) -> contextlib.AbstractContextManager[Any]:
        return _NULL

    def pending(self, inv: Any, kind: str, key: str, start_ms: int, end_ms: int,
                status: str = "") -> None:
        return None

    def run_ended(self, inv: Any, status: str, error: dict[str, Any] | None = None) -> None:
        return None

    def event_received(self, traceparent: str | None, event_ids: Iterable[str],
                       run_ids: Iterable[str]) -> None:
        return None


NOOP = NoopTracer()


def _ns(ms: int | None) -> int | None:
    return None if ms is None else int(ms) * 1_000_000


class Tracer(NoopTracer):
    """Spans of runs on an OpenTelemetry ``TracerProvider`` made by :func:`build`."""

    enabled = True

    def __init__(self, provider: TracerProvider, forced_ids: threading.local) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider
        self._otel = provider.get_tracer("tengo_jobs")
        self._forced = forced_ids  # the id generator's per-thread override

    # -- contexts ------------------------------------------------------------------------
    @staticmethod
    def _flags(traceparent: str | None) -> int:
        """The caller's sampled flag (sampled without a caller)."""
        caller = parse_traceparent(traceparent)
        return 1 if caller is None else caller[2] & 1

    def _run_context(self, inv: Any) -> Context:
        """The run's root span as a parent: its ids, in the caller's trace if it has one."""
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        traceparent = getattr(inv.run, "traceparent", None)
        trace_id, span_id = run_trace_ids(inv.run_id, traceparent)
        return self._trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(self._flags(traceparent)))))

    def _caller_context(self, traceparent: str | None) -> Context:
        """The caller's span as the root span's parent (no parent without a caller)."""
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        caller = parse_traceparent(traceparent)
        if caller is None:
            return self._trace.set_span_in_context(self._trace.INVALID_SPAN)
        trace_id, span_id, flags = caller
        return self._trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))))

    def _parent(self, inv: Any) -> Context:
        span = getattr(inv, "span", None)
        if span is not None:
            return self._trace.set_span_in_context(span)
        return self._run_context(inv)

    @staticmethod
    def _attributes(inv: Any, **more: Any) -> dict[str, Any]:
        attrs = {"tengo.function_id": inv.function.id, "tengo.run_id": inv.run_id}
        attrs.update({f"tengo.{k}": v for k, v in more.items() if v is not None})
        return attrs

    # -- the engine's calls ----------------------------------------------------------------
    @contextlib.contextmanager
    def execution(self, inv: Any) -> Iterator[Span]:
        span = self._otel.start_span(
            "execution", context=self._run_context(inv),
            attributes=self._attributes(inv, attempt=inv.run.attempt),
            start_time=_ns(inv.now()), record_exception=False, set_status_on_exception=False)
        inv.span = span
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.end(end_time=_ns(inv.now()))

    @contextlib.contextmanager
    def step(self, inv: Any, key: str, attempt: int) -> Iterator[Span]:
        from opentelemetry.trace import Status, StatusCode

        span = self._otel.start_span(
            f"step {key}", context=self._parent(inv),
            attributes=self._attributes(inv, step_key=key, attempt=attempt),
            start_time=_ns(inv.now()), record_exception=False, set_status_on_exception=False)
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("tengo.status", "failed")
            raise
        else:
            span.set_attribute("tengo.status", "completed")
        finally:
            span.end(end_time=_ns(inv.now()))

    def pending(self, inv: Any, kind: str, key: str, start_ms: int, end_ms: int,
                status: str = "") -> None:
        span = self._otel.start_span(
            f"{kind} {key}".strip(), context=self._parent(inv),
            attributes=self._attributes(inv, step_key=key or None, status=status or None,
                                        kind=kind),
            start_time=_ns(start_ms))
        span.end(end_time=_ns(max(start_ms, end_ms)))

    def run_ended(self, inv: Any, status: str, error: dict[str, Any] | None = None) -> None:
        from opentelemetry.trace import Status, StatusCode

        traceparent = getattr(inv.run, "traceparent", None)
        trace_id, span_id = run_trace_ids(inv.run_id, traceparent)
        self._forced.ids = (trace_id, span_id)
        try:
            span = self._otel.start_span(
                f"run {inv.function.id}", context=self._caller_context(traceparent),
                attributes=self._attributes(inv, status=status, attempt=inv.run.attempt),
                start_time=_ns(inv.run.created_at))
        finally:
            self._forced.ids = None
        if error:
            span.add_event("exception", {"exception.type": str(error.get("name", "Error")),
                                         "exception.message": str(error.get("message", ""))})
            span.set_status(Status(StatusCode.ERROR, str(error.get("message", ""))))
        span.end(end_time=_ns(inv.now()))

    def event_received(self, traceparent: str | None, event_ids: Iterable[str],
                       run_ids: Iterable[str]) -> None:
        parsed = parse_traceparent(traceparent)
        if parsed is None:
            return
        from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

        trace_id, span_id, flags = parsed
        caller = self._trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))))
        links = []
        for run_id in run_ids:
            run_trace, run_span = run_trace_ids(run_id, traceparent)
            links.append(Link(SpanContext(run_trace, run_span, is_remote=True,
                                          trace_flags=TraceFlags(TraceFlags.SAMPLED)),
                              {"tengo.run_id": run_id}))
        span = self._otel.start_span("event.received", context=caller, links=links,
                                     attributes={"tengo.event_ids": list(event_ids)})
        span.end()

    def flush(self) -> None:
        self._provider.force_flush()


def build(exporter: SpanExporter | None = None, *, simple: bool = False) -> Tracer:
    """A :class:`Tracer` exporting to ``exporter`` (default: OTLP/HTTP configured by the
    ``OTEL_EXPORTER_OTLP_*`` variables), batched unless ``simple``. Needs the extra."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    forced = threading.local()
    forced.ids = None

    class RunIds(RandomIdGenerator):
        """Random ids, except the root span of a run: the ids derived from its run id."""

        def generate_trace_id(self) -> int:
            ids = getattr(forced, "ids", None)
            return ids[0] if ids else super().generate_trace_id()

        def generate_span_id(self) -> int:
            ids = getattr(forced, "ids", None)
            return ids[1] if ids else super().generate_span_id()

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tengo-jobs")})
    provider = TracerProvider(resource=resource, id_generator=RunIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter) if simple
                                else BatchSpanProcessor(exporter))
    return Tracer(provider, forced)


def configured() -> bool:
    """Whether the environment asks for trace export (an OTLP endpoint, not disabled)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


_lock = threading.Lock()
_tracer: NoopTracer | None = None


def get_tracer() -> NoopTracer:
    """This process's tracer: a :class:`Tracer` when configured and the extra is installed,
    else :data:`NOOP` (a warning once when configured but the extra is missing)."""
    global _tracer
    if _tracer is not None:  # the hot path: no lock
        return _tracer
    with _lock:
        if _tracer is None:
            _tracer = NOOP
            if configured():
                try:
                    _tracer = build()
                except ImportError as exc:
                    log.warning("OTEL_EXPORTER_OTLP_* is set but the 'otel' extra is not "
                                "installed (%s): no traces are exported", exc)
        return _tracer


def set_tracer(tracer: NoopTracer | None) -> None:
    """Use ``tracer`` in this process (tests; ``None``: decide again from the environment)."""
    global _tracer
    with _lock:
        _tracer = tracer


__all__ = ["NOOP", "NoopTracer", "Tracer", "build", "configured", "current_traceparent",
           "format_traceparent", "get_tracer", "set_tracer", "parse_traceparent", "run_trace_ids"]
