"""Capacity options of a function: ``concurrency``, ``throttle`` and ``priority``.

Declared on ``jobs.function(...)`` with Inngest's shapes and validated here, when the
function is declared: a bad value names the function, the option and the allowed range;
a bad CEL key names the position in the expression. The parsed values say, for one
triggering event, which *scope keys* a run needs (:meth:`Capacity.slot_keys`), which
throttle key it passes (:meth:`Capacity.throttle_key`) and its priority in seconds
(:meth:`Capacity.priority_of`). Enforcement lives in the store (``store/slots.py``,
``store/admission.py``); this module does no I/O.

Scope keys: ``c:fn:<function>`` (a function-wide limit), ``c:fn:<function>:<key expr>=<value>``
(a keyed limit), ``c:env:<key expr>=<value>`` (a keyed limit shared by every function that
uses the same key expression with ``scope="env"``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

from ..durations import to_ms
from ..errors import ConfigurationError, DurationError, ExpressionError
from .expressions import compile_expression, json_to_cel

MAX_CONCURRENCY_LIMITS = 2
MAX_CONCURRENCY = 100_000
THROTTLE_PERIOD_MS = (1_000, 7 * 86_400_000)  # Inngest: 1 s to 7 days
MAX_THROTTLE_LIMIT = 100_000
PRIORITY_RANGE_S = (-600, 600)
SCOPES = ("fn", "env")
FUNCTION_SCOPE = "c:fn:"  # a function-wide limit's scope key: FUNCTION_SCOPE + function id


@dataclasses.dataclass(frozen=True)
class ConcurrencyLimit:
    limit: int
    key: str | None = None
    scope: str = "fn"

    def scope_key(self, function_id: str, event: dict[str, Any]) -> str:
        if self.key is None:
            return FUNCTION_SCOPE + function_id
        value = _key_value(self.key, event)
        if self.scope == "env":
            return f"c:env:{self.key}={value}"
        return f"c:fn:{function_id}:{self.key}={value}"

    def describe(self) -> dict[str, Any]:
        return {"limit": self.limit, "key": self.key, "scope": self.scope}


@dataclasses.dataclass(frozen=True)
class Throttle:
    limit: int
    period_ms: int
    burst: int = 1
    key: str | None = None

    @property
    def interval_ms(self) -> float:
        """GCRA's emission interval: one start every ``period / limit``."""
        return self.period_ms / self.limit

    def describe(self) -> dict[str, Any]:
        return {"limit": self.limit, "period_ms": self.period_ms, "burst": self.burst,
                "key": self.key}


@dataclasses.dataclass(frozen=True)
class Capacity:
    """A function's capacity options (any may be absent)."""

    function_id: str
    concurrency: tuple[ConcurrencyLimit, ...] = ()
    throttle: Throttle | None = None
    priority: str | None = None  # CEL, int seconds

    def slot_keys(self, event: dict[str, Any]) -> list[tuple[str, int]]:
        """``(scope key, limit)`` of each concurrency limit for a run of ``event``."""
        return [(c.scope_key(self.function_id, event), c.limit) for c in self.concurrency]

    def fair_key(self, event: dict[str, Any]) -> str | None:
        """With a function-wide limit and a keyed one, the keyed one's scope key: the runs
        waiting for the function-wide slot are served round-robin across its values."""
        if len(self.concurrency) == 2 and any(c.key is None for c in self.concurrency):
            keyed = [c for c in self.concurrency if c.key is not None][0]
            return keyed.scope_key(self.function_id, event)
        return None

    def throttle_key(self, event: dict[str, Any]) -> str:
        t = self.throttle
        assert t is not None
        if t.key is None:
            return f"t:{self.function_id}"
        return f"t:{self.function_id}:{t.key}={_key_value(t.key, event)}"

    def priority_of(self, event: dict[str, Any]) -> int:
        """The run's priority in seconds, clamped to -600..600 (0 when the expression
        fails or is not a number, as Inngest does)."""
        if not self.priority:
            return 0
        try:
            value = compile_expression(self.priority).evaluate({"event": json_to_cel(event)})
        except Exception:  # noqa: BLE001 - a missing field is priority 0
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return 0
        lo, hi = PRIORITY_RANGE_S
        return max(lo, min(hi, int(value)))

    def describe(self) -> dict[str, Any]:
        return {"concurrency": [c.describe() for c in self.concurrency],
                "throttle": self.throttle.describe() if self.throttle else None,
                "priority": {"run": self.priority} if self.priority else None}


def _key_value(expression: str, event: dict[str, Any]) -> str:
    """The text of a key expression's value for ``event`` (``""`` when it cannot be
    evaluated: a missing field puts the run under the empty key)."""
    try:
        value = compile_expression(expression).evaluate({"event": json_to_cel(event)})
    except Exception:  # noqa: BLE001
        return ""
    if isinstance(value, Exception):
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    except TypeError:
        return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


# -- validation at declaration ------------------------------------------------------------------
def _expression(where: str, option: str, text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{where}: {option} must be a non-empty CEL expression, got {text!r}")
    try:
        compile_expression(text)
    except ExpressionError as exc:
        raise ConfigurationError(f"{where}: {option}: {exc}") from None
    return text


def _int(where: str, option: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigurationError(f"{where}: {option} must be an integer from {lo} to {hi}, "
                                 f"got {value!r}")
    return cast(int, value)


def _only(where: str, option: str, value: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise ConfigurationError(f"{where}: {option} has unknown field(s) {', '.join(extra)} "
                                 f"(allowed: {', '.join(allowed)})")


def _concurrency_one(where: str, option: str, value: Any) -> ConcurrencyLimit:
    if isinstance(value, int) and not isinstance(value, bool):
        return ConcurrencyLimit(limit=_int(where, option, value, 1, MAX_CONCURRENCY))
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: {option} must be an integer or "
                                 "{'limit', 'key'?, 'scope'?}, got " f"{value!r}")
    _only(where, option, value, ("limit", "key", "scope"))
    if "limit" not in value:
        raise ConfigurationError(f"{where}: {option}.limit is required")
    limit = _int(where, f"{option}.limit", value["limit"], 1, MAX_CONCURRENCY)
    key = value.get("key")
    if key is not None:
        key = _expression(where, f"{option}.key", key)
    scope = value.get("scope", "fn")
    if scope not in SCOPES:
        raise ConfigurationError(f"{where}: {option}.scope must be one of {', '.join(SCOPES)} "
                                 f"(account scope is not supported), got {scope!r}")
    if scope == "env" and key is None:
        raise ConfigurationError(f"{where}: {option} with scope 'env' needs a key (the limit is "
                                 "shared by every function using the same key)")
    return ConcurrencyLimit(limit=limit, key=key, scope=scope)


def parse_concurrency(where: str, value: Any) -> tuple[ConcurrencyLimit, ...]:
    if isinstance(value, list):
        if not 1 <= len(value) <= MAX_CONCURRENCY_LIMITS:
            raise ConfigurationError(f"{where}: concurrency takes 1 to {MAX_CONCURRENCY_LIMITS} "
                                     f"limits, got {len(value)}")
        limits = tuple(_concurrency_one(where, f"concurrency[{i}]", v) for i, v in enumerate(value))
    else:
        limits = (_concurrency_one(where, "concurrency", value),)
    keys = [(c.key, c.scope) for c in limits]
    if len(set(keys)) != len(keys):
        raise ConfigurationError(f"{where}: concurrency has two limits with the same key and scope")
    return limits


def parse_throttle(where: str, value: Any) -> Throttle:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where}: throttle must be {{'limit', 'period', 'burst'?, "
                                 f"'key'?}}, got {value!r}")
    _only(where, "throttle", value, ("limit", "period", "burst", "key"))
    for field in ("limit", "period"):
        if field not in value:
            raise ConfigurationError(f"{where}: throttle.{field} is required")
    limit = _int(where, "throttle.limit", value["limit"], 1, MAX_THROTTLE_LIMIT)
    try:
        period = to_ms(value["period"])
    except DurationError as exc:
        raise ConfigurationError(f"{where}: throttle.period: {exc}") from None
    lo, hi = THROTTLE_PERIOD_MS
    if not lo <= period <= hi:
        raise ConfigurationError(f"{where}: throttle.period must be from 1s to 7d, "
                                 f"got {value['period']!r}")
    burst = _int(where, "throttle.burst", value.get("burst", 1), 1, MAX_THROTTLE_LIMIT)
    key = value.get("key")
    if key is not None:
        key = _expression(where, "throttle.key", key)
    return Throttle(limit=limit, period_ms=period, burst=burst, key=key)


def parse_priority(where: str, value: Any) -> str:
    if not isinstance(value, dict) or set(value) != {"run"}:
        raise ConfigurationError(f"{where}: priority must be {{'run': '<CEL expression returning "
                                 f"seconds from {PRIORITY_RANGE_S[0]} to {PRIORITY_RANGE_S[1]}>'}}, "
                                 f"got {value!r}")
    return _expression(where, "priority.run", value["run"])


def parse_capacity(function_id: str, *, concurrency: Any = None, throttle: Any = None,
                   priority: Any = None) -> Capacity | None:
    """The capacity options of ``function_id``, validated; ``None`` when none is given."""
    if concurrency is None and throttle is None and priority is None:
        return None
    where = f"function {function_id!r}"
    return Capacity(
        function_id=function_id,
        concurrency=parse_concurrency(where, concurrency) if concurrency is not None else (),
        throttle=parse_throttle(where, throttle) if throttle is not None else None,
        priority=parse_priority(where, priority) if priority is not None else None)


__all__ = ["Capacity", "ConcurrencyLimit", "Throttle", "parse_capacity", "PRIORITY_RANGE_S"]
