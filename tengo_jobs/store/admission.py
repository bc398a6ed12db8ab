"""Admission: the one place that decides whether and when a run starts.

Every path that starts runs — the intake (an event and the functions it triggers), cron
ticks, failure handlers, invoked children, replays — describes each run as a
:class:`~tengo_jobs.store.contract.RunStart` and passes it through :meth:`Admission.admit`
before any row is written, on either database. Flow control (concurrency, throttle,
rate limit, debounce, idempotency, priority, batching, singleton) hangs here: a rule
may delay a run, skip it with a reason, or fold it into another. A run is due at its
event's ``ts`` (later when the event is future-dated), and a function's ``throttle``
delays it further: GCRA per throttle key (:class:`~.slots.ThrottleStore`), first come,
first started, none dropped; a delayed run gets a timer like a future-dated event.
Concurrency is not decided here but when a run executes (:mod:`.slots`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ..ids import new_id
from .contract import Accepted, RunStart
from .schema import RunStatus
from .slots import ThrottleStore


@dataclasses.dataclass(frozen=True)
class Admitted:
    """A run that will start: its id, its event's id, when it is due, and whether it is
    due now (``enqueued_at`` set: the caller wakes it after commit) or later (a timer)."""

    start: object  # the RunStart
    run_id: str
    event_id: str | None
    due: int
    enqueued_at: int | None
    now: int

    def run_row(self) -> tuple:
        """The run row's values in :data:`.statements.RUN_ROW` order."""
        s = self.start
        return (self.run_id, s.app_id, s.function_id, self.event_id, RunStatus.QUEUED.value, 0,
                self.now, self.due, self.enqueued_at, s.unique_key, s.parent_run_id, 0)


@dataclasses.dataclass
class BatchPlan:
    """An intake batch made ready to store: each kept event with its new id (``events``:
    ``(index, event id, event, ts)``; a repeated ``id`` inside the batch keeps the first),
    and the admitted runs of every event."""

    size: int
    events: list[tuple]
    admitted: list[Admitted]
    same_as: dict[int, int]

    @property
    def index_of(self) -> dict[str, int]:
        return {event_id: i for i, event_id, _, _ in self.events}

    def accepted(self, dups: dict[int, str], woken: list[str]):
        """The :class:`~.contract.Accepted` answer once stored: ``dups`` maps a batch index
        to the original event id of a duplicate."""
        from_index = {i: event_id for i, event_id, _, _ in self.events}
        from_index.update(dups)
        ids = [from_index.get(i) or from_index.get(self.same_as.get(i, -1))
               for i in range(self.size)]
        index_of = self.index_of
        due = [a.run_id for a in self.admitted
               if a.enqueued_at is not None and index_of[a.event_id] not in dups]
        return Accepted(ids=ids, due_run_ids=due, woken_run_ids=woken)


class Admission:
    """Turns run starts into admitted runs (see the module docstring)."""

    def __init__(self, throttles: ThrottleStore | None = None):
        self.throttles = throttles
        self._functions: Callable[[str], object] = lambda function_id: None

    def use_functions(self, lookup: Callable[[str], object]) -> None:
        """Where the admission finds a function's declaration (its throttle) by id."""
        self._functions = lookup

    def plan_batch(self, batch, now: int) -> BatchPlan:
        """Ids for an intake batch's events and the admitted runs they start."""
        batch = list(batch)
        first_of: dict[str, int] = {}
        same_as: dict[int, int] = {}
        events, starts, by_id = [], [], {}
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
            starts += [RunStart(function_id=fn.id, app_id=fn.app_id, event_id=event_id, due=ts)
                       for fn in functions]
        return BatchPlan(size=len(batch), events=events, admitted=self.admit(starts, now, events=by_id),
                         same_as=same_as)

    def admit(self, starts, now: int, *, events: dict | None = None) -> list[Admitted]:
        """Each start admitted: its ids and when it is due (``events``: the intake's events
        by id, for throttle keys)."""
        starts = list(starts)
        dues = [start.due if start.due is not None and start.due > now else now
                for start in starts]
        self._throttle(starts, dues, events or {})
        out = []
        for start, due in zip(starts, dues):
            event_id = start.event_id if start.event is None else new_id(now)
            out.append(Admitted(start=start, run_id=new_id(now), event_id=event_id, due=due,
                                enqueued_at=now if due <= now else None, now=now))
        return out

    def _throttle(self, starts: list, dues: list[int], events: dict) -> None:
        """Delay the starts of throttled functions to when GCRA lets them start."""
        groups: dict[str, tuple[object, list[int]]] = {}
        for i, start in enumerate(starts):
            fn = self._functions(start.function_id)
            capacity = getattr(fn, "capacity", None)
            if capacity is None or capacity.throttle is None:
                continue
            event = start.event or events.get(start.event_id)
            key = capacity.throttle_key(event.to_dict() if event is not None else {})
            groups.setdefault(key, (capacity.throttle, []))[1].append(i)
        for key in sorted(groups):  # one lock order for every batch
            throttle, indexes = groups[key]
            indexes.sort(key=lambda i: dues[i])  # first come, first started
            planned = self.throttles.schedule(
                key, [dues[i] for i in indexes], interval_ms=throttle.interval_ms,
                tolerance_ms=(throttle.limit + throttle.burst - 1) * throttle.interval_ms)
            for i, start_at in zip(indexes, planned):
                dues[i] = start_at


__all__ = ["Admission", "Admitted"]
