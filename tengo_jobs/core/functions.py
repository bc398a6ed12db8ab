"""Function definitions: what ``@jobs.function(...)`` declares, validated when declared."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Generic, ParamSpec, TypeVar

from ..errors import ConfigurationError
from .cron import parse_cron
from .lifecycle import CancelOn, Timeouts, parse_cancel_on, parse_timeouts
from .flow import FLOW_OPTIONS, FlowControl, parse_flow
from .flow_capacity import Capacity, parse_capacity

DEFAULT_RETRIES = 4
MAX_RETRIES = 20
MISFIRE_POLICIES = ("coalesce", "skip", "all")

# Inngest flow-control options the design names. They are refused, loudly, until they are
# enforced: accepting and ignoring a concurrency limit would be a lie about what runs.
# (``idempotency``, ``rate_limit``, ``singleton``, ``debounce`` and ``batch_events`` are
# enforced at admission: :mod:`.flow`; ``cancel_on`` and ``timeouts``: :mod:`.lifecycle`;
# ``concurrency``, ``throttle`` and ``priority``: :mod:`.flow_capacity`.)
UNSUPPORTED_OPTIONS: tuple[str, ...] = ()
CAPACITY_OPTIONS = ("concurrency", "throttle", "priority")


P = ParamSpec("P")
R = TypeVar("R")


def runtime_of(handler: Callable[..., Any]) -> str:
    """The driver a handler needs: ``python-async`` for an ``async def`` one."""
    return "python-async" if inspect.iscoroutinefunction(handler) else "python"


@dataclasses.dataclass(eq=False)
class FunctionDef(Generic[P, R]):
    """A durable function: its id, triggers, retry policy and handler ``handler(ctx, step)``.

    Generic in the handler's signature: calling the definition calls the handler (with
    its parameters and return type, for type checkers too)."""

    id: str
    app_id: str
    handler: Callable[P, R]
    events: tuple[str, ...] = ()
    cron: str | None = None
    retries: int = DEFAULT_RETRIES
    on_failure: "FunctionDef[..., Any] | None" = None
    misfire: str = "coalesce"
    name: str | None = None
    is_failure_handler: bool = False
    failure_of: str | None = None
    # Which driver executes the handler (``python``: called in the worker's thread;
    # ``python-async``: an ``async def`` handler, on the worker's event loop).
    runtime: str = "python"
    # concurrency / throttle / priority (``None``: none of them, today's path, no extra cost)
    capacity: Capacity | None = None
    # Admission-time flow control (:mod:`.flow`).
    flow: FlowControl = dataclasses.field(default_factory=FlowControl)
    # Lifecycle (core/lifecycle.py): events that cancel a run, and its start/finish limits.
    cancel_on: tuple[CancelOn, ...] = ()
    timeouts: Timeouts | None = None
    # The client's middleware (tengo_jobs.middleware), set by ``Jobs.function``: () for none.
    middleware: tuple[Any, ...] = ()
    # ``event_schema=``: a pydantic model the trigger event's data must validate against
    # (checked at intake, before any run starts); None for none.
    event_schema: Any = None

    @property
    def has_lifecycle(self) -> bool:
        """Whether its runs carry cancel matchers or deadlines (cleaned up when they end)."""
        return bool(self.cancel_on or self.timeouts)

    @property
    def qualname(self) -> str:
        h = self.handler
        return f"{getattr(h, '__module__', '?')}.{getattr(h, '__qualname__', repr(h))}"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the handler directly (no durability); handy in plain unit tests."""
        return self.handler(*args, **kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app_id": self.app_id,
            "name": self.name or self.id,
            "triggers": ([{"event": e} for e in self.events]
                         + ([{"cron": self.cron}] if self.cron else [])),
            "retries": self.retries,
            "on_failure": self.on_failure.id if self.on_failure else None,
            "failure_handler_of": self.failure_of,
            "flow_control": {**self.flow.describe(),
                             **(self.capacity.describe() if self.capacity else {})},
        }


def _check_id(fn_id: Any, what: str = "function id") -> str:
    if not isinstance(fn_id, str) or not fn_id.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, got {fn_id!r}")
    if len(fn_id) > 100:
        raise ConfigurationError(f"{what} {fn_id[:40]!r}... is longer than 100 characters")
    return fn_id


def check_event_schema(where: str, schema: Any, events: tuple[str, ...]) -> None:
    """``event_schema=`` must be a pydantic model class, on a function with an event trigger."""
    try:
        import pydantic
    except ImportError:
        raise ConfigurationError(f"{where}: event_schema needs pydantic (pip install "
                                 "'tengo-jobs[pydantic]')") from None
    if not (isinstance(schema, type) and issubclass(schema, pydantic.BaseModel)):
        raise ConfigurationError(f"{where}: event_schema must be a pydantic model class "
                                 f"(a subclass of pydantic.BaseModel), got {schema!r}")
    if not events:
        raise ConfigurationError(f"{where}: event_schema applies to event triggers; give "
                                 "event='name'")


def build_function(app_id: str, fn_id: str, handler: Callable[P, R], *, event: Any = None,
                   cron: Any = None, retries: Any = DEFAULT_RETRIES, on_failure: Any = None,
                   misfire: Any = "coalesce", name: Any = None, cancel_on: Any = None,
                   timeouts: Any = None, event_schema: Any = None,
                   **options: Any) -> FunctionDef[P, R]:
    """Validate the decorator's arguments and build the definition (and its failure handler)."""
    _check_id(fn_id)
    where = f"function {fn_id!r}"
    capacity_options = {k: options.pop(k) for k in CAPACITY_OPTIONS if k in options}
    for key in options:
        if key in FLOW_OPTIONS:
            continue
        if key in UNSUPPORTED_OPTIONS:
            raise ConfigurationError(f"{where}: option {key!r} is not supported by this version of "
                                     "tengo_jobs (it would be silently ignored, so it is refused)")
        raise ConfigurationError(f"{where}: unknown option {key!r}")
    if not callable(handler):
        raise ConfigurationError(f"{where}: the handler must be callable")
    if event is None and cron is None:
        raise ConfigurationError(f"{where}: give a trigger, event='name' or cron='* * * * *'")
    events: tuple[str, ...] = ()
    if event is not None:
        names = [event] if isinstance(event, str) else list(event)
        for n in names:
            if not isinstance(n, str) or not n or len(n) > 256:
                raise ConfigurationError(f"{where}: event trigger {n!r} must be a non-empty name "
                                         "of at most 256 characters")
        events = tuple(names)
    if cron is not None:
        if not isinstance(cron, str) or not cron.strip():
            raise ConfigurationError(f"{where}: cron must be a string like '0 9 * * *'")
        parse_cron(cron, function_id=fn_id)  # validated at declaration: bad cron fails at start-up
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigurationError(f"{where}: retries must be an integer from 0 to {MAX_RETRIES}, "
                                 f"got {retries!r}")
    if misfire not in MISFIRE_POLICIES:
        raise ConfigurationError(f"{where}: misfire must be one of {', '.join(MISFIRE_POLICIES)}")
    flow = parse_flow(where, {k: v for k, v in options.items() if k in FLOW_OPTIONS})
    if flow.any and not events:
        raise ConfigurationError(f"{where}: {', '.join(sorted(flow.describe()))} apply to event "
                                 "triggers; give event='name' (cron ticks are not flow-controlled)")
    if event_schema is not None:
        check_event_schema(where, event_schema, events)
    fn = FunctionDef(id=fn_id, app_id=app_id, handler=handler, runtime=runtime_of(handler),
                     event_schema=event_schema,
                     events=events, cron=cron,
                     retries=retries, misfire=misfire, name=name, flow=flow,
                     cancel_on=parse_cancel_on(cancel_on, where),
                     timeouts=parse_timeouts(timeouts, where),
                     capacity=parse_capacity(fn_id, **capacity_options))
    if on_failure is not None:
        if not callable(on_failure):
            raise ConfigurationError(f"{where}: on_failure must be a callable handler(ctx, step)")
        fn.on_failure = FunctionDef(id=f"{fn_id}-failure", app_id=app_id, handler=on_failure,
                                    runtime=runtime_of(on_failure),
                                    retries=retries, is_failure_handler=True, failure_of=fn_id,
                                    name=f"{name or fn_id} (on failure)")
    return fn
