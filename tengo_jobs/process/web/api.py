"""The REST API: events, runs (list, detail, cancel, replay, in bulk too) and functions
(list, pause, resume).

Every endpoint needs the dashboard password (see :mod:`.auth`); a POST takes a JSON body
or none (415 otherwise) and is refused cross-site (403, see :mod:`.csrf`). Lists are newest
first with cursor pagination: pass the ``next_cursor`` of a page as ``cursor`` to
get the next one (``null`` on the last page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from . import params, schemas
from .auth import require_api

bp = Blueprint("tengo_api", __name__, url_prefix="/api")


if TYPE_CHECKING:
    from ...runtime import Runtime

def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


@bp.before_request
def _refuse_repeated_parameters() -> None:
    """A repeated parameter is a 400 (text no database can hold is refused app-wide)."""
    params.refuse_repeated_args()


@bp.get("/events")
@require_api
def list_events() -> ResponseReturnValue:
    return jsonify(_runtime().store.queries.list_events(**params.read_query(schemas.LIST_EVENTS)))


@bp.get("/events/<event_id>")
@require_api
def get_event(event_id: str) -> ResponseReturnValue:
    return jsonify(_runtime().store.queries.get_event(event_id))


@bp.get("/runs")
@require_api
def list_runs() -> ResponseReturnValue:
    return jsonify(_runtime().store.queries.list_runs(**params.read_query(schemas.LIST_RUNS)))


@bp.get("/runs/<run_id>")
@require_api
def get_run(run_id: str) -> ResponseReturnValue:
    runtime = _runtime()
    return jsonify(runtime.store.queries.get_run(run_id, now=runtime.clock.now()))


@bp.post("/runs/<run_id>/cancel")
@require_api
def cancel_run(run_id: str) -> ResponseReturnValue:
    return jsonify(_runtime().control.cancel(run_id))


@bp.post("/runs/<run_id>/replay")
@require_api
def replay_run(run_id: str) -> ResponseReturnValue:
    body = params.object_body(schemas.REPLAY_BODY, '{"from_step": "step-key"}', only_given=True)
    run = _runtime().control.replay(run_id, **body)
    return jsonify(run), 201


def _bulk_filters(body: dict[str, Any]) -> dict[str, Any]:
    return {"function_id": body["function_id"],
            "started_after": params.body_time("started_after", body["started_after"]),
            "started_before": params.body_time("started_before", body["started_before"]),
            "all_runs": params.body_flag("all", body["all"])}


@bp.post("/cancellations")
@require_api
def bulk_cancel() -> ResponseReturnValue:
    """Cancel a function's unfinished runs by creation time and a CEL condition (Inngest's
    cancellation fields), in batches; answers how many it cancelled."""
    body = params.object_body(schemas.CANCELLATIONS_BODY, '{"function_id": "f", "if": "..."}')
    return jsonify(_runtime().control.bulk_cancel(if_exp=body["if"], **_bulk_filters(body)))


@bp.post("/replays")
@require_api
def bulk_replay() -> ResponseReturnValue:
    """Replay a function's finished runs by status and creation time, in batches."""
    body = params.object_body(schemas.REPLAYS_BODY, '{"function_id": "f", "status": "failed"}')
    return jsonify(_runtime().control.bulk_replay(status=body["status"], **_bulk_filters(body)))


@bp.get("/functions")
@require_api
def list_functions() -> ResponseReturnValue:
    return jsonify({"data": _runtime().control.functions()})


@bp.post("/functions/<function_id>/pause")
@require_api
def pause_function(function_id: str) -> ResponseReturnValue:
    return jsonify(_runtime().control.pause(function_id))


@bp.post("/functions/<function_id>/resume")
@require_api
def resume_function(function_id: str) -> ResponseReturnValue:
    return jsonify(_runtime().control.resume(function_id))
