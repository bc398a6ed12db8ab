"""The REST API: events, runs (list, detail, cancel, replay) and functions.

Every endpoint needs the dashboard password (see :mod:`.auth`). Lists are newest
first with cursor pagination: pass the ``next_cursor`` of a page as ``cursor`` to
get the next one (``null`` on the last page).
"""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, current_app, jsonify, request

from ...core.events import storable_text
from ...errors import ValidationError
from .auth import require_dashboard

bp = Blueprint("tengo_api", __name__, url_prefix="/api")


def _runtime():
    return current_app.extensions["tengo_jobs"]


@bp.before_request
def _refuse_unstorable_parameters():
    """Repeated parameters and text no database can hold (NUL, lone surrogates) are 400s."""
    for name in request.args:
        if len(request.args.getlist(name)) > 1:
            raise ValidationError(f"parameter {name!r} is given more than once", field=name)
    for name, value in [*request.args.items(multi=True), *(request.view_args or {}).items()]:
        if isinstance(value, str) and not storable_text(value):
            raise ValidationError(f"parameter {name!r} contains a NUL character or an unpaired "
                                  "surrogate", field=name)


def _time_param(name: str) -> int | None:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) or epoch milliseconds."""
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time (2026-01-31T09:00:00Z) or epoch "
                              f"milliseconds, got {raw!r}", field=name) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    try:
        return int(value.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise ValidationError(f"{name} is out of range: {raw!r}", field=name) from None


@bp.get("/events")
@require_dashboard
def list_events():
    return jsonify(_runtime().store.queries.list_events(
        name=request.args.get("name") or None, since=_time_param("since"),
        until=_time_param("until"), limit=request.args.get("limit"),
        cursor=request.args.get("cursor")))


@bp.get("/events/<event_id>")
@require_dashboard
def get_event(event_id: str):
    return jsonify(_runtime().store.queries.get_event(event_id))


@bp.get("/runs")
@require_dashboard
def list_runs():
    return jsonify(_runtime().store.queries.list_runs(
        status=request.args.get("status"),
        function_id=request.args.get("function") or None,
        event_id=request.args.get("event_id") or None,
        since=_time_param("since"), until=_time_param("until"),
        limit=request.args.get("limit"), cursor=request.args.get("cursor")))


@bp.get("/runs/<run_id>")
@require_dashboard
def get_run(run_id: str):
    return jsonify(_runtime().store.queries.get_run(run_id))


@bp.post("/runs/<run_id>/cancel")
@require_dashboard
def cancel_run(run_id: str):
    return jsonify(_runtime().control.cancel(run_id))


def _json_object_body() -> dict:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}", field="body") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object like "
                              '{"from_step": "step-key"}', field="body")
    return body


@bp.post("/runs/<run_id>/replay")
@require_dashboard
def replay_run(run_id: str):
    body = _json_object_body()
    unknown = sorted(set(body) - {"from_step"})
    if unknown:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; only from_step is accepted",
                              field=unknown[0])
    run = _runtime().control.replay(run_id, from_step=body.get("from_step"))
    return jsonify(run), 201


@bp.get("/functions")
@require_dashboard
def list_functions():
    return jsonify({"data": _runtime().control.functions()})
