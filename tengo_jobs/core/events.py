"""Events: the contract every producer (Python, HTTP, the Inngest SDKs) is held to.

A batch is validated whole before anything is stored: one bad event rejects
the batch, and the error names the field and the position in the batch.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NoReturn

from ..errors import EventTooLargeError, EventValidationError
from ..serde import to_jsonable

MAX_NAME_LENGTH = 256
MAX_EVENT_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 5_000
RESERVED_PREFIXES = ("tengo/", "inngest/")
FUNCTION_FAILED_EVENT = "inngest/function.failed"
SCHEDULED_EVENT = "inngest/scheduled.timer"
FUNCTION_INVOKED_EVENT = "inngest/function.invoked"
DEDUPE_WINDOW_MS = 24 * 3_600_000
MAX_VERSION_LENGTH = 64  # the width of the events.v column
MAX_TS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z in ms


def storable_text(value: str) -> bool:
    """False for text no database column can hold: NUL characters or unpaired surrogates."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Event:
    """An event as producers send it. ``ts`` is epoch milliseconds; ``id`` dedupes for 24 h."""

    name: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    id: str | None = None
    ts: int | None = None
    v: str | None = None
    user: dict[str, Any] | None = None
    # The W3C ``traceparent`` of the caller it was sent from (the event API's header, or the
    # active span of ``jobs.send``): stored with the event and its runs, whose trace
    # continues the caller's. Not part of the event's body (``to_dict``).
    traceparent: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "data": self.data}
        for key in ("id", "ts", "v", "user"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body

    def copy(self, **changes: Any) -> "Event":
        return dataclasses.replace(self, **changes)


def _where(index: int | None) -> str:
    return "" if index is None else f" (event {index} in the batch)"


def _fail(message: str, field: str, index: int | None,
          cls: type[EventValidationError] = EventValidationError) -> NoReturn:
    raise cls(message + _where(index), field=field, index=index)


def validate_event(raw: Any, *, index: int | None = None, internal: bool = False) -> Event:
    """Check one event (a dict or :class:`Event`) and return it as an :class:`Event`."""
    if isinstance(raw, Event):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        _fail(f"an event must be an object, got {type(raw).__name__}", "event", index)
    name = raw.get("name")
    if name is None or name == "":
        _fail("event 'name' is required", "name", index)
    if not isinstance(name, str):
        _fail(f"event 'name' must be a string, got {type(name).__name__}", "name", index)
    if len(name) > MAX_NAME_LENGTH:
        _fail(f"event 'name' is {len(name)} characters; the limit is {MAX_NAME_LENGTH}", "name", index)
    if not internal and name.lower().startswith(RESERVED_PREFIXES):
        _fail(f"event name {name!r} uses a reserved prefix ({', '.join(RESERVED_PREFIXES)})",
              "name", index)
    data = raw.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(f"event 'data' must be an object, got {type(data).__name__}", "data", index)
    ts = raw.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        if isinstance(ts, float) and ts.is_integer():
            ts = int(ts)
        else:
            _fail(f"event 'ts' must be an integer number of milliseconds since the epoch, got {ts!r}",
                  "ts", index)
    if ts is not None and ts < 0:
        _fail(f"event 'ts' must not be negative, got {ts}", "ts", index)
    if ts is not None and ts > MAX_TS:
        _fail("event 'ts' is after the year 9999 (milliseconds since the epoch expected)",
              "ts", index)
    event_id = raw.get("id")
    if event_id == "":
        event_id = None
    if event_id is not None and (not isinstance(event_id, str) or len(event_id) > 256):
        _fail("event 'id' must be a string of at most 256 characters", "id", index)
    v = raw.get("v")
    if v is not None and (not isinstance(v, str) or len(v) > MAX_VERSION_LENGTH):
        _fail(f"event 'v' must be a string of at most {MAX_VERSION_LENGTH} characters", "v", index)
    for field, value in (("name", name), ("id", event_id), ("v", v)):
        if value is not None and not storable_text(value):
            _fail(f"event '{field}' contains a NUL character or an unpaired surrogate", field, index)
    user = raw.get("user")
    if user is not None and not isinstance(user, dict):
        _fail("event 'user' must be an object", "user", index)
    event = Event(name=name, data=data, id=event_id, ts=ts, v=v, user=user)
    try:
        size = len(json.dumps(event.to_dict(), separators=(",", ":")).encode())
    except (TypeError, ValueError):
        # datetime, Decimal, UUID, dataclasses, pydantic models: stored as typed envelopes
        # (tengo_jobs.serde), re-created for the handler.
        try:
            event = Event(name=name, data=to_jsonable(data), id=event_id, ts=ts, v=v, user=user)
            size = len(json.dumps(event.to_dict(), separators=(",", ":")).encode())
        except (TypeError, ValueError) as exc:
            _fail(f"event 'data' is not JSON-serializable: {exc}", "data", index)
    if size > MAX_EVENT_BYTES:
        _fail(f"event is {size} bytes; the limit is {MAX_EVENT_BYTES} (512 KiB)", "event", index,
              EventTooLargeError)
    return event


def validate_batch(payload: Any, *, internal: bool = False) -> list[Event]:
    """Validate one event or a list of them; all or nothing."""
    if isinstance(payload, (dict, Event)):
        return [validate_event(payload, internal=internal)]
    if not isinstance(payload, (list, tuple)):
        raise EventValidationError(
            f"expected an event object or a list of events, got {type(payload).__name__}",
            field="event")
    if len(payload) > MAX_BATCH_EVENTS:
        raise EventTooLargeError(
            f"{len(payload)} events in one request; the limit is {MAX_BATCH_EVENTS}", field="events")
    return [validate_event(item, index=i, internal=internal) for i, item in enumerate(payload)]


