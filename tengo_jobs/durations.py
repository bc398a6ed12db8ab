"""Durations ("45s", "1h30m", "250ms", timedelta, seconds) and epoch-millisecond time."""

from __future__ import annotations

import datetime as dt
import re

from .errors import DurationError

_UNITS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def to_ms(value: object) -> int:
    """Milliseconds in ``value``: a timedelta, a number of seconds, or a string like ``"1h30m"``."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration")
    if isinstance(value, dt.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, (int, float)):
        if value < 0:
            raise DurationError(f"duration {value!r} is negative")
        return int(value * 1000)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and re.fullmatch(r"\d+(\.\d+)?", text):
            return int(float(text) * 1000)
        pos, total = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return int(total)
        raise DurationError(f"{value!r} is not a duration (examples: '45s', '1h30m', '250ms')")
    raise DurationError(f"{value!r} is not a duration (give a timedelta, seconds or a string like '45s')")


def datetime_to_ms(value: dt.datetime) -> int:
    """Epoch milliseconds of an aware datetime; naive datetimes are refused (ambiguous)."""
    if not isinstance(value, dt.datetime):
        raise DurationError(f"{value!r} is not a datetime")
    if value.tzinfo is None:
        raise DurationError(f"{value!r} is a naive datetime; give one with a time zone")
    return int(value.timestamp() * 1000)


def to_epoch_ms(value: object) -> int:
    """Epoch ms of an aware datetime, ISO 8601 text with an offset, or an int of ms."""
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a date")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DurationError(f"{value!r} is not ISO 8601 (e.g. 2026-03-01T10:00:00-03:00)") from None
    if isinstance(value, dt.datetime):
        return datetime_to_ms(value)
    raise DurationError(f"give an aware datetime, ISO 8601 text or epoch ms, got {value!r}")


def ms_to_iso(ms: int | None) -> str | None:
    """ISO 8601 UTC text of epoch milliseconds (``None`` stays ``None``)."""
    if ms is None:
        return None
    when = dt.datetime.fromtimestamp(ms // 1000, tz=dt.timezone.utc).replace(
        microsecond=(ms % 1000) * 1000)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
