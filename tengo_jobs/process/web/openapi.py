"""``GET /openapi.json``: the HTTP API described (OpenAPI 3.0), used by the API fuzz test.

It is public, like ``/healthz``: it describes the routes, not any data.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...store.queries import DEFAULT_LIMIT, MAX_LIMIT
from .auth import require_dashboard
from ...store.schema import RUN_STATUSES

bp = Blueprint("tengo_openapi", __name__)

_TIME = {"type": "string", "format": "date-time", "nullable": True}
_ANY = {"nullable": True}  # any JSON value (outputs)

ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "string"},
        "status": {"type": "integer"},
        "field": {"type": "string", "nullable": True},
        "index": {"type": "integer"},
    },
}
EVENT_IN = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "data": {"type": "object", "nullable": True},
        "id": {"type": "string", "maxLength": 256, "nullable": True,
               "description": "dedupe key: a repeat within 24 h starts nothing"},
        "ts": {"type": "number", "multipleOf": 1, "minimum": 0, "maximum": 253_402_300_799_999,
               "nullable": True, "description": "ms since the epoch, a whole number (JavaScript "
                                                 "sends 1.7e12 as a number); in the future it "
                                                 "delays the runs"},
        "v": {"type": "string", "maxLength": 64, "nullable": True},
        "user": {"type": "object", "nullable": True},
    },
}
SEND_RESULT = {
    "type": "object",
    "required": ["ids", "status"],
    "properties": {"ids": {"type": "array", "items": {"type": "string"}},
                   "status": {"type": "integer", "enum": [200]}},
}
STEP = {
    "type": "object",
    "required": ["key", "name", "status", "attempts", "output", "error", "started_at", "ended_at"],
    "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["completed", "failed", "sleeping", "retrying"]},
        "attempts": {"type": "integer"}, "output": _ANY, "error": _ANY,
        "started_at": _TIME, "ended_at": _TIME,
    },
}
RUN = {
    "type": "object",
    "required": ["id", "function_id", "event_id", "status", "output", "error", "attempt",
                 "created_at", "started_at", "ended_at"],
    "properties": {
        "id": {"type": "string"}, "function_id": {"type": "string"},
        "app_id": {"type": "string"},
        "event_id": {"type": "string", "nullable": True},
        "status": {"type": "string", "enum": list(RUN_STATUSES)},
        "output": _ANY,
        "error": {"nullable": True, "description": "{name, message}"},
        "attempt": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _TIME, "ended_at": _TIME,
        "steps": {"type": "array", "items": STEP},
    },
}
RUN_DETAIL = {**RUN, "required": RUN["required"] + ["steps"]}
EVENT_OUT = {
    "type": "object",
    "required": ["id", "name", "data", "ts", "received_at"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "data": {"type": "object"},
        "user": {"type": "object", "nullable": True},
        "external_id": {"type": "string", "nullable": True},
        "ts": {"type": "integer"}, "v": {"type": "string", "nullable": True},
        "received_at": {"type": "string", "format": "date-time"},
        "runs": {"type": "array", "items": RUN},
    },
}
FUNCTION = {
    "type": "object",
    "required": ["id", "app_id", "triggers", "counts", "duration_ms", "next_cron_fire"],
    "properties": {
        "id": {"type": "string"}, "app_id": {"type": "string"}, "name": {"type": "string"},
        "triggers": {"type": "array", "items": {"type": "object"}},
        "retries": {"type": "integer"},
        "next_cron_fire": _TIME,
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "duration_ms": {"type": "object", "properties": {
            "p50": {"type": "integer", "nullable": True},
            "p95": {"type": "integer", "nullable": True},
            "sample": {"type": "integer"}}},
    },
}


def _page(item: dict) -> dict:
    return {"type": "object", "required": ["data", "next_cursor"],
            "properties": {"data": {"type": "array", "items": item},
                           "next_cursor": {"type": "string", "nullable": True}}}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return _json(ERROR, description)


_UNAUTHORIZED = _err("missing or wrong credentials")
_UNAVAILABLE = _err("the database is unavailable")
_BAD = _err("bad input; `field` names it")
_NOT_FOUND = _err("no such resource")
_CROSS_SITE = _err("refused: the request comes from another site (Origin, Referer or "
                   "Sec-Fetch-Site)")
_NOT_JSON = _err("refused: a body that is not Content-Type: application/json")
_TOO_LARGE = _err("the body is over 2 MiB")
_DASHBOARD = [{"bearer": []}, {"basic": []}]


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_LIST_PARAMS = [
    _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
       "page size"),
    _q("cursor", {"type": "string"}, "next_cursor of the previous page"),
    _q("since", {"type": "string"}, "ISO 8601 time or epoch ms (inclusive)"),
    _q("until", {"type": "string"}, "ISO 8601 time or epoch ms (exclusive)"),
]


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _intake_op(summary: str, security: list, params: list) -> dict:
    return {
        "summary": summary,
        "security": security,
        "parameters": params,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [EVENT_IN, {"type": "array", "items": EVENT_IN,
                                 "description": "at most 5,000 events (413 past that)"}]}}}},
        "responses": {
            "200": _json(SEND_RESULT, "stored; one id per event, in order"),
            "400": _BAD, "401": _UNAUTHORIZED,
            "413": _err("over 512 KiB per event, 5,000 events or 10 MiB per request"),
            "503": _UNAVAILABLE,
        },
    }


OPERATION_IDS = {
    ("/e/{event_key}", "post"): "sendEventsWithKeyInPath", ("/api/events", "post"): "sendEvents",
    ("/api/events", "get"): "listEvents", ("/api/events/{event_id}", "get"): "getEvent",
    ("/api/runs", "get"): "listRuns", ("/api/runs/{run_id}", "get"): "getRun",
    ("/api/runs/{run_id}/cancel", "post"): "cancelRun",
    ("/api/runs/{run_id}/replay", "post"): "replayRun", ("/api/functions", "get"): "listFunctions",
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
}


_URI_TOO_LONG = {"description": "the request line is over 4,094 bytes (gunicorn refuses it "
                                 "before the application sees it; not JSON)"}


def _identify(paths: dict) -> dict:
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


def spec() -> dict:
    auth_get = lambda summary, ok, extra=None, params=(): {  # noqa: E731
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
                "get": auth_get("List events, newest first", _json(_page(EVENT_OUT), "a page"),
                                {"400": _BAD},
                                [_q("name", {"type": "string"}, "event name"), *_LIST_PARAMS]),
            },
            "/api/events/{event_id}": {"get": auth_get(
                "One event with the runs it started", _json(EVENT_OUT, "the event"),
                {"404": _NOT_FOUND}, [_path("event_id")])},
            "/api/runs": {"get": auth_get(
                "List runs, newest first", _json(_page(RUN), "a page"), {"400": _BAD},
                [_q("status", {"type": "string", "enum": list(RUN_STATUSES)}, "run status"),
                 _q("function", {"type": "string"}, "function id"),
                 _q("event_id", {"type": "string"}, "the event that started the run"),
                 *_LIST_PARAMS])},
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
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "nullable": True,
                    "description": "no body, {} and null all replay from the top",
                    "properties": {"from_step": {"type": "string", "minLength": 1,
                                                 "nullable": True}}}}}},
                "responses": {"201": _json(RUN_DETAIL, "the new run"), "400": _BAD,
                              "401": _UNAUTHORIZED, "403": _CROSS_SITE, "404": _NOT_FOUND,
                              "413": _TOO_LARGE, "415": _NOT_JSON, "503": _UNAVAILABLE}}},
            "/api/functions": {"get": auth_get(
                "Registered functions with triggers, next cron fire and statistics",
                _json({"type": "object", "required": ["data"],
                       "properties": {"data": {"type": "array", "items": FUNCTION}}},
                      "the functions"))},
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
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document")}}},
        }),
    }


@bp.get("/openapi.json")
@require_dashboard
def openapi_json():
    return jsonify(spec())
