"""Lifecycle options of a function: ``cancel_on`` and ``timeouts``, validated when declared.

- ``cancel_on=[{"event": "trip.cancelled", "if_exp": "async.data.tripId ==
  event.data.tripId", "timeout": "7d"}]``: an event named ``event`` whose condition holds
  (CEL over ``event``, the run's trigger, and ``async``, the incoming event) cancels the
  run. ``match="data.tripId"`` is Inngest's shorthand for ``event.data.tripId ==
  async.data.tripId``; ``timeout`` bounds how long after the run's creation the matcher
  listens.
- ``timeouts={"start": "10m", "finish": "1h"}``: a run not started within ``start`` of
  the moment it was due is cancelled; a run not finished within ``finish`` of its start
  is cancelled (its executing step finishes first).

Each entry is parsed once here; a bad one is a :class:`ConfigurationError` naming the
function, the option and the field. The store registers the matchers and deadlines
(:mod:`tengo_jobs.store.cancellation`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..durations import to_ms
from ..errors import ConfigurationError, ExpressionError
from .expressions import compile_expression

MAX_LIFETIME_MS = 366 * 24 * 3_600_000  # "over a year" is refused
CANCEL_KEY_PREFIX = "cancel:"
START_DEADLINE = "timeout:start"
FINISH_DEADLINE = "timeout:finish"

_CANCEL_FIELDS = ("event", "if_exp", "match", "timeout")
_TIMEOUT_FIELDS = ("start", "finish")
_MATCH_PATH = re.compile(r"^data(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclasses.dataclass(frozen=True)
class CancelOn:
    """One ``cancel_on`` entry: the event name, its CEL condition, and how long the run
    listens for it (``None``: as long as it lives)."""

    event: str
    if_exp: str | None = None
    timeout_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """``timeouts``: milliseconds (``None``: no limit), with the text the user gave, which
    the cancellation's reason repeats."""

    start_ms: int | None = None
    finish_ms: int | None = None
    start: str | None = None
    finish: str | None = None

    def reason(self, deadline: str) -> str:
        if deadline == START_DEADLINE:
            return f"did not start within {self.start}"
        return f"did not finish within {self.finish}"


def _duration(value: Any, where: str) -> tuple[int, str]:
    try:
        ms = to_ms(value)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    if ms <= 0:
        raise ConfigurationError(f"{where}: must be longer than 0, got {value!r}")
    if ms > MAX_LIFETIME_MS:
        raise ConfigurationError(f"{where}: {value!r} is over a year; the limit is 366 days")
    return ms, value if isinstance(value, str) else f"{ms}ms"


def parse_cancel_on(value: Any, fn_where: str) -> tuple[CancelOn, ...]:
    """``cancel_on`` as declared (a list of dicts, or one dict) into :class:`CancelOn` values."""
    if value is None:
        return ()
    entries = [value] if isinstance(value, dict) else value
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ConfigurationError(f"{fn_where}: option 'cancel_on' must be a list of "
                                 "{'event': ..., 'if_exp' or 'match': ..., 'timeout': ...}")
    out = []
    for i, entry in enumerate(entries):
        where = f"{fn_where}: option 'cancel_on[{i}]'"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} must be a dict, got {type(entry).__name__}")
        for key in entry:
            if key not in _CANCEL_FIELDS:
                raise ConfigurationError(f"{where}: unknown field {key!r} (fields: "
                                         f"{', '.join(_CANCEL_FIELDS)})")
        event = entry.get("event")
        if not isinstance(event, str) or not event or len(event) > 256:
            raise ConfigurationError(f"{where}: field 'event' must be an event name of 1 to 256 "
                                     f"characters, got {event!r}")
        if_exp, match = entry.get("if_exp"), entry.get("match")
        if if_exp is not None and match is not None:
            raise ConfigurationError(f"{where}: give field 'if_exp' or field 'match', not both")
        if match is not None:
            if not isinstance(match, str) or not _MATCH_PATH.match(match):
                raise ConfigurationError(f"{where}: field 'match' must be a path like "
                                         f"'data.tripId', got {match!r}")
            if_exp = f"event.{match} == async.{match}"
        elif if_exp is not None:
            if not isinstance(if_exp, str) or not if_exp.strip():
                raise ConfigurationError(f"{where}: field 'if_exp' must be a CEL expression")
            try:
                compile_expression(if_exp)
            except ExpressionError as exc:
                raise ConfigurationError(f"{where}: field 'if_exp': {exc}") from None
        timeout = entry.get("timeout")
        timeout_ms = (_duration(timeout, f"{where}: field 'timeout'")[0]
                      if timeout is not None else None)
        out.append(CancelOn(event=event, if_exp=if_exp, timeout_ms=timeout_ms))
    return tuple(out)


def parse_timeouts(value: Any, fn_where: str) -> Timeouts | None:
    """``timeouts`` as declared (``{"start": ..., "finish": ...}``) into :class:`Timeouts`."""
    if value is None:
        return None
    where = f"{fn_where}: option 'timeouts'"
    if not isinstance(value, dict) or not value:
        raise ConfigurationError(f"{where} must be a dict with 'start' and/or 'finish'")
    for key in value:
        if key not in _TIMEOUT_FIELDS:
            raise ConfigurationError(f"{where}: unknown field {key!r} (fields: start, finish)")
    parsed: dict[str, Any] = {}
    for key in _TIMEOUT_FIELDS:
        if value.get(key) is not None:
            ms, text = _duration(value[key], f"{where}: field {key!r}")
            parsed[f"{key}_ms"], parsed[key] = ms, text
    return Timeouts(**parsed) if parsed else None


def cancel_key(index: int) -> str:
    """The reserved wait key of a run's ``cancel_on[index]`` matcher."""
    return f"{CANCEL_KEY_PREFIX}{index}"


__all__ = ["CancelOn", "Timeouts", "parse_cancel_on", "parse_timeouts", "cancel_key",
           "START_DEADLINE", "FINISH_DEADLINE", "CANCEL_KEY_PREFIX", "MAX_LIFETIME_MS"]
