"""Event intake over HTTP: Inngest's ``POST /e/<event_key>`` and ``POST /api/events``.

Both take one event or a JSON array and answer ``{"ids": [...], "status": 200}``,
one id per event in order, as Inngest's event API does (its SDKs read ``ids``).
The body is size-checked before it is parsed (413), parsed once, validated whole
(400 naming the field and batch index; one bad event accepts none), and stored
with its runs in one transaction before the answer; a database outage is 503.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from ..events import MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from ..intake import send_events
from .auth import bearer_token, event_key_ok
from .errors import error_response

bp = Blueprint("tengo_intake", __name__)

# A whole request: 5,000 small events or twenty events at the 512 KiB limit. Past it
# the body is refused before it is read (Content-Length) or while it streams in.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# A single event (a body that starts with "{") is compared with its compact JSON size
# after parsing; a raw body this much larger cannot hold an event under the limit
# unless it is mostly whitespace, so it is refused unread.
MAX_SINGLE_EVENT_BODY = 2 * MAX_EVENT_BYTES


def _read_body() -> bytes | tuple:
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


def _intake(key: str | None):
    if not event_key_ok(key):
        return error_response(401, "event key not found (set it in TENGO_EVENT_KEYS)")
    body = _read_body()
    if not isinstance(body, bytes):
        return body
    if not body.strip():
        return error_response(400, "the request body is empty; send an event object or a JSON "
                                   "array of events", field="body")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return error_response(400, f"the request body is not valid JSON: {exc}", field="body")
    runtime = current_app.extensions["tengo_jobs"]
    ids = send_events(runtime, payload)  # ValidationError / database errors: see errors.py
    return jsonify({"ids": ids, "status": 200})


@bp.post("/e/<path:event_key>")
def inngest_event_api(event_key: str):
    """Inngest's event API, as the official SDKs call it."""
    return _intake(event_key)


@bp.post("/api/events")
def post_events():
    """The same intake, with ``Authorization: Bearer <event key>``."""
    return _intake(bearer_token())
