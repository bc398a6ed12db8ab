"""The ``tengo-jobs`` command line."""

from __future__ import annotations

import functools
import json
import sys

import click

from .config import Settings
from .core.registry import load_modules, registry
from .durations import ms_to_iso
from .errors import TengoJobsError
from .process.dev import dev
from .runtime import boot


def _boot(**kwargs):
    try:
        return boot("cli", **kwargs)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """The built-in commands, plus those of the applications' extensions.

    An extension's commands (Tengo Lugar's ``seed-demo``) are found by importing the
    function modules (``TENGO_FUNCTIONS``), whose clients bring their extensions; the
    process is booted (tables migrated) before such a command runs.
    """

    def _extension_commands(self) -> dict[str, click.Command]:
        try:
            load_modules(Settings.from_env().functions)
        except Exception as exc:  # noqa: BLE001 - the built-in commands still work
            click.echo(f"tengo-jobs: could not load TENGO_FUNCTIONS ({exc})", err=True)
            return {}
        return {cmd.name: cmd for ext in registry.extensions for cmd in ext.commands}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._extension_commands()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        command = self._extension_commands().get(name)
        if command is None:
            return None
        callback = command.callback

        @functools.wraps(callback)
        def booted(*args, **kwargs):
            _boot()
            return callback(*args, **kwargs)

        return click.Command(command.name, params=command.params, help=command.help,
                             callback=booted, short_help=command.short_help)


@click.group(cls=_Group)
@click.version_option(package_name="tengo-jobs")
def main():
    """Durable background jobs: events, steps, sleeps, cron, retries."""


@main.command()
def migrate():
    """Create or update the database tables (idempotent)."""
    runtime = _boot()
    tables = runtime.migrate()
    click.echo(f"migrated {len(tables)} tables: {', '.join(tables)}")


@main.command()
@click.argument("name")
@click.option("--data", default="{}", help="event data as a JSON object")
@click.option("--id", "event_id", default=None, help="dedupe id (24 h)")
@click.option("--ts", type=int, default=None, help="epoch ms; in the future delays the runs")
def send(name, data, event_id, ts):
    """Send an event."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    runtime = _boot()
    event = {"name": name, "data": payload}
    if event_id:
        event["id"] = event_id
    if ts is not None:
        event["ts"] = ts
    try:
        ids = runtime.send(event)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"ids": ids}))


@main.group(invoke_without_command=True)
@click.option("--status", default=None)
@click.option("--function", "function_id", default=None)
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def runs(ctx, status, function_id, limit):
    """List recent runs (or `runs show ID`)."""
    if ctx.invoked_subcommand:
        return
    runtime = _boot(load_functions=False)
    try:
        page = runtime.store.queries.list_runs(status=status, function_id=function_id,
                                               limit=limit)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    for r in page["data"]:
        click.echo(f"{r['id']}  {r['status']:<9}  {r['function_id']:<30}  {r['created_at']}")


@runs.command("show")
@click.argument("run_id")
def runs_show(run_id):
    """Show one run with its steps."""
    queries = _boot(load_functions=False).store.queries
    try:
        run = queries.run(run_id)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run {run.id}  function {run.function_id}  status {run.status.value}")
    click.echo(f"created {ms_to_iso(run.created_at)}  ended {ms_to_iso(run.ended_at)}")
    if run.output is not None:
        click.echo(f"output {run.output}")
    if run.error is not None:
        click.echo(f"error {run.error}")
    for s in queries.steps(run_id):
        click.echo(f"  {s.position:>4} {s.key:<40} {s.status.value:<9} attempts={s.attempts}")


@main.command()
def functions():
    """List the registered functions (from TENGO_FUNCTIONS)."""
    runtime = _boot()
    for fn in runtime.registry.all():
        triggers = ", ".join([f"event {e}" for e in fn.events] + ([f"cron {fn.cron}"] if fn.cron else []))
        click.echo(f"{fn.id:<32} {triggers or '(internal)'}  retries={fn.retries}")
        if fn.capacity is not None:
            _echo_capacity(runtime, fn)


def _echo_capacity(runtime, fn) -> None:
    """A function's capacity options and, per concurrency limit, its live usage."""
    cap = fn.capacity
    if cap.throttle is not None:
        t = cap.throttle
        click.echo(f"    throttle {t.limit}/{t.period_ms // 1000}s burst={t.burst}"
                   + (f" key={t.key}" if t.key else ""))
    if cap.priority:
        click.echo(f"    priority {cap.priority}")
    for limit in runtime.control.live_limits(fn) if cap.concurrency else []:
        what = f"key={limit['key']} scope={limit['scope']}" if limit["key"] else "function-wide"
        click.echo(f"    concurrency {limit['limit']} ({what}): {limit['slots_in_use']} in use, "
                   f"{limit['waiting']} waiting")
        for k in limit["keys"]:
            name = k["key"] if k["key"] is not None else "(all)"
            click.echo(f"      {name:<30} {k['in_use']}/{k['limit']}"
                       f"{' at capacity' if k['at_capacity'] else ''}, {k['waiting']} waiting")


@main.command()
@click.argument("run_id")
def cancel(run_id):
    """Cancel an unfinished run (a worker executing it stops at its next checkpoint)."""
    runtime = _boot(load_functions=False)
    try:
        run = runtime.control.cancel(run_id)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run {run['id']} {run['status']}")


@main.command()
@click.argument("run_id")
@click.option("--from-step", default=None, help="reuse the outputs of the steps before this one")
def replay(run_id, from_step):
    """Start a run again as a new run, from the start or from a step."""
    runtime = _boot(load_functions=False)
    try:
        run = runtime.control.replay(run_id, from_step=from_step)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    copied = f" ({len(run['steps'])} earlier step(s) reused)" if from_step else ""
    click.echo(f"run {run['id']} queued, replaying {run_id}{copied}")


main.add_command(dev)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
