"""Admission-time flow control: ``idempotency``, ``rate_limit``, ``singleton``, ``debounce``
and ``batch_events`` as declared on ``jobs.function(...)``, validated when declared.

Each option becomes a frozen value on :attr:`FunctionDef.flow`; the store's admission
(:mod:`tengo_jobs.store.flow`) enforces them against rows in the database. Keys and
conditions are CEL over ``event`` (the triggering event as a dict), compiled here once —
a bad expression fails the declaration, naming the function, the option and the place
in the expression — and evaluated by :func:`key_of` (never Python ``eval``). Ranges
follow Inngest's limits.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import celpy

from ..durations import to_ms
from ..errors import ConfigurationError, DurationError
from .expressions import compile_expression, json_to_cel

SECOND = 1_000
RATE_LIMIT_PERIOD = (1 * SECOND, 24 * 3_600 * SECOND)
DEBOUNCE_PERIOD = (1 * SECOND, 7 * 24 * 3_600 * SECOND)
BATCH_TIMEOUT = (1 * SECOND, 60 * SECOND)
DEFAULT_MAX_BATCH_SIZE = 100
IDEMPOTENCY_WINDOW_MS = 24 * 3_600 * SECOND
SINGLETON_MODES = ("skip", "cancel")

# The options this module owns, in the order admission applies them.
FLOW_OPTIONS = ("batch_events", "debounce", "idempotency", "rate_limit", "singleton")


@dataclasses.dataclass(frozen=True)
class RateLimit:
    limit: int
    period_ms: int
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class Debounce:
    period_ms: int
    key: str | None = None
    timeout_ms: int | None = None


@dataclasses.dataclass(frozen=True)
class BatchEvents:
    max_size: int
    timeout_ms: int
    key: str | None = None
    if_exp: str | None = None


@dataclasses.dataclass(frozen=True)
class Singleton:
    mode: str
    key: str | None = None


@dataclasses.dataclass(frozen=True)
class FlowControl:
    """The admission rules of one function (each ``None`` when not declared)."""

    idempotency: str | None = None
    rate_limit: RateLimit | None = None
    singleton: Singleton | None = None
    debounce: Debounce | None = None
    batch_events: BatchEvents | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) is not None for f in dataclasses.fields(self))

    def describe(self) -> dict[str, Any]:
        """The settings as the API shows them (durations in ms)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = value if isinstance(value, str) else dataclasses.asdict(value)
        return out


# -- evaluation ------------------------------------------------------------------------------
def key_of(expression: str | None, event: dict[str, Any]) -> str:
    """The key value of ``event`` under ``expression`` as text (``""`` without a key). A
    field the event lacks gives the key ``null``: such events share one key."""
    if not expression:
        return ""
    try:
        value = compile_expression(expression).evaluate({"event": json_to_cel(event)})
    except Exception:  # noqa: BLE001 - a missing field: the shared null key
        return "null"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)[:250]


def condition_holds(expression: str | None, event: dict[str, Any]) -> bool:
    """Does ``event`` satisfy ``expression`` (``batch_events.if_exp``)? Errors are false."""
    if not expression:
        return True
    try:
        result = compile_expression(expression).evaluate({"event": json_to_cel(event)})
    except Exception:  # noqa: BLE001 - a missing field is "no"
        return False
    return isinstance(result, (bool, celpy.celtypes.BoolType)) and bool(result)


# -- validation at declaration ----------------------------------------------------------------
class _Checker:
    def __init__(self, where: str, option: str):
        self.where, self.option = where, option

    def fail(self, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.where}: option {self.option!r}: {message}")

    def mapping(self, value: Any, required: tuple[str, ...],
                optional: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"must be a dict with {', '.join(required)}"
                            + (f" (and optionally {', '.join(optional)})" if optional else "")
                            + f", got {type(value).__name__}")
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            raise self.fail(f"unknown field {unknown[0]!r} (allowed: "
                            f"{', '.join(required + optional)})")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(f"field {missing[0]!r} is required")
        return value

    def expression(self, value: Any, field: str) -> str | None:
        if value is None:
            return None
        name = self.option if field == "" else f"{self.option}.{field}"
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{self.where}: option {name!r} must be a non-empty CEL "
                                     f"expression over `event`, got {value!r}")
        try:
            compile_expression(value)
        except Exception as exc:  # noqa: BLE001 - the parser's message shows the position
            raise ConfigurationError(f"{self.where}: option {name!r}: {exc}") from None
        return value

    def duration(self, value: Any, field: str, bounds: tuple[int, int]) -> int:
        low, high = bounds
        rng = f"from {_human(low)} to {_human(high)}"
        try:
            ms = to_ms(value)
        except DurationError as exc:
            raise self.fail(f"{field} must be a duration {rng}: {exc}") from None
        if not low <= ms <= high:
            raise self.fail(f"{field} must be {rng}, got {value!r}")
        return ms

    def integer(self, value: Any, field: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{field} must be an integer from {low} to {high}, got {value!r}")
        return cast(int, value)


def _human(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_flow(where: str, options: dict[str, Any], *,
               max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> FlowControl:
    """Validate the flow options of one declaration (``where``: ``function 'id'``)."""
    values: dict[str, Any] = {}
    if "idempotency" in options:
        values["idempotency"] = _Checker(where, "idempotency").expression(
            options["idempotency"], "")
    if "rate_limit" in options:
        c = _Checker(where, "rate_limit")
        v = c.mapping(options["rate_limit"], ("limit", "period"), ("key",))
        values["rate_limit"] = RateLimit(limit=c.integer(v["limit"], "limit", 1, 1_000_000),
                                         period_ms=c.duration(v["period"], "period",
                                                              RATE_LIMIT_PERIOD),
                                         key=c.expression(v.get("key"), "key"))
    if "singleton" in options:
        c = _Checker(where, "singleton")
        v = c.mapping(options["singleton"], ("mode",), ("key",))
        if v["mode"] not in SINGLETON_MODES:
            raise c.fail(f"mode must be one of {', '.join(SINGLETON_MODES)}, got {v['mode']!r}")
        values["singleton"] = Singleton(mode=v["mode"], key=c.expression(v.get("key"), "key"))
    if "debounce" in options:
        c = _Checker(where, "debounce")
        v = c.mapping(options["debounce"], ("period",), ("key", "timeout"))
        period = c.duration(v["period"], "period", DEBOUNCE_PERIOD)
        timeout = (c.duration(v["timeout"], "timeout", DEBOUNCE_PERIOD)
                   if v.get("timeout") is not None else None)
        values["debounce"] = Debounce(period_ms=period, key=c.expression(v.get("key"), "key"),
                                      timeout_ms=timeout)
    if "batch_events" in options:
        c = _Checker(where, "batch_events")
        v = c.mapping(options["batch_events"], ("max_size", "timeout"), ("key", "if_exp"))
        values["batch_events"] = BatchEvents(
            max_size=c.integer(v["max_size"], "max_size", 1, max_batch_size),
            timeout_ms=c.duration(v["timeout"], "timeout", BATCH_TIMEOUT),
            key=c.expression(v.get("key"), "key"), if_exp=c.expression(v.get("if_exp"), "if_exp"))
    flow = FlowControl(**values)
    if flow.batch_events is not None and (flow.debounce is not None or flow.singleton is not None
                                          or flow.idempotency is not None
                                          or flow.rate_limit is not None):
        raise ConfigurationError(f"{where}: option 'batch_events' cannot be combined with "
                                 "'debounce', 'idempotency', 'rate_limit' or 'singleton' "
                                 "(a batch has no single event to key them on)")
    return flow


__all__ = ["FlowControl", "RateLimit", "Debounce", "BatchEvents", "Singleton", "parse_flow",
           "key_of", "condition_holds", "FLOW_OPTIONS", "DEFAULT_MAX_BATCH_SIZE",
           "IDEMPOTENCY_WINDOW_MS"]
