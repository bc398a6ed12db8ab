"""Cron strings as Inngest writes them, and their tick times.

Inngest cron: five fields (minute hour day-of-month month day-of-week) with an
optional ``TZ=Zone/Name `` prefix. Day-of-week follows standard cron (0 and 7
are Sunday, 1-5 is Monday to Friday); APScheduler numbers weekdays from Monday,
so the field is translated to explicit weekday names here. As in standard cron,
when both day-of-month and day-of-week are restricted a day matching either
one fires (APScheduler alone would require both).

Ticks are computed on the zone's wall clock, with APScheduler's ``CronTrigger``
matching the fields, then mapped to instants. Daylight-saving rules:

- a wall time the clock skips (spring forward, e.g. 02:30 in New York) fires at
  the same offset after the jump (03:30), once;
- a wall time the clock repeats (fall back, e.g. 01:30) fires at its first
  occurrence only, so a daily job never runs twice and nothing loops.

APScheduler's own zone-aware ``CronTrigger`` loops forever on a repeated wall
time, which is why ticks are not computed by it directly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from ..errors import ConfigurationError

_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_NAME_TO_NUM = {name: i for i, name in enumerate(_DOW_NAMES)}
_UTC = dt.timezone.utc
_WILDCARDS = ("*", "?")
# A cron that matches no date (e.g. "0 0 30 2 *") gives up after this many candidates.
_MAX_CANDIDATES = 1_000


def _to_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclasses.dataclass(frozen=True)
class CronSpec:
    """A parsed cron string: its zone and the wall-clock triggers that match its fields."""

    expression: str
    timezone: str
    wall_triggers: tuple[CronTrigger, ...]  # in UTC, applied to the zone's naive wall clock

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def _next_wall(self, wall: dt.datetime) -> dt.datetime | None:
        """The first wall-clock match at or after ``wall`` (naive)."""
        start = wall.replace(tzinfo=_UTC)
        found = [t.get_next_fire_time(None, start) for t in self.wall_triggers]
        found = [f for f in found if f is not None]
        return min(found).replace(tzinfo=None) if found else None

    def next_fire(self, after_ms: int) -> int | None:
        """The first tick strictly after ``after_ms`` (epoch ms), or ``None``."""
        zone = self.zone
        after = dt.datetime.fromtimestamp(after_ms / 1000, tz=zone)
        wall = after.replace(tzinfo=None, fold=0)
        for _ in range(_MAX_CANDIDATES):
            candidate = self._next_wall(wall)
            if candidate is None:
                return None
            # fold=0: a repeated wall time maps to its first occurrence, a skipped one to the
            # offset before the jump (02:30 EST is 03:30 EDT).
            tick = _to_ms(candidate.replace(tzinfo=zone, fold=0))
            if tick > after_ms:
                return tick
            wall = candidate + dt.timedelta(seconds=1)
        return None

    def ticks_between(self, after_ms: int, until_ms: int, limit: int = 10_000) -> list[int]:
        """Ticks in ``(after_ms, until_ms]``, oldest first, at most ``limit`` of them."""
        ticks: list[int] = []
        cursor = after_ms
        while len(ticks) < limit:
            nxt = self.next_fire(cursor)
            if nxt is None or nxt > until_ms:
                break
            ticks.append(nxt)
            cursor = nxt
        return ticks

    def latest_tick(self, after_ms: int, until_ms: int) -> int | None:
        """The last tick in ``(after_ms, until_ms]``, found without walking every tick since
        ``after_ms`` (a scheduler that was down for a year need not count 500,000 minutes)."""
        first = self.next_fire(after_ms)
        if first is None or first > until_ms:
            return None
        window = 60_000
        while True:
            start = max(after_ms, until_ms - window, first - 1)
            ticks = self.ticks_between(start, until_ms)
            if ticks:
                return ticks[-1]
            window *= 2

    def apscheduler_trigger(self) -> "CronSpecTrigger":
        """An APScheduler trigger that fires at this spec's ticks (with its DST rules)."""
        return CronSpecTrigger(self)


class CronSpecTrigger(BaseTrigger):
    """APScheduler trigger over a :class:`CronSpec`; fire times are UTC datetimes."""

    def __init__(self, spec: CronSpec):
        self.spec = spec

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None,
                           now: dt.datetime) -> dt.datetime | None:
        after = _to_ms(now) - 1
        if previous_fire_time is not None:
            after = max(after, _to_ms(previous_fire_time))
        tick = self.spec.next_fire(after)
        return None if tick is None else dt.datetime.fromtimestamp(tick / 1000, tz=_UTC)

    def __str__(self) -> str:
        return f"cron[{self.spec.expression}]"


def _dow_value(token: str, where: str) -> int:
    token = token.strip().lower()
    if token in _NAME_TO_NUM:
        return _NAME_TO_NUM[token]
    if token[:3] in _NAME_TO_NUM and len(token) > 3:
        return _NAME_TO_NUM[token[:3]]
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ConfigurationError(f"{where}: day-of-week value {token!r} is not 0-7 or a day name")


def _translate_dow(field: str, where: str) -> str:
    """Standard cron day-of-week (0/7 = Sunday) as APScheduler weekday names."""
    if field in _WILDCARDS:
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ConfigurationError(f"{where}: bad day-of-week step {step_text!r}")
            step = int(step_text)
        if part in _WILDCARDS:
            lo, hi = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = _dow_value(a, where), _dow_value(b, where)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise ConfigurationError(f"{where}: day-of-week range {part!r} runs backwards")
        else:
            lo = hi = _dow_value(part, where)
            if step != 1:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


_FIELDS = (("second", "second"), ("minute", "minute"), ("hour", "hour"),
           ("day-of-month", "day"), ("month", "month"), ("day-of-week", "day_of_week"))


def _trigger(where: str, **fields: Any) -> CronTrigger:
    try:
        return CronTrigger(timezone=_UTC, **fields)
    except ValueError as exc:
        # APScheduler's message does not always say which field; find it by trying each alone.
        for cron_name, aps_name in _FIELDS:
            try:
                CronTrigger(timezone=_UTC, **{aps_name: fields[aps_name]})
            except ValueError as field_exc:
                raise ConfigurationError(f"{where}: invalid {cron_name} field "
                                         f"{fields[aps_name]!r} ({field_exc})") from None
        raise ConfigurationError(f"{where}: {exc}") from None


def parse_cron(expression: str, *, function_id: str = "?", second: str = "0") -> CronSpec:
    """Parse an Inngest cron string; errors name the function and the field.

    ``second`` is the seconds field, ``"0"`` for every cron string a user writes; tests of
    the scheduler process pass e.g. ``"*/2"`` to see many ticks in a few seconds.
    """
    where = f"function {function_id!r}: cron {expression!r}"
    if not isinstance(expression, str):
        raise ConfigurationError(f"{where}: cron must be a string like '0 9 * * *'")
    text = expression.strip()
    tz_name = "UTC"
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        prefix, _, text = text.partition(" ")
        tz_name = prefix.split("=", 1)[1]
        try:
            zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"{where}: unknown time zone {tz_name!r} in the TZ= prefix "
                "(use an IANA name such as America/Argentina/Buenos_Aires)") from None
    fields = text.split()
    if len(fields) != 5:
        raise ConfigurationError(
            f"{where}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}")
    minute, hour, day, month, dow = fields
    day = "*" if day in _WILDCARDS else day
    day_of_week = _translate_dow(dow, where)
    common = dict(second=second, minute=minute, hour=hour, month=month)
    if day not in _WILDCARDS and dow not in _WILDCARDS:
        # Standard cron: either restricted day field matching is enough.
        triggers: tuple[Any, ...] = (
            _trigger(where, day=day, day_of_week="*", **common),
            _trigger(where, day="*", day_of_week=day_of_week, **common))
    else:
        triggers = (_trigger(where, day=day, day_of_week=day_of_week, **common),)
    return CronSpec(expression=expression, timezone=tz_name, wall_triggers=triggers)
