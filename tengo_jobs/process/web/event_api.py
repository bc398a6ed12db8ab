"""Event intake over HTTP: Inngest's ``POST /e/<event_key>`` and ``POST /api/events``.

Both take one event or a JSON array and answer ``{"ids": [...], "status": 200}``,
one id per event in order, as Inngest's event API does (its SDKs read ``ids``).
The body is size-checked before it is parsed (413), parsed once, validated whole
(400 naming the field and batch index; one bad event accepts none; JSON nested past
:data:`~.params.MAX_JSON_DEPTH` levels is a 400 too), and stored
with its runs in one transaction before the answer; a database outage is 503.
"""

from __future__ import annotations

import base64
import logging
import binascii
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from ... import tracing
from ...core.events import MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from ...ids import ENTROPY_BITS, ulid
from .auth import bearer_token, event_key_ok
from .errors import error_response
from .params import parse_json

if TYPE_CHECKING:
    from ...runtime import Runtime

log = logging.getLogger(__name__)
bp = Blueprint("tengo_event_api", __name__)


class EventKeyConverter(BaseConverter):
    """Any key, including characters the default converters refuse (a newline gets a 401,
    not a 404 that says nothing about the key)."""

    regex = r"[\s\S]+"
    part_isolating = False


@bp.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("eventkey", EventKeyConverter)


# A whole request: 5,000 small events or twenty events at the 512 KiB limit. Past it
# the body is refused before it is read (Content-Length) or while it streams in.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# A single event (a body that starts with "{") is compared with its compact JSON size
# after parsing; a raw body this much larger cannot hold an event under the limit
# unless it is mostly whitespace, so it is refused unread.
MAX_SINGLE_EVENT_BODY = 2 * MAX_EVENT_BYTES


def _read_body() -> bytes | Response:
    limit = current_app.config.get("TENGO_MAX_REQUEST_BYTES", MAX_REQUEST_BYTES)
    length = request.content_length
    if length is not None and length > limit:
        return error_response(
            413, f"request body is {length} bytes; the limit is {limit} bytes per request "
                 f"({MAX_EVENT_BYTES} bytes per event, {MAX_BATCH_EVENTS} events per request)",
            field="body")
    request.max_content_length = limit  # a chunked body is cut off while it streams
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return error_response(413, f"request body is over the limit of {limit} bytes",
                              field="body")
    head = body[:64].lstrip()
    if head.startswith(b"{") and len(body) > MAX_SINGLE_EVENT_BODY:
        return error_response(
            413, f"event is {len(body)} bytes; the limit is {MAX_EVENT_BYTES} (512 KiB)",
            field="event")
    return body


def seeded_ids(seed: str | None, count: int) -> list[str] | None:
    """Event ids derived from the Python SDK's ``x-inngest-event-id-seed`` (``"<ms>,<base64>"``).

    Inngest's servers turn the seed into one ULID per event (the entropy plus the
    event's index), so when the SDK retries a request after a timeout or a 5xx the
    same events get the same ids and are deduplicated instead of stored twice.
    Returns ``None`` for a missing or malformed seed (then nothing is derived).
    """
    if not seed:
        return None
    millis, _, entropy_b64 = seed.partition(",")
    try:
        ms = int(millis)
        entropy = base64.b64decode(entropy_b64, validate=True)
    except (ValueError, binascii.Error):
        return None
    if not 0 <= ms < 1 << 48 or len(entropy) != ENTROPY_BITS // 8:
        return None
    base = int.from_bytes(entropy, "big")
    return [ulid(ms, base + index) for index in range(count)]


def _apply_id_seed(payload: Any) -> None:
    """Give events without an ``id`` the seed-derived one (see :func:`seeded_ids`)."""
    events = payload if isinstance(payload, list) else [payload]
    ids = seeded_ids(request.headers.get("X-Inngest-Event-Id-Seed"), len(events))
    if ids is None:
        return
    for event, event_id in zip(events, ids):
        if isinstance(event, dict) and not event.get("id"):
            event["id"] = event_id


def _intake(key: str | None) -> ResponseReturnValue:
    if not event_key_ok(key):
        return error_response(401, "event key not found (set it in TENGO_EVENT_KEYS)")
    body = _read_body()
    if not isinstance(body, bytes):
        return body
    if not body.strip():
        return error_response(400, "the request body is empty; send an event object or a JSON "
                                   "array of events", field="body")
    payload = parse_json(body)  # ValidationError: 400 naming the body (see params.py)
    _apply_id_seed(payload)
    runtime = current_app.extensions["tengo_jobs"]
    # ValidationError / database errors: see errors.py. A well-formed traceparent header is
    # stored with the events and their runs (their traces continue the caller's).
    ids = runtime.send(payload, traceparent=request.headers.get("traceparent"))
    _trace_intake(runtime, ids)
    return jsonify({"ids": ids, "status": 200})


def _trace_intake(runtime: Runtime, ids: list[str]) -> None:
    """An event posted with a W3C ``traceparent`` header: a span in the caller's trace,
    linked to the root span of each run it started (see :mod:`tengo_jobs.tracing`)."""
    tracer = tracing.get_tracer()
    header = request.headers.get("traceparent")
    if not tracer.enabled or not header:
        return
    try:
        tracer.event_received(header, ids, runtime.store.queries.run_ids_of_events(ids))
    except Exception:  # noqa: BLE001 - the events are stored; tracing never fails the intake
        log.exception("could not trace the intake of events %s", ids)


@bp.post("/e/<eventkey:event_key>")
def inngest_event_api(event_key: str) -> ResponseReturnValue:
    """Inngest's event API, as the official SDKs call it."""
    return _intake(event_key)


@bp.post("/api/events")
def post_events() -> ResponseReturnValue:
    """The same intake, with ``Authorization: Bearer <event key>``."""
    return _intake(bearer_token())
