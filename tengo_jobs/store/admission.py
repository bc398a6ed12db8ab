"""Admission: the one place that decides whether and when a run starts.

Every path that starts runs — the intake (an event and the functions it triggers), cron
ticks, failure handlers, invoked children, replays — describes each run as a
:class:`~tengo_jobs.store.contract.RunStart` and passes it through :meth:`Admission.admit`
before any row is written, on either database. Flow control (concurrency, throttle,
rate limit, debounce, idempotency, priority, batching, singleton) hangs here: a rule
may delay a run, skip it with a reason, or fold it into another. A run is admitted due
at its event's ``ts`` (later when the event is future-dated).

The rules decided on stored state — ``idempotency``, ``rate_limit``, ``singleton``,
``debounce`` and ``batch_events`` — apply to the intake's events: :meth:`plan_batch` sets
the pairs (event, function with such rules) apart (:attr:`BatchPlan.flow`), and the event
store hands them to :meth:`Admission.admit_flow` inside its transaction, once the events
are stored and their duplicates known (:mod:`.flow`); the runs they start are admitted by
:meth:`admit` too (the throttle applies to them). Runs started by :meth:`admit` alone
(cron ticks, failure handlers, invoked children, replays) are not subject to them.

A function's ``throttle`` delays a run further: GCRA per throttle key
(:class:`~.slots.ThrottleStore`), first come, first started, none dropped; a delayed run
gets a timer like a future-dated event. Concurrency is not decided here but when a run
executes (:mod:`.slots`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Container, Iterable, Sequence, cast

from ..ids import new_id
from .contract import Accepted, Admitted, RunStart, admit_one
from .flow import FlowAdmission, FlowItem
from .slots import ThrottleStore

if TYPE_CHECKING:
    from ..core.flow_capacity import Throttle


@dataclasses.dataclass
class BatchPlan:
    """An intake batch made ready to store: each kept event with its new id (``events``:
    ``(index, event id, event, ts)``; a repeated ``id`` inside the batch keeps the first),
    and the admitted runs of every event; ``flow``: ``(index, event id, event, ts, function)``
    for each function with admission rules, decided in the store's transaction."""

    size: int
    events: list[tuple[Any, ...]]
    admitted: list[Admitted]
    same_as: dict[int, int]
    flow: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def flow_items(self, dups: Container[int]) -> list[FlowItem]:
        """The flow pairs of the events that were stored (not duplicates)."""
        return [FlowItem(event_id, event, ts, fn) for i, event_id, event, ts, fn in self.flow
                if i not in dups]

    @property
    def index_of(self) -> dict[str, int]:
        return {event_id: i for i, event_id, _, _ in self.events}

    @property
    def lifecycle(self) -> bool:
        """Whether an admitted run carries cancel matchers or deadlines."""
        return any(a.lifecycle is not None for a in self.admitted)

    def accepted(self, dups: dict[int, str], woken: list[str],
                 flow_due: Sequence[str] = ()) -> Accepted:
        """The :class:`~.contract.Accepted` answer once stored: ``dups`` maps a batch index
        to the original event id of a duplicate; ``flow_due``: runs the flow rules made due
        now."""
        from_index = {i: event_id for i, event_id, _, _ in self.events}
        from_index.update(dups)
        # every index is a kept event's or repeats one (same_as): none is None
        ids = cast(list[str], [from_index.get(i) or from_index.get(self.same_as.get(i, -1))
                               for i in range(self.size)])
        index_of = self.index_of
        due = [a.run_id for a in self.admitted
               if a.enqueued_at is not None and index_of[cast(str, a.event_id)] not in dups]
        return Accepted(ids=ids, due_run_ids=due + list(flow_due), woken_run_ids=woken)


class Admission:
    """Turns run starts into admitted runs (see the module docstring). ``functions`` looks
    a function definition up by id (the registry's ``find``): its throttle, its cancel
    matchers and deadlines; ``flow`` is set by the :class:`~tengo_jobs.store.Store` that
    composes it (it needs the run store's cancel)."""

    flow: FlowAdmission | None = None

    def __init__(self, functions: Callable[[str], object] | None = None,
                 throttles: ThrottleStore | None = None):
        self.functions = functions
        self.throttles = throttles

    def use_functions(self, lookup: Callable[[str], object]) -> None:
        """Where the admission finds a function's declaration by id."""
        self.functions = lookup

    def _function(self, function_id: str) -> object:
        return self.functions(function_id) if self.functions is not None else None

    def _lifecycle(self, function_id: str) -> object:
        fn = self._function(function_id)
        return fn if fn is not None and getattr(fn, "has_lifecycle", False) else None

    def admit_flow(self, plan: BatchPlan, dups: Container[int], now: int) -> list[str]:
        """Decide the plan's flow pairs inside the caller's transaction (see
        :mod:`.flow`); the runs due now."""
        items = plan.flow_items(dups)
        if not items:
            return []
        assert self.flow is not None, "the Store that composes the admission sets flow"
        return self.flow.admit(items, now)

    def plan_batch(self, batch: Iterable[tuple[Any, Any]], now: int) -> BatchPlan:
        """Ids for an intake batch's events and the admitted runs they start."""
        batch = list(batch)
        first_of: dict[str, int] = {}
        same_as: dict[int, int] = {}
        events, starts, flow, by_id = [], [], [], {}
        for i, (event, functions) in enumerate(batch):
            if event.id is not None:
                if event.id in first_of:
                    same_as[i] = first_of[event.id]
                    continue
                first_of[event.id] = i
            event_id = new_id(now)
            ts = event.ts if event.ts is not None else now
            events.append((i, event_id, event, ts))
            by_id[event_id] = event
            for fn in functions:
                if fn.flow.any:
                    flow.append((i, event_id, event, ts, fn))
                else:
                    starts.append(RunStart(function_id=fn.id, app_id=fn.app_id,
                                           event_id=event_id, due=ts,
                                           traceparent=event.traceparent))
        return BatchPlan(size=len(batch), events=events,
                         admitted=self.admit(starts, now, events=by_id), same_as=same_as,
                         flow=flow)

    def admit(self, starts: Iterable[RunStart], now: int, *, events: dict[str, Any] | None = None) -> list[Admitted]:
        """Each start admitted: its ids and when it is due (``events``: the intake's events
        by id, for throttle keys)."""
        starts = list(starts)
        dues = [start.due if start.due is not None and start.due > now else now
                for start in starts]
        if self.throttles is not None:
            self._throttle(starts, dues, events or {})
        return [admit_one(start, now, due=due, lifecycle=self._lifecycle(start.function_id))
                for start, due in zip(starts, dues)]

    def _throttle(self, starts: list[Any], dues: list[int], events: dict[str, Any]) -> None:
        """Delay the starts of throttled functions to when GCRA lets them start."""
        throttles = self.throttles
        assert throttles is not None  # admit calls this only with a throttle store
        groups: dict[str, tuple[Throttle, list[int]]] = {}
        for i, start in enumerate(starts):
            capacity = getattr(self._function(start.function_id), "capacity", None)
            if capacity is None or capacity.throttle is None:
                continue
            event = start.event or events.get(start.event_id)
            key = capacity.throttle_key(event.to_dict() if event is not None else {})
            groups.setdefault(key, (capacity.throttle, []))[1].append(i)
        for key in sorted(groups):  # one lock order for every batch
            throttle, indexes = groups[key]
            indexes.sort(key=lambda i: dues[i])  # first come, first started
            planned = throttles.schedule(
                key, [dues[i] for i in indexes], interval_ms=throttle.interval_ms,
                tolerance_ms=(throttle.limit + throttle.burst - 1) * throttle.interval_ms)
            for i, start_at in zip(indexes, planned):
                dues[i] = start_at


__all__ = ["Admission", "Admitted"]
