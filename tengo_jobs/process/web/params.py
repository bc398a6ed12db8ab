"""What the web app reads from a request, read one way: query and path parameters, JSON bodies.

Every route reads its input through these parsers, so hostile input is refused the same
way everywhere with a 400 naming the parameter (a :class:`ValidationError`), before it
can reach the database or Python's limits:

- text no database column can hold (a NUL character, which PostgreSQL refuses, or an
  unpaired surrogate, which UTF-8 cannot encode) in any query or path parameter
  (:func:`check_request_text`, run before every view but the event API's, which
  answers a bad key with 401);
- times (``since``, ``until``): ISO 8601 or epoch milliseconds in ASCII digits, from year 1
  to year 9999 (:data:`MIN_TIME_MS` … :data:`MAX_TIME_MS`), which every database's 64-bit
  integer holds; ``²`` or a 4,300-digit number is a 400, not an ``int()`` traceback;
- JSON bodies (:func:`parse_json`): at most :data:`MAX_JSON_DEPTH` levels of arrays and
  objects (deeper input raised ``RecursionError`` in the parser or later in the
  dashboard), and no ``NaN``/``Infinity`` (not JSON: they would come back out of the API
  as invalid JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import TYPE_CHECKING, Any, Iterable, NoReturn

from flask import request
from flask.json.provider import DefaultJSONProvider

from ...core.events import storable_text
from ...errors import ValidationError
from ...store.queries import MAX_LIMIT, check_cursor, check_limit, check_status

if TYPE_CHECKING:
    from .schemas import QueryParam

# Arrays and objects nested in one JSON body, the outermost counting as 1: an event
# object is 1 and its ``data`` 2 (3 and 4 inside a batch's array).
MAX_JSON_DEPTH = 64
MIN_TIME_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH_MS = re.compile(r"[+-]?[0-9]+", re.ASCII)
_MAX_TIME_DIGITS = 20  # more cannot be in range; refused before int() sees them
_CONTAINERS = frozenset((list, dict))


def shown(raw: str, limit: int = 40) -> str:
    """``raw`` for an error message: quoted, and cut short when long."""
    if len(raw) <= limit:
        return repr(raw)
    return f"{raw[:limit]!r}… ({len(raw)} characters)"


# -- JSON bodies ----------------------------------------------------------------------------
def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range for a 64-bit float")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and dicts more than ``limit`` levels (breadth-first,
    without recursion; a level holding no container is skipped at C speed)."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            if _CONTAINERS.isdisjoint(map(type, items)):
                continue
            below += [item for item in items if type(item) in _CONTAINERS]
        level = below
    return False


def _bracket_count(raw: bytes | str) -> int:
    if isinstance(raw, str):
        return raw.count("[") + raw.count("{")
    return raw.count(b"[") + raw.count(b"{")


def too_deep_message(what: str = "the request body") -> str:
    return f"{what} nests arrays and objects deeper than the limit of {MAX_JSON_DEPTH} levels"


def parse_json(raw: bytes | str, *, field: str = "body", what: str = "the request body") -> Any:
    """``raw`` parsed as JSON, or a :class:`ValidationError` on ``field`` saying why not."""
    try:
        value = json.loads(raw, parse_float=_finite_float, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValidationError(too_deep_message(what), field=field) from None
    except (ValueError, UnicodeDecodeError) as exc:  # also the 4,300-digit integer limit
        raise ValidationError(f"{what} is not valid JSON: {exc}", field=field) from None
    if _bracket_count(raw) > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValidationError(too_deep_message(what), field=field)
    return value


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON with :func:`parse_json`'s limits, so ``request.get_json()`` in any
    blueprint (an application's too) refuses deep nesting with a 400, not a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return parse_json(s)


def json_object_body(example: str = "{}") -> dict[str, Any]:
    """The request body as a JSON object; an empty body (or ``null``) is ``{}``."""
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError(f"the request body must be a JSON object like {example}",
                              field="body")
    return body


def object_body(schema: dict[str, Any], example: str = "{}", *,
                only_given: bool = False) -> dict[str, Any]:
    """The request body as the JSON object ``schema`` describes (see :mod:`.schemas`): each
    of its properties (absent ones ``None``, or left out with ``only_given``, where
    ``null`` is a value; text no database can hold is a 400 on the field), and a 400 on
    the first unknown field when it allows no others."""
    body = json_object_body(example)
    accepted = list(schema["properties"])
    unknown = sorted(set(body) - set(accepted))
    if unknown and schema.get("additionalProperties") is False:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; only "
                              f"{', '.join(accepted)} {'is' if len(accepted) == 1 else 'are'} "
                              "accepted", field=unknown[0])
    return {name: check_text(body.get(name), name) for name in accepted
            if not only_given or name in body}


def body_time(name: str, value: Any) -> int | None:
    """A time in a JSON body: ISO 8601 text or epoch milliseconds (a whole number)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return parse_time(name, str(value))
    if isinstance(value, str) and value:
        return parse_time(name, value)
    raise ValidationError(f"{name} must be an ISO 8601 time (2026-01-31T09:00:00Z) or epoch "
                          f"milliseconds, got {value!r:.60}", field=name)


def body_flag(name: str, value: Any) -> bool:
    """A boolean in a JSON body; absent is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false, got {value!r:.60}", field=name)
    return value


# -- query and path parameters --------------------------------------------------------------
def read_query(declared: Iterable[QueryParam]) -> dict[str, Any]:
    """Every parameter of an operation (a tuple of :class:`.schemas.QueryParam`), parsed in
    order, by the name of the argument it becomes. A parameter the operation does not
    declare is a 400 naming it (``?function_id=`` for ``?function=`` would otherwise be
    ignored silently and answer every run)."""
    known = {param.name for param in declared}
    unknown = sorted(name for name in request.args if name not in known)
    if unknown:
        raise ValidationError(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                              f"this operation takes {', '.join(sorted(known)) or 'none'}",
                              field=unknown[0])
    return {param.keyword or param.name: param.read() for param in declared}


def check_request_text() -> None:
    """Refuse query and path parameters that no database can hold."""
    for name, value in [*request.args.items(multi=True), *(request.view_args or {}).items()]:
        if not storable_text(name):
            raise ValidationError("a parameter name contains a NUL character or an unpaired "
                                  "surrogate", field="query")
        if isinstance(value, str) and not storable_text(value):
            raise ValidationError(f"parameter {name!r} contains a NUL character or an unpaired "
                                  "surrogate", field=name)


def refuse_repeated_args() -> None:
    """Refuse a query parameter given twice (the API reads one value of each)."""
    for name in request.args:
        if len(request.args.getlist(name)) > 1:
            raise ValidationError(f"parameter {name!r} is given more than once", field=name)


def check_text(value: Any, name: str) -> Any:
    """``value`` unchanged, unless it is text no database can hold (then a 400 on ``name``)."""
    if isinstance(value, str) and not storable_text(value):
        raise ValidationError(f"{name} contains a NUL character or an unpaired surrogate",
                              field=name)
    return value


def text_arg(name: str) -> str | None:
    """A text parameter; empty is absent."""
    return request.args.get(name) or None


def status_arg(name: str = "status", *, blank_is_absent: bool = False) -> str | None:
    """A run status; empty is a 400 unless ``blank_is_absent`` (a form's "any status")."""
    raw = request.args.get(name)
    return check_status(None if blank_is_absent and not raw else raw)


def cursor_arg(name: str = "cursor") -> str | None:
    return check_cursor(request.args.get(name) or None)


def limit_arg(name: str = "limit") -> int:
    raw = request.args.get(name)
    if raw is None:
        return check_limit(None)
    if not _EPOCH_MS.fullmatch(raw) or len(raw) > 6:
        raise ValidationError(f"{name} must be an integer from 1 to {MAX_LIMIT}, got {shown(raw)}",
                              field=name)
    return check_limit(int(raw))


def _out_of_range(name: str, raw: str) -> ValidationError:
    return ValidationError(
        f"{name} is out of range: {shown(raw)}; times go from {MIN_TIME_MS} to {MAX_TIME_MS} "
        "epoch milliseconds (0001-01-01 to 9999-12-31 UTC)", field=name)


def parse_time(name: str, raw: str) -> int:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) or epoch milliseconds."""
    if _EPOCH_MS.fullmatch(raw):
        if len(raw.lstrip("+-")) > _MAX_TIME_DIGITS:
            raise _out_of_range(name, raw)
        value = int(raw)
    else:
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{name} must be an ISO 8601 time (2026-01-31T09:00:00Z) or "
                                  f"epoch milliseconds in ASCII digits, got {shown(raw)}",
                                  field=name) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        try:
            value = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            raise _out_of_range(name, raw) from None
    if not MIN_TIME_MS <= value <= MAX_TIME_MS:
        raise _out_of_range(name, raw)
    return value


def time_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    return parse_time(name, raw)


__all__ = ["BoundedJSONProvider", "MAX_JSON_DEPTH", "MIN_TIME_MS", "MAX_TIME_MS", "parse_json", "json_object_body",
           "object_body", "body_time", "body_flag", "read_query",
           "check_request_text", "refuse_repeated_args", "check_text", "text_arg", "status_arg", "cursor_arg", "limit_arg",
           "parse_time", "time_arg", "shown", "too_deep_message"]
