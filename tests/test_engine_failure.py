"""Run outcomes: outputs stored, output limits, failed runs and their ``on_failure`` handler."""

from __future__ import annotations

import sys

import pytest

from tengo_jobs.engine.executor import UNKNOWN_FUNCTION_DELAY_MS

from tengo_jobs import NonRetriableError, RunStatus
from tengo_jobs.core.events import FUNCTION_FAILED_EVENT
from tengo_jobs.store.schema import EventRow
from tengo_jobs.store.schema import RunRow as Run, StepStatus
from tengo_jobs.serde import MAX_OUTPUT_BYTES


def test_the_return_value_is_stored_as_the_run_output(jobs, tester):
    jobs.function("out", event="go")(lambda ctx, step: {"success": True, "items": [1, "two", None]})
    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.COMPLETED
    assert tester.output(run) == {"success": True, "items": [1, "two", None]}
    assert run.ended_at is not None and run.started_at is not None and run.error is None


def test_a_run_output_over_4_mb_fails_the_run_with_a_clear_error(jobs, tester):
    jobs.function("huge", event="go")(lambda ctx, step: "x" * MAX_OUTPUT_BYTES)
    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED
    err = tester.error(run)
    assert err["name"] == "OutputTooLargeError"
    assert "function 'huge'" in err["message"] and f"limit is {MAX_OUTPUT_BYTES} bytes" in err["message"]
    assert run.output is None


def test_a_step_output_over_the_limit_fails_the_step_with_a_catchable_error(jobs, tester):
    calls = []

    @jobs.function("huge-step", event="go", retries=3)
    def fn(ctx, step):
        try:
            step.run("download", lambda: calls.append(1) or "x" * (MAX_OUTPUT_BYTES + 1))
        except Exception as exc:  # noqa: BLE001
            return {"caught": type(exc).__name__, "message": str(exc)}

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    out = tester.output(run)
    assert out["caught"] == "StepError"
    assert "OutputTooLargeError" in out["message"] and "step 'download'" in out["message"]
    assert len(calls) == 1  # size is not a transient error: no retries spent on it
    step = tester.steps(run.id)[0]
    assert step.status == StepStatus.FAILED and step.output is None


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes"])
def test_a_non_json_run_output_fails_the_run_naming_the_function(jobs, tester, value):
    jobs.function("odd", event="go")(lambda ctx, step: value)
    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED
    err = tester.error(run)
    assert err["name"] == "NotSerializableError" and "function 'odd'" in err["message"]


def test_a_non_json_step_output_fails_the_step_naming_it(jobs, tester):
    @jobs.function("odd-step", event="go", retries=2)
    def fn(ctx, step):
        step.run("make-object", object)

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED
    assert "step 'make-object'" in tester.error(run)["message"]
    assert "not JSON-serializable" in tester.error(run)["message"]


def test_an_uncaught_error_fails_the_run_and_starts_on_failure_once_as_its_own_run(jobs, tester):
    seen = []

    def on_failure(ctx, step):
        seen.append(ctx.event)
        step.run("notify-admin", lambda: "notified")
        return {"handled": ctx.event.data["run_id"]}

    @jobs.function("flaky-operation", event="test.flaky-operation", retries=1,
                   on_failure=on_failure)
    def unstable(ctx, step):
        step.run("risky", lambda: (_ for _ in ()).throw(RuntimeError("the risky part broke")))

    ids = jobs.send({"name": "test.flaky-operation", "data": {"opId": 7}, "id": "op-7"})
    runs = tester.run_until_idle()
    failed = [r for r in runs if r.function_id == "flaky-operation"]
    handlers = [r for r in runs if r.function_id == "flaky-operation-failure"]
    assert len(failed) == 1 and failed[0].status == RunStatus.FAILED
    assert len(handlers) == 1 and handlers[0].status == RunStatus.COMPLETED
    handler_run = handlers[0]
    assert handler_run.parent_run_id == failed[0].id
    assert tester.output(handler_run) == {"handled": failed[0].id}
    assert len(seen) == 1
    event = seen[0]
    assert event.name == FUNCTION_FAILED_EVENT
    assert event.data["run_id"] == failed[0].id
    assert event.data["function_id"] == "flaky-operation"
    # the step's own error, as Inngest reports it, with the step that failed
    assert event.data["error"] == {"name": "RuntimeError", "message": "the risky part broke",
                                   "step": "risky"}
    assert event.data["event"]["name"] == "test.flaky-operation"
    assert event.data["event"]["data"] == {"opId": 7}
    assert event.data["event"]["id"] == "op-7"
    assert EventRow.get_by_id(handler_run.event_id).name == FUNCTION_FAILED_EVENT
    assert ids  # the original event id was returned to the sender
    # nothing more happens however often the engine looks again
    tester.run_until_idle()
    assert Run.select().where(Run.function_id == "flaky-operation-failure").count() == 1


def test_a_completed_run_does_not_start_its_failure_handler(jobs, tester):
    jobs.function("fine", event="go", on_failure=lambda ctx, step: None)(lambda ctx, step: "ok")
    jobs.send({"name": "go", "data": {}})
    runs = tester.run_until_idle()
    assert [r.function_id for r in runs] == ["fine"]


def test_a_failing_failure_handler_does_not_start_another_one(jobs, tester):
    def on_failure(ctx, step):
        raise RuntimeError("the handler broke too")

    @jobs.function("double-fault", event="go", retries=0, on_failure=on_failure)
    def fn(ctx, step):
        raise ValueError("first fault")

    jobs.send({"name": "go", "data": {}})
    runs = tester.run_until_idle()
    assert sorted((r.function_id, r.status.value) for r in runs) == [
        ("double-fault", "failed"), ("double-fault-failure", "failed")]
    by_fn = {r.function_id: tester.error(r)["message"] for r in runs}
    assert by_fn == {"double-fault": "first fault", "double-fault-failure": "the handler broke too"}


def test_an_error_raised_outside_any_step_retries_the_function_then_fails(jobs, tester):
    """As Inngest does: the whole function runs again (stored steps replay), retries times."""
    calls = []

    @jobs.function("plain-raise", event="go")
    def fn(ctx, step):
        calls.append(1)
        raise KeyError("documentId")

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED and len(calls) == 5  # 1 + the default 4 retries
    assert tester.error(run) == {"name": "KeyError", "message": "'documentId'"}


def test_a_non_retriable_error_outside_any_step_fails_the_run_at_once(jobs, tester):
    calls = []

    @jobs.function("give-up", event="go")
    def fn(ctx, step):
        calls.append(1)
        raise NonRetriableError("no point trying again")

    jobs.send({"name": "go", "data": {}})
    run = tester.run_until_idle()[0]
    assert run.status == RunStatus.FAILED and len(calls) == 1


def test_a_function_retried_outside_any_step_replays_its_stored_steps(jobs, tester):
    ran = []

    @jobs.function("flaky-tail", event="go")
    def fn(ctx, step):
        value = step.run("once", lambda: ran.append("step") or 41)
        if ctx.attempt < 2:
            raise RuntimeError(f"not yet (attempt {ctx.attempt})")
        return value + 1

    jobs.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and tester.output(run) == 42
    assert ran == ["step"]  # the stored step replayed on both retries


def test_a_run_of_a_function_this_worker_does_not_know_waits_for_one_that_does(jobs, tester):
    """A rolling deploy: the web process knows a new function, an old worker takes its run."""
    fn = jobs.function("new-fn", event="go")(lambda ctx, step: "done")
    jobs.send({"name": "go", "data": {}})
    registry = tester.runtime.registry
    registry.remove(fn.id)  # this worker runs the old code
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.QUEUED and run.error is None  # released, not failed
    assert run.wake_at == tester.clock.now() + UNKNOWN_FUNCTION_DELAY_MS
    registry.add(fn)  # the new code arrives
    tester.clock.advance(UNKNOWN_FUNCTION_DELAY_MS)
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED and tester.output(run) == "done"


@pytest.mark.parametrize("crash", [lambda: sys.exit(3), lambda: (_ for _ in ()).throw(_Fatal())],
                         ids=["sys.exit", "BaseException"])
def test_a_step_that_exits_or_raises_a_base_exception_is_charged_an_attempt(jobs, tester, crash):
    """Every execution of the step counts: 1 + retries attempts, then failed, on_failure once."""
    calls, handled = [], []

    @jobs.function("exits", event="go", retries=2,
                   on_failure=lambda ctx, step: handled.append(ctx.event.data["error"]))
    def fn(ctx, step):
        step.run("poison", lambda: calls.append(1) or crash())

    jobs.send({"name": "go", "data": {}})
    runs = {r.function_id: r for r in tester.run_until_idle()}
    assert len(calls) == 3
    assert runs["exits"].status == RunStatus.FAILED
    assert tester.error(runs["exits"])["step"] == "poison"
    [step] = tester.steps(runs["exits"].id)
    assert step.status == StepStatus.FAILED and step.attempts == 3
    assert runs["exits-failure"].status == RunStatus.COMPLETED and len(handled) == 1
    tester.run_until_idle()
    assert len(calls) == 3 and len(handled) == 1  # nothing runs again


class _Fatal(BaseException):
    """Not an Exception: what a library's fatal error or a signal handler might raise."""


def test_an_attempt_charged_to_an_execution_that_died_is_logged_as_died(jobs, tester,
                                                                       monkeypatch):
    jobs.function("survivor", event="go", retries=2)(
        lambda ctx, step: step.run("s", lambda: "done"))
    jobs.send({"name": "go", "data": {}})
    run_id = Run.get().id
    now = tester.clock.now()
    # an execution took the lease and was SIGKILLed before its step recorded anything
    Run.update(status=RunStatus.RUNNING, lease_owner="dead-worker", inflight=1,
               lease_expires_at=now + 5_000).where(Run.id == run_id).execute()
    tester.clock.advance(5_001)
    assert tester.runtime.executor.execute(run_id) == "completed"
    [step] = tester.runtime.store.queries.get_run(run_id)["steps"]
    assert step["attempts"] == 2 and step["status"] == "completed"
    assert [(a["attempt"], a["error"]["message"]) for a in step["attempts_log"]] == [
        (1, "the execution died")]
    from click.testing import CliRunner
    from tengo_jobs import cli
    monkeypatch.setattr(cli, "_boot", lambda **kw: tester.runtime)
    shown = CliRunner().invoke(cli.main, ["runs", "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "attempt 1 failed: StepCrashedError: the execution died" in shown.output
