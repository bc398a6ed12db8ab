"""``GET /openapi.json``: the HTTP API described (OpenAPI 3.0), used by the API fuzz test.

The document is assembled here (paths, responses, links) from the schemas of
:mod:`.schemas`, the same declarations the views parse their parameters and bodies
with, so what it says a request may carry is what the server accepts. Like every route
but ``/healthz`` and the event intake, it needs the dashboard password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from ...core.events import MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from .auth import require_dashboard
from .event_api import MAX_REQUEST_BYTES
from .schemas import (CANCELLATIONS_BODY, CANCELLATIONS_OUT, ERROR, EVENT_OUT, EVENTS_IN,
                      FUNCTION_OUT, FUNCTION_PAUSE, LIST_EVENTS, LIST_RUNS, REPLAY_BODY,
                      REPLAYS_BODY, REPLAYS_OUT, RUN, RUN_DETAIL, SEND_RESULT, page_of)

if TYPE_CHECKING:
    from .schemas import QueryParam

bp = Blueprint("tengo_openapi", __name__)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(ERROR, description)


_UNAUTHORIZED = _err("missing or wrong credentials")
_UNAVAILABLE = _err("the database is unavailable")
_BAD = _err("bad input; `field` names it")
_NOT_FOUND = _err("no such resource")
_CROSS_SITE = _err("refused: the request comes from another site (Origin, Referer or "
                   "Sec-Fetch-Site)")
_NOT_JSON = _err("refused: a body that is not Content-Type: application/json")
_TOO_LARGE = _err("the body is over 2 MiB")
_DASHBOARD: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]


def _query(declared: Iterable[QueryParam]) -> list[dict[str, Any]]:
    return [param.describe() for param in declared]


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _intake_op(summary: str, security: list[Any], params: list[Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": security,
        "parameters": params,
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": EVENTS_IN}}},
        "responses": {
            "200": _json(SEND_RESULT, "stored; one id per event, in order"),
            "400": _BAD, "401": _UNAUTHORIZED,
            "413": _err(f"over {MAX_EVENT_BYTES // 1024} KiB per event, {MAX_BATCH_EVENTS:,} "
                        f"events or {MAX_REQUEST_BYTES // (1024 * 1024)} MiB per request"),
            "503": _UNAVAILABLE,
        },
    }


OPERATION_IDS = {
    ("/e/{event_key}", "post"): "sendEventsWithKeyInPath", ("/api/events", "post"): "sendEvents",
    ("/api/events", "get"): "listEvents", ("/api/events/{event_id}", "get"): "getEvent",
    ("/api/runs", "get"): "listRuns", ("/api/runs/{run_id}", "get"): "getRun",
    ("/api/runs/{run_id}/cancel", "post"): "cancelRun",
    ("/api/runs/{run_id}/replay", "post"): "replayRun", ("/api/functions", "get"): "listFunctions",
    ("/api/cancellations", "post"): "cancelRuns", ("/api/replays", "post"): "replayRuns",
    ("/api/functions/{function_id}/pause", "post"): "pauseFunction",
    ("/api/functions/{function_id}/resume", "post"): "resumeFunction",
    ("/api/apps", "get"): "listApps", ("/fn/register", "post"): "syncApp",
    ("/healthz", "get"): "health", ("/metrics", "get"): "metrics", ("/openapi.json", "get"): "openapi",
}
# Where one answer gives another operation its path parameter (OpenAPI links), so clients
# and the fuzz test's stateful phase reach existing events and runs, not only 404s.
LINKS = {
    ("/e/{event_key}", "post", "200"): {"getEvent": ("event_id", "$response.body#/ids/0")},
    ("/api/events", "post", "200"): {"getEvent": ("event_id", "$response.body#/ids/0")},
    ("/api/events", "get", "200"): {"getEvent": ("event_id", "$response.body#/data/0/id")},
    ("/api/runs", "get", "200"): {op: ("run_id", "$response.body#/data/0/id")
                                  for op in ("getRun", "cancelRun", "replayRun")},
    ("/api/runs/{run_id}/replay", "post", "201"): {op: ("run_id", "$response.body#/id")
                                                   for op in ("getRun", "cancelRun")},
    ("/api/functions", "get", "200"): {op: ("function_id", "$response.body#/data/0/id")
                                       for op in ("pauseFunction", "resumeFunction")},
}


_URI_TOO_LONG = {"description": "the request line is over 4,094 bytes (gunicorn refuses it "
                                 "before the application sees it; not JSON)"}


def _identify(paths: dict[str, Any]) -> dict[str, Any]:
    for (path, method), operation_id in OPERATION_IDS.items():
        paths[path][method]["operationId"] = operation_id
        paths[path][method]["responses"]["414"] = _URI_TOO_LONG
    for (path, method, status), links in LINKS.items():
        response = dict(paths[path][method]["responses"][status])
        response["links"] = {
            f"to_{target}": {"operationId": target, "parameters": {name: expression}}
            for target, (name, expression) in links.items()}
        paths[path][method]["responses"][status] = response
    return paths


def _bulk_op(summary: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "security": _DASHBOARD, "parameters": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": ok, "400": _BAD, "401": _UNAUTHORIZED, "403": _CROSS_SITE,
                          "413": _TOO_LARGE, "415": _NOT_JSON, "503": _UNAVAILABLE}}


def _function_control(summary: str, answer: str) -> dict[str, Any]:
    return {"summary": summary, "security": _DASHBOARD, "parameters": [_path("function_id")],
            "responses": {"200": _json(FUNCTION_PAUSE, answer), "400": _BAD,
                          "401": _UNAUTHORIZED, "403": _CROSS_SITE,
                          "404": _err("no function registered under that id"),
                          "413": _TOO_LARGE, "415": _NOT_JSON, "503": _UNAVAILABLE}}


def spec() -> dict[str, Any]:
    def auth_get(summary: str, ok: dict[str, Any], extra: dict[str, Any] | None = None,
                 params: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
        return {
            "summary": summary, "security": _DASHBOARD, "parameters": list(params),
            "responses": {"200": ok, "400": _BAD, "401": _UNAUTHORIZED, "503": _UNAVAILABLE,
                          **(extra or {})}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "tengo_jobs", "version": "0.1.0",
                 "description": "Event intake (Inngest-compatible), runs, functions, health."},
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"},
        }},
        "paths": _identify({
            "/e/{event_key}": {"post": _intake_op(
                "Inngest's event API: one event or an array", [], [_path("event_key")])},
            "/api/events": {
                "post": _intake_op("Send events (Authorization: Bearer <event key>)",
                                   [{"bearer": []}], []),
                "get": auth_get("List events, newest first", _json(page_of(EVENT_OUT), "a page"),
                                {"400": _BAD}, _query(LIST_EVENTS)),
            },
            "/api/events/{event_id}": {"get": auth_get(
                "One event with the runs it started", _json(EVENT_OUT, "the event"),
                {"404": _NOT_FOUND}, [_path("event_id")])},
            "/api/runs": {"get": auth_get(
                "List runs, newest first", _json(page_of(RUN), "a page"), {"400": _BAD},
                _query(LIST_RUNS))},
            "/api/runs/{run_id}": {"get": auth_get(
                "One run with its steps", _json(RUN_DETAIL, "the run"), {"404": _NOT_FOUND},
                [_path("run_id")])},
            "/api/runs/{run_id}/cancel": {"post": {
                "summary": "Cancel an unfinished run", "security": _DASHBOARD,
                "parameters": [_path("run_id")],
                "responses": {"200": _json(RUN_DETAIL, "the cancelled run"), "400": _BAD,
                              "401": _UNAUTHORIZED, "403": _CROSS_SITE, "404": _NOT_FOUND,
                              "409": _err("the run already completed or failed"),
                              "413": _TOO_LARGE, "415": _NOT_JSON, "503": _UNAVAILABLE}}},
            "/api/runs/{run_id}/replay": {"post": {
                "summary": "Start the run again as a new run (optionally from a step)",
                "security": _DASHBOARD, "parameters": [_path("run_id")],
                "requestBody": {"required": False,
                                "content": {"application/json": {"schema": REPLAY_BODY}}},
                "responses": {"201": _json(RUN_DETAIL, "the new run"), "400": _BAD,
                              "401": _UNAUTHORIZED, "403": _CROSS_SITE, "404": _NOT_FOUND,
                              "413": _TOO_LARGE, "415": _NOT_JSON, "503": _UNAVAILABLE}}},
            "/api/cancellations": {"post": _bulk_op(
                "Cancel a function's unfinished runs in bulk (batched)", CANCELLATIONS_BODY,
                _json(CANCELLATIONS_OUT, "how many runs were cancelled"))},
            "/api/replays": {"post": _bulk_op(
                "Replay a function's finished runs in bulk (batched)", REPLAYS_BODY,
                _json(REPLAYS_OUT, "how many runs were started, and the first ids"))},
            "/api/functions": {"get": auth_get(
                "Registered functions with triggers, next cron fire and statistics",
                _json({"type": "object", "required": ["data"],
                       "properties": {"data": {"type": "array", "items": FUNCTION_OUT}}},
                      "the functions"))},
            "/api/functions/{function_id}/pause": {"post": _function_control(
                "Pause a function: events still create its runs, none executes until resumed",
                "the function's pause state")},
            "/api/functions/{function_id}/resume": {"post": _function_control(
                "Resume a paused function: its due runs are enqueued, oldest first",
                "the function's pause state and how many runs were enqueued")},
            "/api/apps": {"get": auth_get(
                "Inngest SDK apps synced with POST /fn/register, with their functions",
                _json({"type": "object", "required": ["apps"],
                       "properties": {"apps": {"type": "array", "items": {"type": "object"}}}},
                      "the apps"))},
            "/fn/register": {"post": {
                "summary": "An Inngest SDK app registers its functions (what a PUT to its serve "
                           "endpoint sends); authenticated by the signing key when one is set",
                "security": [], "parameters": [],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["url", "functions"]}}}},
                "responses": {"200": _json({"type": "object"}, "synced; unsupported options "
                                           "are reported in the body"),
                              "400": _BAD, "401": _UNAUTHORIZED, "413": _TOO_LARGE,
                              "415": _NOT_JSON, "503": _UNAVAILABLE}}},
            "/healthz": {"get": {
                "summary": "Liveness: database and broker", "security": [],
                "responses": {
                    "200": _json({"type": "object", "required": ["status", "checks"]}, "healthy"),
                    "503": _json({"type": "object", "required": ["status", "checks"]},
                                 "a dependency is down")}}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text format)", "security": _DASHBOARD,
                "responses": {
                    "200": {"description": "metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": _UNAUTHORIZED, "503": _UNAVAILABLE}}},
            "/openapi.json": {"get": {
                "summary": "This document", "security": _DASHBOARD,
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document"),
                              "401": _UNAUTHORIZED}}},
        }),
    }


@bp.get("/openapi.json")
@require_dashboard
def openapi_json() -> ResponseReturnValue:
    document = spec()
    base = request.script_root + current_app.config.get("TENGO_URL_PREFIX", "")
    if base:  # mounted under a prefix (init_app, an ASGI mount): the paths are below it
        document = {**document, "servers": [{"url": base}]}
    return jsonify(document)
