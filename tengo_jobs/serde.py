"""JSON encoding of step and run outputs, with the size limit applied."""

from __future__ import annotations

import json
import traceback

from .errors import NotSerializableError, OutputTooLargeError, StepError

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_STACK_CHARS = 8 * 1024  # a step error's stack keeps its last frames (where it was raised)


def encode_output(value, *, what: str, limit: int = MAX_OUTPUT_BYTES) -> str:
    """JSON text of ``value``; a clear error naming ``what`` when it cannot be stored."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotSerializableError(
            f"{what} returned a value that is not JSON-serializable ({exc}); "
            "return dicts, lists, strings, numbers, booleans or None", field="output") from None
    size = len(text.encode())
    if size > limit:
        raise OutputTooLargeError(
            f"{what} returned {size} bytes of JSON; the limit is {limit} bytes "
            "(TENGO_MAX_OUTPUT_BYTES). "
            "Store large data elsewhere and return a reference to it", field="output")
    return text


def decode(text: str | None):
    return None if text is None else json.loads(text)


def error_dict(exc: BaseException, *, stack: bool = False) -> dict:
    """``{name, message}`` of an exception, as runs and steps store errors. A step that
    failed for good is reported by its own error, as Inngest does, with the step's id.
    ``stack=True`` (a step's own error) adds ``stack``: the formatted traceback, its last
    :data:`MAX_STACK_CHARS` characters when longer."""
    if isinstance(exc, StepError):
        return {"name": exc.error_name, "message": exc.error_message, "step": exc.step_id}
    out = {"name": type(exc).__name__, "message": str(exc)}
    if stack:
        out["stack"] = bounded_stack(exc)
    return out


def bounded_stack(exc: BaseException, limit: int = MAX_STACK_CHARS) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= limit else "…" + text[-(limit - 1):]
