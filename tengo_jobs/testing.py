"""Test helpers for users and for tengo_jobs itself.

Use as a pytest plugin (``pytest_plugins = ["tengo_jobs.testing"]``) for the
fixtures, or call :func:`make_test_runtime` and :class:`JobsTester` directly::

    def test_welcome(jobs_tester):
        jobs_tester.send({"name": "user.registered", "data": {"userId": "u1"}})
        runs = jobs_tester.run_until_idle()
        assert runs[0].status == "completed"

``run_until_idle`` executes runs in the calling thread and resolves sleeps and
retry backoffs instantly by moving a :class:`FakeClock` to the next timer.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Iterator, Sequence, cast

import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from .clock import FakeClock
from .config import Settings
from .core.events import SCHEDULED_EVENT, Event
from .core.functions import FunctionDef
from .errors import TengoJobsError
from .runtime import Runtime, set_runtime
from .store import RunRow, RunStart, StepRow
from .store.schema import WaitRow


class TestRuntime(Runtime):
    """A :class:`Runtime` for tests: ``close()`` also stops it being the current runtime and
    removes the temporary directory of its database (when it made one); usable as
    ``with make_test_runtime() as runtime:``."""

    __test__ = False  # not a test class, whatever pytest thinks of the name
    _tmpdir: str | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            previous = set_runtime(None)
            if previous is not None and previous is not self:
                set_runtime(previous)  # another runtime is current: leave it
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    def __enter__(self) -> "TestRuntime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_test_runtime(database_url: str | None = None, *, clock: FakeClock | None = None,
                      broker: Any = None, migrate: bool = True, **settings: Any) -> TestRuntime:
    """A runtime on ``database_url`` (default: a fresh SQLite file in a temporary directory,
    removed by ``close()`` or at exit), a StubBroker and a FakeClock, migrated (unless
    ``migrate=False``: a fixture that keeps one migrated database between tests) and set as
    current. Millisecond backoffs; any :class:`~tengo_jobs.Settings` field can be given."""
    tmpdir = None
    if database_url is None:
        tmpdir = tempfile.mkdtemp(prefix="tengo-test-")
        database_url = f"sqlite:///{tmpdir}/jobs.db"
    defaults: dict[str, Any] = dict(
        database_url=database_url, env="test", retry_base_ms=1, retry_max_ms=10,
        lease_ttl_ms=30_000, redeliver_after_ms=1_000, functions=())
    defaults.update(settings)
    try:
        runtime = TestRuntime(settings=Settings(**defaults), broker=broker or StubBroker(),
                              clock=clock or FakeClock(1_767_225_600_000))  # 2026-01-01T00:00:00Z
        if tmpdir is not None:
            runtime._tmpdir = tmpdir
            # a runtime never closed: its directory goes when it does, or at exit
            weakref.finalize(runtime, shutil.rmtree, tmpdir, ignore_errors=True)
        if migrate:
            runtime.migrate()
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    set_runtime(runtime)
    return runtime


class JobsTester:
    """Drive runs to completion in-process, moving a fake clock through sleeps and backoffs."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.clock = runtime.clock

    def send(self, events: Any, *, step_stubs: dict[str, Any] | None = None,
             **kwargs: Any) -> list[str]:
        """Send events as :meth:`Jobs.send <tengo_jobs.Jobs.send>` does. ``step_stubs``
        (``{"step-id": value}``): in the runs this send starts, a ``step.run`` /
        ``step.transaction`` with that id is not run: ``value`` is its result (stored and
        replayed as a real one, through the same encoding), or, when ``value`` is an
        exception instance, the step's function raises it (retried, then failed, as usual).
        Runs started later (child runs of ``step.invoke``, other sends) are not stubbed."""
        ids = self.runtime.send(events, **kwargs)
        if step_stubs:
            if not isinstance(step_stubs, dict) or not all(isinstance(k, str) for k in step_stubs):
                raise TengoJobsError("step_stubs must be a dict of step id -> value")
            stubs = self.runtime.executor.step_stubs
            if stubs is None:
                stubs = self.runtime.executor.step_stubs = {}
            for row in RunRow.select(RunRow.id).where(RunRow.event_id.in_(ids)):
                stubs[row.id] = dict(step_stubs)
        return ids

    def run_until_idle(self, *, max_executions: int = 100_000, advance_time: bool = True,
                       stop_at_waits: bool = False) -> list[RunRow]:
        """Execute every run until none is runnable, moving the fake clock to each next
        timer: past sleeps, retry backoffs, future-dated events, and the timeouts of
        ``step.wait_for_event`` and ``step.invoke`` (so a wait nobody answers returns
        ``None``). ``advance_time=False``: never move the clock. ``stop_at_waits=True``:
        do not move the clock past the timeout of a pending ``wait_for_event``; return
        instead, so the test can send the awaited event and call this again."""
        executions = 0
        while True:
            now = self.clock.now()
            self.runtime.timekeeper.fire_timers(now=now, limit=100_000)
            runnable = self.runtime.store.timers.runnable(now)
            if hasattr(self.runtime.broker, "flush_all"):
                self.runtime.broker.flush_all()  # we execute directly; drop the wake-up messages
            for run_id in runnable:
                self.runtime.executor.execute(run_id)
                executions += 1
                if executions > max_executions:
                    raise TengoJobsError(f"more than {max_executions} executions; is a run looping?")
            if runnable:
                continue
            due = self.runtime.store.timers.next_due()
            if due is None or not advance_time:
                break
            if stop_at_waits and WaitRow.select().where(WaitRow.kind == "step",
                                                       WaitRow.expires_at <= due).exists():
                break  # moving on would time a pending wait out
            if not isinstance(self.clock, FakeClock):
                raise TengoJobsError("run_until_idle needs a FakeClock to move through timers")
            self.clock.set(max(now, due))
        return self.runs()

    def tick(self, function: FunctionDef[..., Any], at: int) -> RunRow:
        """Fire ``function``'s cron tick at ``at`` (epoch ms) as the scheduler does (the same
        event and unique key), run everything until idle, and return that tick's run."""
        [run_id] = self.runtime.store.runs.start([RunStart(
            function_id=function.id, app_id=function.app_id,
            event=Event(name=SCHEDULED_EVENT, data={"cron": function.cron}, ts=at),
            unique_key=f"cron:{function.id}:{at}")], at)
        if run_id is None:
            raise TengoJobsError(f"the tick at {at} of {function.id!r} already has its run")
        self.runtime.enqueue([run_id])
        self.run_until_idle()
        return self.run(run_id)

    # -- reading results -------------------------------------------------------------------
    def run(self, run_id: str) -> RunRow:
        return self.runtime.store.queries.run(run_id)

    def runs(self, function_id: str | None = None) -> list[RunRow]:
        return self.runtime.store.queries.runs(function_id)

    def steps(self, run_id: str) -> list[StepRow]:
        return self.runtime.store.queries.steps(run_id)

    @staticmethod
    def output(run: RunRow) -> Any:
        return None if run.output is None else json.loads(run.output)

    @staticmethod
    def error(run: RunRow) -> Any:
        return None if run.error is None else json.loads(run.error)


# -- pytest fixtures ------------------------------------------------------------------------
@pytest.fixture
def tj_runtime(tmp_path: Path) -> Iterator[TestRuntime]:
    """A fresh runtime: SQLite in ``tmp_path``, StubBroker, FakeClock, millisecond backoffs."""
    with make_test_runtime(f"sqlite:///{tmp_path / 'jobs.db'}") as runtime:
        yield runtime


@pytest.fixture
def jobs_tester(tj_runtime: TestRuntime) -> JobsTester:
    return JobsTester(tj_runtime)


@pytest.fixture
def stub_broker(tj_runtime: TestRuntime) -> StubBroker:
    return cast(StubBroker, tj_runtime.broker)


@pytest.fixture
def stub_worker(stub_broker: StubBroker) -> Iterator[Worker]:
    worker = Worker(stub_broker, worker_timeout=100, worker_threads=4)
    worker.start()
    yield worker
    worker.stop()


def max_overlap(intervals: Sequence[Sequence[float]]) -> int:
    """The most ``(start, end)`` intervals open at one instant (an end sorts before a start
    at a tie): the concurrency a test or benchmark observed, e.g. from the times its steps
    recorded, to compare with a ``concurrency`` limit."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    inside = most = 0
    for _, d in edges:
        inside += d
        most = max(most, inside)
    return most


__all__ = ["make_test_runtime", "TestRuntime", "JobsTester", "FakeClock", "max_overlap"]
