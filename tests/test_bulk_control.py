"""Bulk cancel, bulk replay, and a replay from a step with new input or a supplied result
(``engine/control.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from tengo_jobs.engine import control as control_module
from tengo_jobs.errors import ValidationError
from tengo_jobs.store.schema import RunRow as Run, TimerRow as Timer, WaitRow as Wait

CALLS: list = []


@pytest.fixture
def declared(jobs, backend, monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(control_module, "BULK_PAGE", 3)  # several pages with a few runs

    def fetch(name, punctuation="!"):
        CALLS.append(("fetch", name, punctuation))
        return f"hello {name}{punctuation}"

    @jobs.function("greet", event="user.signup", retries=0)
    def greet(ctx, step):
        text = step.run("fetch", fetch, ctx.event.data["name"])
        step.sleep("pause", "1m")
        if ctx.event.data.get("fail"):
            raise RuntimeError("boom")
        return step.run("shout", lambda t: (CALLS.append(("shout", t)), t.upper())[1], text)

    @jobs.function("napper", event="user.signup")
    def napper(ctx, step):
        step.sleep("nap", "1h")
        step.wait_for_event("confirm", event="user.confirmed", timeout="1d",
                            if_exp="event.data.name == async.data.name")
        return "done"

    return backend


def _status(run_id):
    return Run.get_by_id(run_id).status.value


# -- bulk cancel ------------------------------------------------------------------------------
def test_bulk_cancel_cancels_the_matching_unfinished_runs_page_by_page(declared, tester):
    backend = declared
    for i in range(7):
        tester.send({"name": "user.signup", "data": {"name": f"u{i}", "vip": i % 2 == 0}})
    tester.run_until_idle(advance_time=False)  # greet sleeps 1 min, napper 1 h
    backend.clock.advance(2 * 60_000)
    tester.run_until_idle(advance_time=False)  # greet finished; napper still asleep
    nappers = [r.id for r in tester.runs("napper")]
    assert {_status(r) for r in nappers} == {"sleeping"}
    pages = []

    answer = backend.control.bulk_cancel(function_id="napper", if_exp="event.data.vip == true",
                                         progress=pages.append)

    assert answer == {"cancelled": 4}
    assert pages == [3, 3, 1]  # every unfinished run read once, three at a time
    statuses = {r.id: r.status.value for r in tester.runs("napper")}
    vip = {r: backend.store.queries.get_event(Run.get_by_id(r).event_id)["data"]["vip"]
           for r in nappers}
    assert statuses == {r: "cancelled" if vip[r] else "sleeping" for r in nappers}
    cancelled = [r for r, s in statuses.items() if s == "cancelled"]
    assert not Timer.select().where(Timer.run_id.in_(cancelled)).exists()
    assert {_status(r.id) for r in tester.runs("greet")} == {"completed"}  # other function

    # the rest: everything unfinished, only with all=true
    assert backend.control.bulk_cancel(function_id="napper", all_runs=True) == {"cancelled": 3}
    assert {_status(r) for r in nappers} == {"cancelled"}
    assert backend.control.bulk_cancel(function_id="napper", all_runs=True) == {"cancelled": 0}


def test_bulk_cancel_by_creation_time_deletes_the_waits(declared, tester):
    backend = declared
    t0 = backend.clock.now()
    tester.send({"name": "user.signup", "data": {"name": "early"}})
    tester.run_until_idle(advance_time=False)
    backend.clock.advance(10_000)
    tester.send({"name": "user.signup", "data": {"name": "late"}})
    tester.run_until_idle(advance_time=False)
    backend.clock.advance(2 * 3_600_000)
    tester.run_until_idle(advance_time=False)  # both nappers past their nap, now waiting
    early, late = tester.runs("napper")
    assert _status(early.id) == _status(late.id) == "waiting"

    answer = backend.control.bulk_cancel(function_id="napper", started_after=t0,
                                         started_before=t0 + 5_000)

    assert answer == {"cancelled": 1}
    assert (_status(early.id), _status(late.id)) == ("cancelled", "waiting")
    assert [w.run_id for w in Wait.select()] == [late.id]


@pytest.mark.parametrize("kwargs, field", [
    ({"function_id": "napper"}, "all"),
    ({"function_id": "napper", "if_exp": "event.data.vip =="}, "if"),
    ({"function_id": "napper", "if_exp": "  "}, "if"),
    ({"function_id": "nope", "all_runs": True}, "function_id"),
    ({"function_id": None, "all_runs": True}, "function_id"),
    ({"function_id": "napper", "started_after": 5, "started_before": 5}, "started_before"),
])
def test_bulk_cancel_refuses_bad_input_naming_the_field(declared, tester, kwargs, field):
    tester.send({"name": "user.signup", "data": {"name": "x"}})
    with pytest.raises(ValidationError) as caught:
        declared.control.bulk_cancel(**kwargs)
    assert caught.value.field == field
    assert {r.status.value for r in tester.runs("napper")} == {"queued"}


# -- bulk replay ------------------------------------------------------------------------------
def test_bulk_replay_of_failed_runs_links_each_new_run_to_its_original(declared, tester):
    backend = declared
    for i in range(5):
        tester.send({"name": "user.signup", "data": {"name": f"u{i}", "fail": i < 4}})
    tester.run_until_idle()
    failed = sorted(r.id for r in tester.runs("greet") if r.status.value == "failed")
    assert len(failed) == 4
    pages = []

    answer = backend.control.bulk_replay(function_id="greet", status="failed",
                                         progress=pages.append)

    assert answer["replayed"] == 4 and len(answer["run_ids"]) == 4
    assert pages == [3, 1]
    new = {Run.get_by_id(i).replay_of: Run.get_by_id(i) for i in answer["run_ids"]}
    assert sorted(new) == failed
    assert {json.loads(r.replay_note)["bulk"] for r in new.values()} == {True}
    assert backend.store.queries.get_run(failed[0])["replays"] == [new[failed[0]].id]
    tester.run_until_idle()
    assert {_status(r.id) for r in new.values()} == {"failed"}  # the same code fails again
    # the replays failed too, and a second bulk replay takes them and the originals
    assert backend.control.bulk_replay(function_id="greet", status=["failed"])["replayed"] == 8


def test_bulk_replay_refuses_unfinished_statuses_and_no_filter(declared, tester):
    tester.send({"name": "user.signup", "data": {"name": "x"}})
    for kwargs, field in [({"function_id": "greet", "status": "running"}, "status"),
                          ({"function_id": "greet", "status": []}, "status"),
                          ({"function_id": "greet"}, "all")]:
        with pytest.raises(ValidationError) as caught:
            declared.control.bulk_replay(**kwargs)
        assert caught.value.field == field
    assert declared.control.bulk_replay(function_id="greet", all_runs=True) == {
        "replayed": 0, "run_ids": []}  # nothing finished yet
    assert len(tester.runs()) == 2


# -- rerun from a step with new input ---------------------------------------------------------
def _finished_greet(tester, name="ana"):
    tester.send({"name": "user.signup", "data": {"name": name}})
    tester.run_until_idle()
    [run] = tester.runs("greet")
    assert tester.output(run) == f"HELLO {name.upper()}!"
    CALLS.clear()
    return run


def test_replay_from_a_step_with_new_input_calls_it_with_those_arguments(declared, tester):
    original = _finished_greet(tester)

    new = declared.control.replay(original.id, from_step="fetch", input={"name": "bob",
                                                                          "punctuation": "?"})

    assert new["replay_of"] == original.id
    assert new["replay_note"] == {"from_step": "fetch", "changed": "input",
                                  "input": {"name": "bob", "punctuation": "?"}}
    tester.run_until_idle()
    assert CALLS == [("fetch", "bob", "?"), ("shout", "hello bob?")]
    assert tester.output(tester.run(new["id"])) == "HELLO BOB?"
    assert declared.store.queries.get_run(original.id)["replays"] == [new["id"]]
    # positional arguments, from a later step
    again = declared.control.replay(original.id, from_step="shout", input=["positional"])
    tester.run_until_idle()
    assert tester.output(tester.run(again["id"])) == "POSITIONAL"


def test_replay_with_a_supplied_output_does_not_run_the_step(declared, tester):
    original = _finished_greet(tester)

    new = declared.control.replay(original.id, from_step="fetch", output="hi there")

    assert [(s["key"], s["status"], s["output"]) for s in new["steps"]] == [
        ("fetch", "completed", "hi there")]
    assert new["replay_note"]["changed"] == "output"
    tester.run_until_idle()
    assert CALLS == [("shout", "hi there")]
    assert tester.output(tester.run(new["id"])) == "HI THERE"
    # a null result is a result too
    empty = declared.control.replay(original.id, from_step="shout", output=None)
    tester.run_until_idle()
    assert tester.run(empty["id"]).status.value == "completed"
    assert tester.output(tester.run(empty["id"])) is None


@pytest.mark.parametrize("kwargs, field", [
    ({"input": [1]}, "from_step"),
    ({"from_step": "fetch", "input": [1], "output": 2}, "output"),
    ({"from_step": "fetch", "input": "bob"}, "input"),
    ({"from_step": "pause", "input": []}, "input"),
    ({"from_step": "nope", "output": 1}, "from_step"),
])
def test_replay_with_bad_overrides_is_refused_naming_the_field(declared, tester, kwargs, field):
    original = _finished_greet(tester)
    with pytest.raises(ValidationError) as caught:
        declared.control.replay(original.id, **kwargs)
    assert caught.value.field == field
    assert len(tester.runs("greet")) == 1
