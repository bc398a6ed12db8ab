"""JSON encoding of step and run outputs (and event data), with the size limit applied.

Plain JSON values are stored as they are. Richer values are stored as *envelopes*, JSON
objects that say what they were, so the handler gets the same type back on replay:

- ``datetime``, ``date``, ``time``: ``{"__tj__": "datetime", "v": "<ISO 8601>"}`` (a naive
  value stays naive, an aware one keeps its offset);
- ``Decimal``: ``{"__tj__": "decimal", "v": "12.50"}`` (exact, as text);
- ``UUID``: ``{"__tj__": "uuid", "v": "<hex>"}``;
- a dataclass instance: ``{"__tj__": "dataclass", "cls": "module:QualName", "v": {fields}}``
  (fields encoded the same way, so nesting works);
- a pydantic model: ``{"__tj__": "pydantic", "cls": "module:QualName", "v": <model_dump(mode="json")>}``
  (re-created with ``model_validate``; pydantic is an optional extra, ``tengo-jobs[pydantic]``).

Decoding (:func:`decode_value`, what a handler receives) re-creates a class only when its
module is **already imported** in this process (the worker imports the function's module,
which imports its types) and the class is a dataclass or a pydantic ``BaseModel``
subclass: stored text never imports a module nor calls anything else. An envelope that
cannot be re-created stays the plain dict it is. The REST API and the dashboard show
the envelopes as stored (:func:`decode`, plain JSON).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import json
import sys
import traceback
import uuid
from typing import Any

from .errors import NotSerializableError, OutputTooLargeError, StepError

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_STACK_CHARS = 8 * 1024  # a step error's stack keeps its last frames (where it was raised)
TAG = "__tj__"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_pydantic(value: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def _envelope(value: Any) -> Any:
    """``json.dumps``'s ``default``: the envelope of a value JSON cannot hold; TypeError else."""
    if isinstance(value, _dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, _dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, _dt.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {TAG: "dataclass", "cls": _class_path(type(value)),
                "v": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if _is_pydantic(value):
        return {TAG: "pydantic", "cls": _class_path(type(value)),
                "v": value.model_dump(mode="json")}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``, richer values as envelopes (see the module docstring)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=_envelope)


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (richer ones as envelopes)."""
    return json.loads(dumps(value))


def _find_class(path: Any) -> type | None:
    """The class at ``module:qualname`` if its module is imported and it is a dataclass or a
    pydantic model; ``None`` otherwise (nothing is imported, nothing else is called)."""
    if not isinstance(path, str) or ":" not in path:
        return None
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if obj is None or part.startswith("__"):
            return None
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        return None
    if dataclasses.is_dataclass(obj):
        return obj
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(obj, pydantic.BaseModel):
        return obj
    return None


def _build_dataclass(cls: type, fields: dict[str, Any]) -> Any:
    init = {f.name: fields[f.name] for f in dataclasses.fields(cls)
            if f.init and f.name in fields}
    obj = cls(**init)
    for f in dataclasses.fields(cls):
        if not f.init and f.name in fields:
            object.__setattr__(obj, f.name, fields[f.name])
    return obj


_SIMPLE = {
    "datetime": _dt.datetime.fromisoformat,
    "date": _dt.date.fromisoformat,
    "time": _dt.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
}


def _revive(obj: dict[str, Any]) -> Any:
    """``json.loads``'s ``object_hook``: an envelope back to its value (inner ones first)."""
    kind = obj.get(TAG)
    if kind is None or "v" not in obj:
        return obj
    try:
        simple = _SIMPLE.get(kind)
        if simple is not None and len(obj) == 2 and isinstance(obj["v"], str):
            return simple(obj["v"])
        if kind in ("dataclass", "pydantic") and len(obj) == 3:
            cls = _find_class(obj.get("cls"))
            if cls is None:
                return obj
            if kind == "dataclass" and dataclasses.is_dataclass(cls) and isinstance(obj["v"], dict):
                return _build_dataclass(cls, obj["v"])
            if kind == "pydantic" and not dataclasses.is_dataclass(cls):
                return cls.model_validate(obj["v"])  # type: ignore[attr-defined]
    except (ValueError, TypeError, ArithmeticError):
        return obj  # not an envelope we wrote (or the class changed): left as stored
    return obj


def decode_value(text: str | None) -> Any:
    """A stored value as the handler gets it: envelopes re-created (see the module docstring)."""
    return None if text is None else json.loads(text, object_hook=_revive)


def revive(value: Any) -> Any:
    """Envelopes inside an already-decoded JSON value re-created (event data)."""
    if isinstance(value, dict):
        return _revive({k: revive(v) for k, v in value.items()})
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value


def has_envelopes(value: Any) -> bool:
    if isinstance(value, dict):
        return TAG in value or any(has_envelopes(v) for v in value.values())
    if isinstance(value, list):
        return any(has_envelopes(v) for v in value)
    return False


def encode_output(value: Any, *, what: str, limit: int = MAX_OUTPUT_BYTES) -> str:
    """JSON text of ``value``; a clear error naming ``what`` when it cannot be stored."""
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise NotSerializableError(
            f"{what} returned a value that is not JSON-serializable ({exc}); "
            "return dicts, lists, strings, numbers, booleans, None, or datetime, Decimal, "
            "UUID, dataclass or pydantic values", field="output") from None
    size = len(text.encode())
    if size > limit:
        raise OutputTooLargeError(
            f"{what} returned {size} bytes of JSON; the limit is {limit} bytes "
            "(TENGO_MAX_OUTPUT_BYTES). "
            "Store large data elsewhere and return a reference to it", field="output")
    return text


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def error_dict(exc: BaseException, *, stack: bool = False) -> dict[str, Any]:
    """``{name, message}`` of an exception, as runs and steps store errors. A step that
    failed for good is reported by its own error, as Inngest does, with the step's id.
    ``stack=True`` (a step's own error) adds ``stack``: the formatted traceback, its last
    :data:`MAX_STACK_CHARS` characters when longer."""
    if isinstance(exc, StepError):
        return {"name": exc.error_name, "message": exc.error_message, "step": exc.step_id}
    reported = getattr(exc, "error_payload", None)  # an SDK app's own {name, message, stack}
    if isinstance(reported, dict) and "name" in reported and "message" in reported:
        return dict(reported)
    out = {"name": type(exc).__name__, "message": str(exc)}
    if stack:
        out["stack"] = bounded_stack(exc)
    return out


def bounded_stack(exc: BaseException, limit: int = MAX_STACK_CHARS) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
