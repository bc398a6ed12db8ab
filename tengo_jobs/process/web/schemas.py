"""The HTTP API's JSON schemas, in one place: what a request may carry, what an answer holds.

Request parsing and ``/openapi.json`` (:mod:`.openapi`) read the same declarations, so
the document cannot drift from what the server accepts:

- a query parameter is a :class:`QueryParam`: its schema and description for the
  document, and the parser of :mod:`.params` that enforces them (a 400 naming the
  parameter). An operation's parameters are one tuple (:data:`LIST_EVENTS`,
  :data:`LIST_RUNS`) that its view reads (:func:`.params.read_query`) and the document lists;
- a JSON body is a schema whose properties the view accepts (:data:`REPLAY_BODY`,
  :data:`CANCELLATIONS_BODY`, :data:`REPLAYS_BODY`, read
  by :func:`.params.object_body`), or the event (:data:`EVENT_IN`), built from the limits
  :func:`tengo_jobs.core.events.validate_event` enforces;
- statuses are the enums of :mod:`tengo_jobs.store.schema` (``RunStatus``,
  ``StepStatus``); page sizes the limits of :mod:`tengo_jobs.store.queries`.

Schemas are OpenAPI 3.0's dialect of JSON Schema (``nullable``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ...core.events import MAX_BATCH_EVENTS, MAX_NAME_LENGTH, MAX_TS, MAX_VERSION_LENGTH
from ...store.queries import DEFAULT_LIMIT, MAX_LIMIT
from ...store.schema import RunStatus, StepStatus
from . import params

RUN_STATUS_VALUES = [status.value for status in RunStatus]
STEP_STATUS_VALUES = [status.value for status in StepStatus]
MAX_EVENT_ID_LENGTH = 256  # validate_event's limit on an event's ``id``


# -- query parameters -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QueryParam:
    """One query parameter: its schema (for the document) and the parser that enforces it."""

    name: str
    schema: dict[str, Any]
    description: str
    parse: Callable[[str], Any]  # called with ``name``; reads ``request.args``
    keyword: str | None = None  # the query function's argument, when it is not ``name``

    def read(self) -> Any:
        return self.parse(self.name)

    def describe(self) -> dict[str, Any]:
        """This parameter as an OpenAPI parameter object."""
        return {"name": self.name, "in": "query", "required": False, "schema": self.schema,
                "description": self.description}


LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                             "default": DEFAULT_LIMIT}, "page size", params.limit_arg)
CURSOR = QueryParam("cursor", {"type": "string"}, "next_cursor of the previous page",
                    params.cursor_arg)
SINCE = QueryParam("since", {"type": "string"}, "ISO 8601 time or epoch ms (inclusive)",
                   params.time_arg)
UNTIL = QueryParam("until", {"type": "string"}, "ISO 8601 time or epoch ms (exclusive)",
                   params.time_arg)
PAGE = (LIMIT, CURSOR, SINCE, UNTIL)

EVENT_NAME = QueryParam("name", {"type": "string"}, "event name", params.text_arg)
RUN_STATUS = QueryParam("status", {"type": "string", "enum": RUN_STATUS_VALUES}, "run status",
                        params.status_arg)
FUNCTION = QueryParam("function", {"type": "string"}, "function id", params.text_arg,
                      keyword="function_id")
EVENT_ID = QueryParam("event_id", {"type": "string"}, "the event that started the run",
                      params.text_arg)

LIST_EVENTS = (EVENT_NAME, *PAGE)
LIST_RUNS = (RUN_STATUS, FUNCTION, EVENT_ID, *PAGE)


# -- request bodies -------------------------------------------------------------------------
REPLAY_BODY = {
    "type": "object", "additionalProperties": False, "nullable": True,
    "description": "no body, {} and null all replay from the top; input or output need "
                   "from_step",
    "properties": {
        "from_step": {"type": "string", "minLength": 1, "nullable": True,
                      "description": "reuse the stored results of the steps before this one"},
        "input": {"oneOf": [{"type": "array"}, {"type": "object"}],
                  "description": "new arguments for from_step's step.run function: an array "
                                 "of positional arguments or an object of keyword arguments"},
        "output": {"nullable": True, "description": "from_step's result, stored without "
                                                   "running the step (not with input)"},
    },
}
_BODY_TIME = {"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}
_BULK_COMMON = {
    "function_id": {"type": "string", "minLength": 1, "description": "the function (required)"},
    "started_after": {**_BODY_TIME, "description": "runs created at or after: ISO 8601 or "
                                                    "epoch ms"},
    "started_before": {**_BODY_TIME, "description": "runs created before: ISO 8601 or epoch ms"},
    "all": {"type": "boolean", "nullable": True,
            "description": "true to act on every run of the function when no other filter "
                           "is given (refused otherwise)"},
}
CANCELLATIONS_BODY = {
    "type": "object", "additionalProperties": False, "required": ["function_id"],
    "description": "cancel the function's unfinished runs that match every filter given",
    "properties": {**_BULK_COMMON,
                   "if": {"type": "string", "nullable": True,
                          "description": "CEL condition over `event`, the run's triggering "
                                         "event (event.data.userId == \"u1\")"}},
}
_FINAL = [s for s in RUN_STATUS_VALUES if RunStatus(s).is_final]
REPLAYS_BODY = {
    "type": "object", "additionalProperties": False, "required": ["function_id"],
    "description": "replay, from the top, the function's finished runs that match every "
                   "filter given; each new run links to its original (replay_of)",
    "properties": {**_BULK_COMMON,
                   "status": {"oneOf": [{"type": "string", "enum": _FINAL},
                                        {"type": "array", "minItems": 1,
                                         "items": {"type": "string", "enum": _FINAL}}],
                              "nullable": True,
                              "description": "a status or a list; absent: every finished run"}},
}
EVENT_IN = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
        "data": {"type": "object", "nullable": True},
        "id": {"type": "string", "maxLength": MAX_EVENT_ID_LENGTH, "nullable": True,
               "description": "dedupe key: a repeat within 24 h starts nothing"},
        "ts": {"type": "number", "multipleOf": 1, "minimum": 0, "maximum": MAX_TS,
               "nullable": True, "description": "ms since the epoch, a whole number (JavaScript "
                                                 "sends 1.7e12 as a number); in the future it "
                                                 "delays the runs"},
        "v": {"type": "string", "maxLength": MAX_VERSION_LENGTH, "nullable": True},
        "user": {"type": "object", "nullable": True},
    },
}
EVENTS_IN = {"oneOf": [EVENT_IN, {"type": "array", "items": EVENT_IN,
                                  "description": f"at most {MAX_BATCH_EVENTS:,} events "
                                                 "(413 past that)"}]}


# -- answers --------------------------------------------------------------------------------
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
SEND_RESULT = {
    "type": "object",
    "required": ["ids", "status"],
    "properties": {"ids": {"type": "array", "items": {"type": "string"}},
                   "status": {"type": "integer", "enum": [200]}},
}
STEP: dict[str, Any] = {
    "type": "object",
    "required": ["key", "name", "status", "attempts", "output", "error", "started_at", "ended_at"],
    "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
        "status": {"type": "string", "enum": STEP_STATUS_VALUES},
        "attempts": {"type": "integer"}, "output": _ANY, "error": _ANY,
        "started_at": _TIME, "ended_at": _TIME,
    },
}
RUN: dict[str, Any] = {
    "type": "object",
    "required": ["id", "function_id", "event_id", "status", "output", "error", "attempt",
                 "created_at", "started_at", "ended_at"],
    "properties": {
        "id": {"type": "string"}, "function_id": {"type": "string"},
        "app_id": {"type": "string"},
        "event_id": {"type": "string", "nullable": True},
        "status": {"type": "string", "enum": RUN_STATUS_VALUES},
        "output": _ANY,
        "error": {"nullable": True, "description": "{name, message}"},
        "attempt": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": _TIME, "ended_at": _TIME,
        "replay_of": {"type": "string", "nullable": True,
                      "description": "the run this one replays"},
        "replay_note": {"type": "object", "nullable": True,
                        "description": "how a replay differs: from_step, changed (input or "
                                       "output, with the value supplied), bulk"},
        "steps": {"type": "array", "items": STEP},
    },
}
WAITING_REASON = {
    "type": "object", "nullable": True,
    "description": "why a queued run has not started yet (null: it is due, or not queued): "
                   "waiting for a concurrency slot, or throttled until a time",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": ["concurrency", "throttle"]},
        "scope_key": {"type": "string", "description": "concurrency: the full scope key"},
        "scope": {"type": "string", "enum": ["fn", "env"]},
        "key": {"type": "string", "nullable": True,
                "description": "concurrency: '<key expression>=<value>' of a keyed limit, "
                               "null for a function-wide one"},
        "limit": {"type": "integer", "nullable": True},
        "in_use": {"type": "integer", "description": "concurrency: slots held now"},
        "waiting": {"type": "integer", "description": "concurrency: runs waiting on the key"},
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time",
                  "description": "throttle: when the run is due"},
    },
}
STEP_ATTEMPT = {
    "type": "object",
    "required": ["attempt", "started_at", "ended_at", "retry_at", "error"],
    "properties": {
        "attempt": {"type": "integer"},
        "started_at": _TIME, "ended_at": _TIME,
        "retry_at": {**_TIME, "description": "when the next attempt was due (null: none)"},
        "error": {"nullable": True, "description": "{name, message, stack}"},
    },
}
STEP_DETAIL = {**STEP, "required": STEP["required"] + ["attempts_log"],
               "properties": {**STEP["properties"], "attempts_log": {
                   "type": "array", "items": STEP_ATTEMPT,
                   "description": "the step's failed attempts in order (times null when "
                                  "unknown: an execution that died); a successful attempt "
                                  "is the step itself"}}}
RUN_DETAIL = {**RUN, "required": RUN["required"] + ["steps", "replays", "waiting_reason"],
              "properties": {**RUN["properties"],
                             "steps": {"type": "array", "items": STEP_DETAIL}, "replays": {
                  "type": "array", "items": {"type": "string"},
                  "description": "ids of the runs that replay this one (first 100)"},
                  "waiting_reason": WAITING_REASON}}
CANCELLATIONS_OUT = {
    "type": "object", "required": ["cancelled"],
    "properties": {"cancelled": {"type": "integer", "description": "runs this request cancelled"}},
}
REPLAYS_OUT = {
    "type": "object", "required": ["replayed", "run_ids"],
    "properties": {"replayed": {"type": "integer", "description": "runs started"},
                   "run_ids": {"type": "array", "items": {"type": "string"},
                               "description": "the first 100 new runs"}},
}
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
        # per function: why the event started no run, or the run it was folded into
        "flow_control": {"type": "array", "items": {
            "type": "object", "required": ["function_id", "status", "reason", "run_id", "at"],
            "properties": {
                "function_id": {"type": "string"},
                "status": {"type": "string", "enum": ["skipped", "debounced", "batched"]},
                "reason": {"type": "string", "nullable": True,
                           "enum": ["rate_limit", "idempotency", "singleton", None]},
                "run_id": {"type": "string", "nullable": True},
                "at": {"type": "string", "format": "date-time"}}}},
    },
}
_PAUSE_PROPERTIES = {
    "paused": {"type": "boolean"},
    "paused_at": {**_TIME, "description": "when it was paused (null when it is not)"},
    "skipped_cron_ticks": {"type": "integer", "minimum": 0,
                           "description": "cron ticks skipped while paused (not run on resume)"},
    "last_skipped_tick": _TIME,
}
FUNCTION_OUT = {
    "type": "object",
    "required": ["id", "app_id", "triggers", "counts", "duration_ms", "next_cron_fire",
                 "paused", "paused_at"],
    "properties": {
        "id": {"type": "string"}, "app_id": {"type": "string"}, "name": {"type": "string"},
        "triggers": {"type": "array", "items": {"type": "object"}},
        "retries": {"type": "integer"},
        "flow_control": {"type": "object"},  # the admission settings (durations in ms)
        "next_cron_fire": _TIME,
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "duration_ms": {"type": "object", "properties": {
            "p50": {"type": "integer", "nullable": True},
            "p95": {"type": "integer", "nullable": True},
            "sample": {"type": "integer"}}},
        **_PAUSE_PROPERTIES,
    },
}

FUNCTION_PAUSE = {
    "type": "object",
    "required": ["id", "paused", "paused_at", "skipped_cron_ticks", "last_skipped_tick"],
    "properties": {"id": {"type": "string"}, **_PAUSE_PROPERTIES,
                   "resumed_runs": {"type": "integer", "minimum": 0,
                                    "description": "(resume) the due runs enqueued"}},
}


def page_of(item: dict[str, Any]) -> dict[str, Any]:
    """A list answer: ``data`` and the cursor of the next page."""
    return {"type": "object", "required": ["data", "next_cursor"],
            "properties": {"data": {"type": "array", "items": item},
                           "next_cursor": {"type": "string", "nullable": True}}}


__all__ = ["QueryParam", "LIMIT", "CURSOR", "SINCE", "UNTIL", "PAGE", "EVENT_NAME", "RUN_STATUS",
           "FUNCTION", "EVENT_ID", "LIST_EVENTS", "LIST_RUNS", "REPLAY_BODY",
           "CANCELLATIONS_BODY", "REPLAYS_BODY", "CANCELLATIONS_OUT", "REPLAYS_OUT", "EVENT_IN",
           "EVENTS_IN", "ERROR", "SEND_RESULT", "STEP", "RUN", "RUN_DETAIL", "WAITING_REASON", "EVENT_OUT",
           "FUNCTION_OUT", "FUNCTION_PAUSE", "RUN_STATUS_VALUES", "STEP_STATUS_VALUES", "page_of"]
