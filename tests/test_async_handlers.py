"""``async def`` handlers: an AsyncStep with the sync path's checkpoints, retries, replay,
waits and errors; ``send_async``; ``get_run`` / ``wait_for_run``; and, through a real
``dramatiq`` worker process, awaiting runs that hold no worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from tengo_jobs import AsyncStep, Context, FunctionDef, Jobs, RunResult, RunStatus, Settings, Step
from tengo_jobs.core.registry import Registry
from tengo_jobs.errors import RunNotFoundError
from tengo_jobs.runtime import Runtime, set_runtime
from tengo_jobs.store.schema import RunRow, StepStatus


def _error(run) -> dict:
    return json.loads(run.error)


def test_an_async_handler_runs_async_and_plain_steps_and_sleeps_with_each_step_run_once(jobs, tester):
    calls = {"fetch": 0, "plain": 0}

    async def fetch(user_id: str) -> dict:
        calls["fetch"] += 1
        await asyncio.sleep(0)
        return {"user": user_id}

    def plain(x: int) -> int:
        calls["plain"] += 1
        return x * 2

    @jobs.function("enrich", event="async.user.registered", retries=0)
    async def enrich(ctx: Context, step: AsyncStep):
        profile = await step.run("fetch-profile", fetch, ctx.event.data["userId"])
        await step.sleep("cool-down", "45s")
        doubled = await step.run("double", plain, 21)
        return {"profile": profile, "doubled": doubled}

    assert enrich.runtime == "python-async"
    tester.send({"name": "async.user.registered", "data": {"userId": "u1"}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == {"profile": {"user": "u1"}, "doubled": 42}
    assert [(s.key, s.status) for s in tester.steps(run.id)] == [
        ("fetch-profile", StepStatus.COMPLETED), ("cool-down", StepStatus.COMPLETED),
        ("double", StepStatus.COMPLETED)]
    assert calls == {"fetch": 1, "plain": 1}  # the step before the sleep replayed, not re-run


def test_an_async_step_is_retried_and_a_handler_error_retries_the_function(jobs, tester):
    attempts = {"flaky": 0, "handler": 0}

    async def flaky():
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise RuntimeError("not yet")
        return "ok"

    @jobs.function("retrying", event="go", retries=3)
    async def retrying(ctx, step):
        value = await step.run("flaky", flaky)
        attempts["handler"] += 1
        if attempts["handler"] < 2:
            raise ValueError("outside any step")
        return value

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    [step] = tester.steps(run.id)
    assert step.attempts == 3 and attempts["flaky"] == 3  # not re-run by the function retry
    assert attempts["handler"] == 2  # the function was retried once, its step replayed


def test_an_async_step_that_fails_for_good_fails_the_run_with_its_step_error(jobs, tester):
    async def boom():
        raise KeyError("nope")

    @jobs.function("doomed", event="go", retries=1)
    async def doomed(ctx, step):
        await step.run("boom", boom)

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    assert _error(run)["step"] == "boom"
    [step] = tester.steps(run.id)
    assert step.status == StepStatus.FAILED and step.attempts == 2


def test_wait_for_event_invoke_and_send_event_are_awaited(jobs, tester):
    @jobs.function("child", event="never")
    async def child(ctx, step):
        return {"child_of": ctx.event.data["parent"]}

    @jobs.function("parent", event="order.created", retries=0)
    async def parent(ctx, step):
        paid = await step.wait_for_event("wait-paid", event="order.paid", timeout="1d",
                                         match="data.orderId")
        got = await step.invoke("call-child", function=child, data={"parent": ctx.run_id})
        ids = await step.send_event("notify", {"name": "order.done", "data": {}})
        missing = await step.wait_for_event("wait-never", event="nothing", timeout="1h")
        return {"paid": paid["data"]["amount"], "child": got, "sent": len(ids),
                "missing": missing}

    tester.send({"name": "order.created", "data": {"orderId": "o1"}})
    tester.run_until_idle(advance_time=False)
    tester.send({"name": "order.paid", "data": {"orderId": "o1", "amount": 5}})
    runs = tester.run_until_idle()
    [run] = [r for r in runs if r.function_id == "parent"]
    assert run.status == RunStatus.COMPLETED, run.error
    out = tester.output(run)
    assert out["paid"] == 5 and out["child"] == {"child_of": run.id}
    assert out["sent"] == 1 and out["missing"] is None


def test_parallel_branches_run_concurrently_on_the_loop(jobs, tester):
    # Each branch waits for the other: run one after the other they would both time out.
    @jobs.function("fan", event="go", retries=0)
    async def fan(ctx, step):
        a_in, b_in = asyncio.Event(), asyncio.Event()

        async def a():
            a_in.set()
            await asyncio.wait_for(b_in.wait(), 5)
            return "a"

        async def b():
            b_in.set()
            await asyncio.wait_for(a_in.wait(), 5)
            return "b"

        return await step.parallel([step.run("a", a), lambda: step.run("b", b)])

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.COMPLETED, run.error
    assert tester.output(run) == ["a", "b"]
    assert sorted(s.key for s in tester.steps(run.id)) == ["a", "b"]


def test_a_forgotten_await_is_a_clear_error_naming_the_function_and_step(jobs, tester):
    ran = []

    @jobs.function("forgetful", event="go", retries=0)
    async def forgetful(ctx, step):
        step.run("charge-card", lambda: ran.append(1))  # no await
        return "done"

    tester.send({"name": "go", "data": {}})
    [run] = tester.run_until_idle()
    assert run.status == RunStatus.FAILED
    message = _error(run)["message"]
    assert "'forgetful'" in message and "step.run('charge-card')" in message
    assert "never awaited" in message and ran == []


def test_a_coroutine_step_in_a_sync_handler_is_a_clear_error(jobs, tester):
    async def fetch():
        return 1

    @jobs.function("mixed", event="go", retries=0)
    def mixed(ctx, step):
        return step.run("fetch", fetch)

    @jobs.function("mixed-lambda", event="go", retries=0)
    def mixed_lambda(ctx, step):
        return step.run("fetch", lambda: fetch())

    assert mixed.runtime == "python"
    tester.send({"name": "go", "data": {}})
    runs = {r.function_id: r for r in tester.run_until_idle()}
    for fn_id in ("mixed", "mixed-lambda"):
        run = runs[fn_id]
        assert run.status == RunStatus.FAILED
        message = _error(run)["message"]
        assert f"function {fn_id!r}" in message and "step 'fetch'" in message, message


def test_send_async_get_run_and_wait_for_run(jobs, tester):
    @jobs.function("echo", event="echo", retries=0)
    async def echo(ctx, step):
        return {"echo": ctx.event.data["x"]}

    async def send():
        return await jobs.send_async({"name": "echo", "data": {"x": 7}})

    [event_id] = asyncio.run(send())
    [queued] = RunRow.select().where(RunRow.event_id == event_id)
    before = jobs.get_run(queued.id)
    assert isinstance(before, RunResult) and before.status == RunStatus.QUEUED and not before.done
    with pytest.raises(TimeoutError, match="did not end"):
        jobs.wait_for_run(queued.id, timeout=0.05)
    tester.run_until_idle()
    run = jobs.wait_for_run(queued.id, timeout=5)
    assert run.done and run.status == RunStatus.COMPLETED and run.output == {"echo": 7}
    assert run.error is None and run.event_id == event_id and run.function_id == "echo"
    again = asyncio.run(jobs.wait_for_run_async(queued.id, timeout=5))
    assert again == run
    with pytest.raises(RunNotFoundError):
        jobs.get_run("no-such-run")


def test_a_failed_run_reads_with_its_error(jobs, tester):
    @jobs.function("bad", event="bad", retries=0)
    async def bad(ctx, step):
        raise ValueError("broken input")

    tester.send({"name": "bad", "data": {}})
    [run] = tester.run_until_idle()
    result = asyncio.run(jobs.get_run_async(run.id))
    assert result.status == RunStatus.FAILED and result.output is None
    assert result.error["message"] == "broken input"


def test_the_decorator_keeps_the_handler_callable_with_its_signature(jobs):
    @jobs.function("typed", event="typed")
    def typed(ctx: Context, step: Step) -> int:
        return 3

    assert isinstance(typed, FunctionDef)
    assert typed(None, None) == 3  # type: ignore[arg-type]


# -- a real worker process ----------------------------------------------------------------------

@contextlib.contextmanager
def _sending_runtime(env: dict[str, str]):
    from async_funcs import flows
    from engine_funcs.harness import _delete_queue_keys

    registry = Registry()
    runtime = Runtime(settings=Settings.from_env(env, functions=()), registry=registry,
                      set_global_broker=False)
    previous = set_runtime(runtime)
    try:
        runtime.migrate()
        jobs = Jobs(app_id=flows.APP_ID, runtime=runtime, registry=registry)
        flows.register(jobs)
        yield runtime, jobs
    finally:
        runtime.close()
        _delete_queue_keys(runtime)
        set_runtime(previous)


def test_awaiting_runs_hold_no_worker_thread(redis_url, backend_url, queue_name, tmp_path):
    """40 runs, each awaiting asyncio.sleep(1) in a step, on one worker process with 2
    threads: all end within 5 s (held threads would need 20 s)."""
    from engine_funcs import harness
    from procs import start_worker

    env = harness.worker_env(backend_url, redis_url, queue_name,
                             TENGO_FUNCTIONS="async_funcs.worker")
    with _sending_runtime(env) as (runtime, jobs):
        proc = start_worker("async_funcs.worker", tmp_path / "worker.log", threads=2, **env)
        try:
            [warm] = jobs.send({"name": "async.sleep", "data": {"n": -1, "seconds": 0}})
            harness.drive_until_final(runtime, timeout=60, procs=[proc])  # the worker is up
            started = time.monotonic()
            ids = jobs.send([{"name": "async.sleep", "data": {"n": n}} for n in range(40)])
            runs = harness.drive_until_final(
                runtime, [r.id for r in RunRow.select().where(RunRow.event_id.in_(ids))],
                timeout=60, procs=[proc])
            elapsed = time.monotonic() - started
        finally:
            proc.stop()
    assert len(runs) == 40 and {r.status for r in runs} == {RunStatus.COMPLETED}
    assert sorted(json.loads(r.output)["n"] for r in runs) == list(range(40))
    assert elapsed < 5, f"40 awaiting runs took {elapsed:.1f} s on 2 threads"
