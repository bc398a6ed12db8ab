"""step.parallel: branches execute at the same time, each checkpointed and retried on its
own; a branch that waits suspends the run without losing the branches that completed."""

from __future__ import annotations

import threading

import pytest

from tengo_jobs import RunStatus, StepError
from tengo_jobs.errors import StepUsageError
from tengo_jobs.store.schema import StepStatus


def test_branches_execute_at_the_same_time_and_return_in_order(jobs, tester):
    # Every branch waits for all ten to be inside their step at once: run one after
    # another, the first would time out waiting for the others and fail its step.
    together = threading.Barrier(10, timeout=20)

    def meet(i):
        together.wait()
        return {"branch": i}

    @jobs.function("fan", event="go", retries=0)
    def fan(ctx, step):
        return step.parallel([lambda i=i: step.run(f"b{i}", meet, i) for i in range(10)])

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == [{"branch": i} for i in range(10)]
    steps = tester.steps(run.id)
    assert sorted(s.key for s in steps) == sorted(f"b{i}" for i in range(10))
    assert all(s.status == StepStatus.COMPLETED for s in steps)


def test_a_branch_that_sleeps_suspends_the_run_and_completed_branches_are_not_rerun(jobs, tester):
    calls = []
    lock = threading.Lock()

    def work(name):
        with lock:
            calls.append(name)
        return name

    def slow_branch(step):
        step.sleep("nap", "1h")
        return step.run("after-nap", work, "after-nap")

    @jobs.function("mixed", event="go")
    def mixed(ctx, step):
        a, b = step.parallel([lambda: step.run("quick", work, "quick"),
                              lambda: slow_branch(step)])
        return step.run("join", work, f"{a}+{b}")

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle(advance_time=False)
    assert run.status == RunStatus.SLEEPING
    assert calls == ["quick"]
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == "quick+after-nap"
    assert calls == ["quick", "after-nap", "quick+after-nap"]  # "quick" ran once


def test_a_failing_branch_is_retried_on_its_own(jobs, tester):
    attempts = {"flaky": 0, "steady": 0}

    def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise RuntimeError("first attempt fails")
        return "flaky-ok"

    def steady():
        attempts["steady"] += 1
        return "steady-ok"

    @jobs.function("retry-branch", event="go", retries=2)
    def retry_branch(ctx, step):
        return step.parallel([lambda: step.run("flaky", flaky), lambda: step.run("steady", steady)])

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == ["flaky-ok", "steady-ok"]
    assert attempts == {"flaky": 2, "steady": 1}
    flaky_step = next(s for s in tester.steps(run.id) if s.key == "flaky")
    assert flaky_step.attempts == 2


def test_a_branch_that_fails_for_good_raises_step_error_in_the_handler(jobs, tester):
    def broken():
        raise ValueError("no")

    @jobs.function("one-fails", event="go", retries=0)
    def one_fails(ctx, step):
        try:
            step.parallel([lambda: step.run("ok", lambda: 1), lambda: step.run("bad", broken)])
        except StepError as exc:
            return {"caught": exc.step_id}

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == {"caught": "bad"}


def test_parallel_refuses_what_is_not_a_list_of_callables(jobs, tester):
    @jobs.function("wrong", event="go", retries=0)
    def wrong(ctx, step):
        try:
            step.parallel([step.run("eager", lambda: 1)])
        except StepUsageError as exc:
            return str(exc)

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert "list of callables" in tester.output(run)
