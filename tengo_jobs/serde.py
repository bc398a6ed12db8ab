"""JSON encoding of step and run outputs, with the size limit applied."""

from __future__ import annotations

import json

from .errors import NotSerializableError, OutputTooLargeError, StepError

MAX_OUTPUT_BYTES = 4 * 1024 * 1024


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


def error_dict(exc: BaseException) -> dict:
    """``{name, message}`` of an exception, as runs and steps store errors. A step that
    failed for good is reported by its own error, as Inngest does, with the step's id."""
    if isinstance(exc, StepError):
        return {"name": exc.error_name, "message": exc.error_message, "step": exc.step_id}
    return {"name": type(exc).__name__, "message": str(exc)}
