"""``tengo-jobs check-replay``: the stored histories of unfinished runs against the code
now deployed, executing nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tengo_jobs import RunStatus, cli
from tengo_jobs.engine.replaycheck import ReplayChecker

executed: list[str] = []


def _work(name):
    def fn():
        executed.append(name)
        return name
    return fn


def _deploy(backend, jobs, steps_before_sleep, steps_after_sleep=("notify",), *,
            sleep_as_run=False):
    """Declare (or redeploy) ``order-flow``: run steps, a one-hour sleep, more run steps."""
    if backend.registry.find("order-flow") is not None:
        backend.registry.remove("order-flow")

    @jobs.function("order-flow", event="order.created")
    def order_flow(ctx, step):
        for name in steps_before_sleep:
            step.run(name, _work(name))
        if sleep_as_run:
            step.run("cool-down", _work("cool-down"))
        else:
            step.sleep("cool-down", "1h")
        return [step.run(name, _work(name)) for name in steps_after_sleep]

    return order_flow


@pytest.fixture
def parked(backend, jobs, tester):
    """One run of the first deploy, sleeping after two stored steps; one finished run."""
    _deploy(backend, jobs, ["fetch", "charge"])
    tester.send({"name": "order.created", "data": {"orderId": "o1"}})
    tester.run_until_idle()  # this one finishes
    tester.send({"name": "order.created", "data": {"orderId": "o2"}})
    runs = tester.run_until_idle(advance_time=False)
    [sleeping] = [r for r in runs if r.status == RunStatus.SLEEPING]
    executed.clear()
    return sleeping


def _verdicts(backend, function_id=None):
    return list(ReplayChecker(store=backend.store, registry=backend.registry)
                .check_all(function_id))


def test_a_step_appended_after_the_stored_ones_is_compatible(backend, jobs, parked):
    _deploy(backend, jobs, ["fetch", "charge"], ["notify", "audit"])
    [verdict] = _verdicts(backend)
    assert verdict.run_id == parked.id and verdict.compatible
    assert verdict.message == "compatible, continues at step 'cool-down'"
    assert verdict.continues_at == "cool-down"
    assert executed == []  # no step function ran


def test_a_renamed_step_is_incompatible(backend, jobs, parked):
    _deploy(backend, jobs, ["fetch", "charge-card"])
    [verdict] = _verdicts(backend)
    assert not verdict.compatible
    assert verdict.message == (
        "incompatible: step 'charge' was recorded as kind run / name 'charge' (position 1), "
        "but the code now calls step 'charge-card' (kind run) before reaching it")
    assert executed == []


def test_a_step_inserted_before_the_stored_ones_is_incompatible(backend, jobs, parked):
    _deploy(backend, jobs, ["validate", "fetch", "charge"])
    [verdict] = _verdicts(backend)
    assert not verdict.compatible
    assert verdict.message.startswith("incompatible: step 'fetch' was recorded as kind run / "
                                      "name 'fetch' (position 0), but the code now calls step "
                                      "'validate'")
    assert executed == []


def test_a_stored_step_called_as_another_kind_is_incompatible(backend, jobs, parked):
    _deploy(backend, jobs, ["fetch", "charge"], sleep_as_run=True)
    [verdict] = _verdicts(backend)
    assert not verdict.compatible
    assert verdict.message == ("incompatible: step 'cool-down' was recorded as kind sleep / "
                               "name 'cool-down', the code now calls it as a run step "
                               "('cool-down')")


def test_cli_exit_status_says_whether_a_deploy_is_safe(backend, jobs, parked, monkeypatch):
    monkeypatch.setattr(cli, "_boot", lambda **kw: backend)
    runner = CliRunner()

    _deploy(backend, jobs, ["fetch", "charge"], ["notify", "audit"])
    ok = runner.invoke(cli.main, ["check-replay"])
    assert ok.exit_code == 0, ok.output
    assert f"{parked.id}  order-flow  (sleeping): compatible, continues at step 'cool-down'" \
        in ok.output
    assert "1 unfinished run(s) with stored steps checked, 0 incompatible" in ok.output

    _deploy(backend, jobs, ["fetch", "charge-card"])
    bad = runner.invoke(cli.main, ["check-replay", "--function", "order-flow"])
    assert bad.exit_code == 1, bad.output
    assert "incompatible: step 'charge'" in bad.output

    other = runner.invoke(cli.main, ["check-replay", "--function", "something-else"])
    assert other.exit_code == 0
    assert "0 unfinished run(s) with stored steps checked" in other.output
    assert executed == []


def test_runs_of_a_function_no_longer_deployed_are_incompatible(backend, jobs, parked):
    backend.registry.remove("order-flow")
    [verdict] = _verdicts(backend)
    assert not verdict.compatible
    assert "function 'order-flow' is not registered" in verdict.message
