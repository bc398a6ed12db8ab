"""The REST API: events, runs (list, detail, cancel, replay) and functions.

Every endpoint needs the dashboard password (see :mod:`.auth`); a POST takes a JSON body
or none (415 otherwise) and is refused cross-site (403, see :mod:`.csrf`). Lists are newest
first with cursor pagination: pass the ``next_cursor`` of a page as ``cursor`` to
get the next one (``null`` on the last page).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ...errors import ValidationError
from . import params
from .auth import require_api

bp = Blueprint("tengo_api", __name__, url_prefix="/api")


def _runtime():
    return current_app.extensions["tengo_jobs"]


@bp.before_request
def _refuse_repeated_parameters():
    """A repeated parameter is a 400 (text no database can hold is refused app-wide)."""
    params.refuse_repeated_args()


@bp.get("/events")
@require_api
def list_events():
    return jsonify(_runtime().store.queries.list_events(
        name=params.text_arg("name"), since=params.time_arg("since"),
        until=params.time_arg("until"), limit=params.limit_arg(), cursor=params.cursor_arg()))


@bp.get("/events/<event_id>")
@require_api
def get_event(event_id: str):
    return jsonify(_runtime().store.queries.get_event(event_id))


@bp.get("/runs")
@require_api
def list_runs():
    return jsonify(_runtime().store.queries.list_runs(
        status=params.status_arg(), function_id=params.text_arg("function"),
        event_id=params.text_arg("event_id"),
        since=params.time_arg("since"), until=params.time_arg("until"),
        limit=params.limit_arg(), cursor=params.cursor_arg()))


@bp.get("/runs/<run_id>")
@require_api
def get_run(run_id: str):
    return jsonify(_runtime().store.queries.get_run(run_id))


@bp.post("/runs/<run_id>/cancel")
@require_api
def cancel_run(run_id: str):
    return jsonify(_runtime().control.cancel(run_id))


@bp.post("/runs/<run_id>/replay")
@require_api
def replay_run(run_id: str):
    body = params.json_object_body('{"from_step": "step-key"}')
    unknown = sorted(set(body) - {"from_step"})
    if unknown:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; only from_step is accepted",
                              field=unknown[0])
    from_step = params.check_text(body.get("from_step"), "from_step")
    run = _runtime().control.replay(run_id, from_step=from_step)
    return jsonify(run), 201


@bp.get("/functions")
@require_api
def list_functions():
    return jsonify({"data": _runtime().control.functions()})
