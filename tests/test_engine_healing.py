"""A database connection killed under a live runtime (a PostgreSQL restart, a failover,
``pg_terminate_backend``) heals by itself: no process restart (issue 8 item 1).

The connection is killed from a second connection, as the server would end it. A run in
flight carries on (its store calls retry across the lost connection); anything else
fails at most the one call that found the connection dead, and the next call opens a
new connection.
"""

from __future__ import annotations

import time

import pytest

from backends import second_connection
from tengo_jobs import RunStatus
from tengo_jobs.store.connection import UNAVAILABLE_ERRORS

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _kill_connection(runtime) -> int:
    """Terminate the server process behind this thread's connection of ``runtime``."""
    pid = runtime.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with second_connection(runtime) as admin:
        assert admin.scalar("SELECT pg_terminate_backend(?)", (pid,)) is True
        deadline = time.monotonic() + 5
        while admin.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", (pid,)):
            assert time.monotonic() < deadline, "the backend did not exit"
            time.sleep(0.01)
    return pid


def _backend_pid(runtime) -> int:
    return runtime.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def test_a_run_whose_connection_is_killed_between_steps_completes_with_each_step_once(
        backend, jobs, tester):
    calls = []

    @jobs.function("three-steps", event="go")
    def fn(ctx, step):
        a = step.run("a", lambda: calls.append("a") or 1)
        b = step.run("b", lambda: calls.append("b") or _kill_connection(backend) and a + 1)
        return step.run("c", lambda: calls.append("c") or b + 1)

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and tester.output(run) == 3
    assert calls == ["a", "b", "c"]  # the checkpoint of b went through on a new connection


def test_an_executor_whose_idle_connection_was_killed_executes_the_next_run(backend, jobs,
                                                                            tester):
    jobs.function("quick", event="go")(lambda ctx, step: step.run("s", lambda: "done"))
    tester.send({"name": "go", "data": {}})
    [run] = tester.runs()
    killed = _kill_connection(backend)
    assert backend.executor.execute(run.id) == "completed"  # in the same call
    assert tester.output(tester.run(run.id)) == "done"
    assert _backend_pid(backend) != killed


@pytest.mark.parametrize("call", [
    lambda rt: rt.timekeeper.fire_timers(),
    lambda rt: rt.timekeeper.sweep(),
    lambda rt: rt.send({"name": "go", "data": {}}),
    lambda rt: rt.store.queries.runs(None),
], ids=["fire_timers", "sweep", "send", "queries"])
def test_a_killed_idle_connection_fails_at_most_one_call_and_the_next_heals(backend, jobs,
                                                                            tester, call):
    @jobs.function("napper", event="go")
    def napper(ctx, step):
        step.sleep("nap", "1m")
        return "awake"

    tester.send({"name": "go", "data": {}})
    tester.run_until_idle(advance_time=False)
    backend.clock.advance(60_000)  # the nap is over
    killed = _kill_connection(backend)
    try:
        call(backend)
    except UNAVAILABLE_ERRORS:
        pass  # this call found the connection dead (a statement is never replayed)
    call(backend)  # a new connection, no restart
    assert _backend_pid(backend) != killed
    runs = tester.run_until_idle()
    assert runs and {r.status for r in runs} == {RunStatus.COMPLETED}
