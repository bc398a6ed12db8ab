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
