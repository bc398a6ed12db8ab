"""``tengo-jobs cancel`` and ``tengo-jobs replay`` share the API's control logic."""

from __future__ import annotations

from click.testing import CliRunner

from tengo_jobs import Jobs, cli
from tengo_jobs.store.schema import RunRow as Run, StepRow as Step
from tengo_jobs.testing import JobsTester

from webhelpers import make_app


def test_cli_cancel_and_replay_from_a_step(tmp_path, monkeypatch):
    runtime, _ = make_app(tmp_path)
    jobs = Jobs(app_id="cli-test", runtime=runtime)

    @jobs.function("two-steps", event="go")
    def two_steps(ctx, step):
        step.run("first", lambda: 1)
        step.sleep("wait", "1h")
        return step.run("second", lambda: 2)

    jobs.send({"name": "go"})
    JobsTester(runtime).run_until_idle(advance_time=False)
    [run] = Run.select()
    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    runner = CliRunner()

    replayed = runner.invoke(cli.main, ["replay", run.id, "--from-step", "wait"])
    assert replayed.exit_code == 0, replayed.output
    assert "1 earlier step(s) reused" in replayed.output
    new = Run.select().where(Run.id != run.id).get()
    assert [s.key for s in Step.select().where(Step.run_id == new.id)] == ["first"]

    cancelled = runner.invoke(cli.main, ["cancel", run.id])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert Run.get_by_id(run.id).status.value == "cancelled"

    missing = runner.invoke(cli.main, ["cancel", "NOPE"])
    assert missing.exit_code == 1 and "no run 'NOPE'" in missing.output
    bad = runner.invoke(cli.main, ["replay", run.id, "--from-step", "nope"])
    assert bad.exit_code == 1 and "has no step 'nope'" in bad.output
    runtime.close()


def test_cli_bulk_cancel_and_bulk_replay_with_progress(tmp_path, monkeypatch):
    runtime, _ = make_app(tmp_path)
    jobs = Jobs(app_id="cli-test", runtime=runtime)

    @jobs.function("napper", event="go")
    def napper(ctx, step):
        step.sleep("nap", "1h")
        return ctx.event.data["n"]

    for n in range(4):
        jobs.send({"name": "go", "data": {"n": n}})
    JobsTester(runtime).run_until_idle(advance_time=False)
    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    runner = CliRunner()

    unbounded = runner.invoke(cli.main, ["cancel", "--function", "napper"])
    assert unbounded.exit_code == 1 and "all: true" in unbounded.output
    bad_cel = runner.invoke(cli.main, ["cancel", "--function", "napper", "--if", "event.data.n <"])
    assert bad_cel.exit_code == 1 and "if:" in bad_cel.output
    bad_time = runner.invoke(cli.main, ["cancel", "--function", "napper", "--since", "soon"])
    assert bad_time.exit_code == 2 and "--since" in bad_time.output
    both = runner.invoke(cli.main, ["cancel", "RUN", "--function", "napper"])
    assert both.exit_code == 2 and "not both" in both.output

    done = runner.invoke(cli.main, ["cancel", "--function", "napper", "--if", "event.data.n < 3",
                                    "--since", "2000-01-01T00:00:00Z"])
    assert done.exit_code == 0, done.output
    assert "cancelled 3 run(s) of napper" in done.output and "cancelling" in done.output
    assert sorted(r.status.value for r in Run.select()) == ["cancelled"] * 3 + ["sleeping"]

    replayed = runner.invoke(cli.main, ["replay", "--function", "napper", "--status", "cancelled"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 3 run(s) of napper" in replayed.output
    new = list(Run.select().where(Run.replay_of.is_null(False)))
    assert len(new) == 3 and all(r.id in replayed.output for r in new)
    shown = runner.invoke(cli.main, ["runs", "show", new[0].id])
    assert f"replay of {new[0].replay_of}" in shown.output
    original = runner.invoke(cli.main, ["runs", "show", new[0].replay_of])
    assert f"replayed as {new[0].id}" in original.output
    runtime.close()


def test_cli_replay_from_a_step_with_new_input(tmp_path, monkeypatch):
    runtime, _ = make_app(tmp_path)
    jobs = Jobs(app_id="cli-test", runtime=runtime)

    @jobs.function("adder", event="go")
    def adder(ctx, step):
        return step.run("add", lambda a, b: a + b, 1, 2)

    jobs.send({"name": "go"})
    tester = JobsTester(runtime)
    tester.run_until_idle(advance_time=False)
    [run] = Run.select()
    monkeypatch.setattr(cli, "_boot", lambda **kw: runtime)
    runner = CliRunner()
    out = runner.invoke(cli.main, ["replay", run.id, "--from-step", "add", "--input", "[40, 2]"])
    assert out.exit_code == 0, out.output
    assert "add given new input" in out.output
    tester.run_until_idle(advance_time=False)
    new = Run.get(Run.replay_of == run.id)
    assert tester.output(new) == 42
    bad = runner.invoke(cli.main, ["replay", run.id, "--from-step", "add", "--output", "{"])
    assert bad.exit_code == 2 and "--output" in bad.output
    runtime.close()
