"""Cron strings as Inngest writes them, turned into APScheduler triggers.

Inngest cron: five fields (minute hour day-of-month month day-of-week) with an
optional ``TZ=Zone/Name `` prefix. Day-of-week follows standard cron (0 and 7
are Sunday, 1-5 is Monday to Friday); APScheduler numbers weekdays from Monday,
so the field is translated to explicit weekday names here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

from apscheduler.triggers.cron import CronTrigger

from .errors import ConfigurationError

_DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_NAME_TO_NUM = {name: i for i, name in enumerate(_DOW_NAMES)}


@dataclasses.dataclass(frozen=True)
class CronSpec:
    expression: str
    timezone: str
    trigger: CronTrigger

    def next_fire(self, after_ms: int) -> int | None:
        """The first tick strictly after ``after_ms`` (epoch ms), or ``None``."""
        tz = zoneinfo.ZoneInfo(self.timezone)
        now = dt.datetime.fromtimestamp(after_ms / 1000, tz=tz)
        fire = self.trigger.get_next_fire_time(None, now)
        # APScheduler may return ``now`` itself when it sits on a tick: step past it.
        while fire is not None and int(fire.timestamp() * 1000) <= after_ms:
            fire = self.trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
        return None if fire is None else int(fire.timestamp() * 1000)

    def ticks_between(self, after_ms: int, until_ms: int, limit: int = 10_000) -> list[int]:
        """Ticks in ``(after_ms, until_ms]``, at most ``limit`` of them."""
        ticks, cursor = [], after_ms
        while len(ticks) < limit:
            nxt = self.next_fire(cursor)
            if nxt is None or nxt > until_ms:
                break
            ticks.append(nxt)
            cursor = nxt
        return ticks


def _dow_value(token: str, fn_id: str, expr: str) -> int:
    token = token.strip().lower()
    if token in _NAME_TO_NUM:
        return _NAME_TO_NUM[token]
    if token[:3] in _NAME_TO_NUM and len(token) > 3:
        return _NAME_TO_NUM[token[:3]]
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ConfigurationError(
        f"function {fn_id!r}: cron {expr!r}: day-of-week value {token!r} is not 0-7 or a day name")


def _translate_dow(field: str, fn_id: str, expr: str) -> str:
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ConfigurationError(
                    f"function {fn_id!r}: cron {expr!r}: bad day-of-week step {step_text!r}")
            step = int(step_text)
        if part in ("*", "?"):
            lo, hi = 0, 6
        elif "-" in part:
            a, b = part.split("-", 1)
            lo, hi = _dow_value(a, fn_id, expr), _dow_value(b, fn_id, expr)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise ConfigurationError(
                    f"function {fn_id!r}: cron {expr!r}: day-of-week range {part!r} runs backwards")
        else:
            lo = hi = _dow_value(part, fn_id, expr)
            if step != 1:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def parse_cron(expression: str, *, function_id: str = "?") -> CronSpec:
    """Parse an Inngest cron string; errors name the function and the field."""
    where = f"function {function_id!r}: cron {expression!r}"
    text = expression.strip()
    tz_name = "UTC"
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        prefix, _, text = text.partition(" ")
        tz_name = prefix.split("=", 1)[1]
        try:
            zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"{where}: unknown time zone {tz_name!r} in the TZ= prefix") from None
    fields = text.split()
    if len(fields) != 5:
        raise ConfigurationError(
            f"{where}: expected 5 fields (minute hour day month day-of-week), got {len(fields)}")
    minute, hour, day, month, dow = fields
    try:
        trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month,
                              day_of_week=_translate_dow(dow, function_id, expression),
                              timezone=zoneinfo.ZoneInfo(tz_name))
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return CronSpec(expression=expression, timezone=tz_name, trigger=trigger)
