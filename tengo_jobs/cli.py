"""The ``tengo-jobs`` command line."""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, cast

import click

from .config import Settings
from .core.registry import load_modules, registry
from .core.states import FINAL_RUN_STATUSES
from .durations import ms_to_iso, to_ms
from .engine.control import ABSENT, UNFINISHED
from .engine.replaycheck import ReplayChecker
from .errors import DurationError, TengoJobsError
from .process.dev import dev
from .process.web.params import parse_time
from .runtime import boot

if TYPE_CHECKING:
    from .core.flow_capacity import Capacity
    from .core.functions import FunctionDef
    from .runtime import Runtime


def _boot(**kwargs: Any) -> Runtime:
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

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._extension_commands()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        command = self._extension_commands().get(name)
        if command is None:
            return None
        callback = cast("Callable[..., Any]", command.callback)

        @functools.wraps(callback)
        def booted(*args: Any, **kwargs: Any) -> Any:
            _boot()
            return callback(*args, **kwargs)

        return click.Command(command.name, params=command.params, help=command.help,
                             callback=booted, short_help=command.short_help)


@click.group(cls=_Group)
@click.version_option(package_name="tengo-jobs")
def main() -> None:
    """Durable background jobs: events, steps, sleeps, cron, retries."""


@main.command()
def migrate() -> None:
    """Create or update the database tables (idempotent)."""
    runtime = _boot()
    tables = runtime.migrate()
    click.echo(f"migrated {len(tables)} tables: {', '.join(tables)}")


@main.command()
@click.argument("name")
@click.option("--data", default="{}", help="event data as a JSON object")
@click.option("--id", "event_id", default=None, help="dedupe id (24 h)")
@click.option("--ts", type=int, default=None, help="epoch ms; in the future delays the runs")
def send(name: str, data: str, event_id: str | None, ts: int | None) -> None:
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
def runs(ctx: click.Context, status: str | None, function_id: str | None, limit: int) -> None:
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
def runs_show(run_id: str) -> None:
    """Show one run with its steps."""
    runtime = _boot(load_functions=False)
    queries = runtime.store.queries
    try:
        run = queries.run(run_id)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run {run.id}  function {run.function_id}  status {run.status.value}")
    why = queries.waiting_reason(run, now=runtime.clock.now())
    if why is not None and why["kind"] == "concurrency":
        key = f"key {why['key']}" if why["key"] is not None else "function-wide"
        click.echo(f"waiting for concurrency ({key}, scope {why['scope']}): "
                   f"{why['in_use']}/{why['limit']} slots in use, {why['waiting']} waiting, "
                   f"since {why['since']}")
    elif why is not None:
        click.echo(f"throttled until {why['until']}")
    click.echo(f"created {ms_to_iso(run.created_at)}  ended {ms_to_iso(run.ended_at)}")
    if run.output is not None:
        click.echo(f"output {run.output}")
    if run.error is not None:
        click.echo(f"error {run.error}")
    if run.replay_of is not None:
        click.echo(f"replay of {run.replay_of}  {run.replay_note}")
    replays = queries.replays_of(run_id)
    if replays:
        click.echo(f"replayed as {', '.join(replays)}")
    failed = queries.attempts_log(run_id)
    for s in queries.steps(run_id):
        click.echo(f"  {s.position:>4} {s.key:<40} {s.status.value:<9} attempts={s.attempts}")
        for a in failed.get(s.key, []):
            error = a["error"] or {}
            when = f" at {a['ended_at']}" if a["ended_at"] else ""
            click.echo(f"       attempt {a['attempt']} failed{when}: "
                       f"{error.get('name', 'Error')}: {error.get('message', '')}")


@main.group()
def events() -> None:
    """Stored events (`events show ID`)."""


@events.command("show")
@click.argument("event_id")
def events_show(event_id: str) -> None:
    """Show one event: the runs it started and, per function, why it started none
    (skipped, with the reason) or which run it was folded into (debounced, batched)."""
    queries = _boot(load_functions=False).store.queries
    try:
        event = queries.get_event(event_id)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"event {event['id']}  name {event['name']}  received {event['received_at']}")
    for r in event["runs"]:
        click.echo(f"  run {r['id']}  {r['function_id']:<30}  {r['status']}")
    for f in event["flow_control"]:
        why = (f"skipped ({f['reason']})" if f["status"] == "skipped"
               else f"{f['status']} into run {f['run_id']}")
        held = f"  held by run {f['run_id']}" if f["status"] == "skipped" and f["run_id"] else ""
        click.echo(f"  {f['function_id']:<30}  {why}{held}")


@main.group(invoke_without_command=True)
@click.pass_context
def functions(ctx: click.Context) -> None:
    """List the registered functions (from TENGO_FUNCTIONS), or `functions pause|resume ID`."""
    if ctx.invoked_subcommand:
        return
    runtime = _boot()
    paused = runtime.store.queries.paused_functions()
    for fn in runtime.registry.all():
        triggers = ", ".join([f"event {e}" for e in fn.events] + ([f"cron {fn.cron}"] if fn.cron else []))
        state = paused.get(fn.id)
        note = f"  paused since {state['paused_at']}" if state else ""
        click.echo(f"{fn.id:<32} {triggers or '(internal)'}  retries={fn.retries}{note}")
        if fn.capacity is not None:
            _echo_capacity(runtime, fn)


@main.command()
def apps() -> None:
    """List the Inngest SDK apps synced with POST /fn/register: URL, SDK, functions."""
    runtime = _boot()
    listed = runtime.sdk_apps.list()
    if not listed:
        click.echo("no app synced (PUT an app's serve endpoint pointed at this server)")
    for app in listed:
        click.echo(f"{app['app_id']:<32} {app['url']}  {app['sdk']} ({app['framework']}), "
                   f"synced {app['synced_at']}")
        for fn_id in app["functions"]:
            click.echo(f"    {fn_id}")
        for problem in app["unsupported"]:
            click.echo(f"    refused: {problem}")


def _echo_capacity(runtime: Runtime, fn: FunctionDef[..., Any]) -> None:
    """A function's capacity options and, per concurrency limit, its live usage."""
    cap = cast("Capacity", fn.capacity)  # (called for a function with a capacity)
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


def _pause_control(action: str, function_id: str) -> dict[str, Any]:
    runtime = _boot()
    try:
        return cast("dict[str, Any]", getattr(runtime.control, action)(function_id))
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None


@functions.command("pause")
@click.argument("function_id")
def functions_pause(function_id: str) -> None:
    """Pause a function: events still create its runs; none executes until resumed."""
    state = _pause_control("pause", function_id)
    click.echo(f"function {function_id} paused since {state['paused_at']}")


@functions.command("resume")
@click.argument("function_id")
def functions_resume(function_id: str) -> None:
    """Resume a paused function: its due runs are enqueued, oldest first."""
    state = _pause_control("resume", function_id)
    click.echo(f"function {function_id} resumed; {state['resumed_runs']} run(s) enqueued")


def _json_option(raw: str | None, option: str) -> Any:
    if raw is None:
        return ABSENT
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None


def _time_option(raw: str | None, option: str) -> int | None:
    if raw is None:
        return None
    try:
        return parse_time(option, raw)
    except TengoJobsError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _one_or_bulk(run_id: str | None, function_id: str | None,
                 bulk_options: dict[str, Any]) -> None:
    given = [name for name, value in bulk_options.items() if value not in (None, False, ())]
    if run_id and (function_id or given):
        raise click.UsageError(f"give a RUN_ID or --function with filters, not both "
                               f"({', '.join(['--function'] * bool(function_id) + given)})")
    if not run_id and not function_id:
        raise click.UsageError("give a RUN_ID, or --function F for many runs")
    if not function_id and given:
        raise click.UsageError(f"{', '.join(given)} need(s) --function")


def _in_bulk(runtime: Runtime, label: str, statuses: Any, function_id: str, since: int | None,
             until: int | None, act: Callable[[Callable[[int], None]], Any]) -> dict[str, Any]:
    """Run a bulk action with a progress bar over the runs it reads, page by page."""
    total = runtime.store.queries.count_bulk(function_id=function_id, statuses=statuses,
                                             since=since, until=until)
    try:
        with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
            return cast("dict[str, Any]", act(bar.update))
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--older-than", default=None, metavar="DURATION",
              help="prune finished runs that ended longer ago than this (e.g. 7d; default "
                   "TENGO_RETENTION)")
@click.option("--dry-run", is_flag=True, help="count what would be deleted; delete nothing")
def prune(older_than: str | None, dry_run: bool) -> None:
    """Delete finished runs older than the retention, with their steps and the events no
    unfinished run needs, and expired dedupe claims, in short batches (safe beside running
    schedulers, which do the same every few minutes). Unfinished runs are never touched."""
    try:
        older_than_ms = None if older_than is None else to_ms(older_than)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    runtime = _boot(load_functions=False)
    keep_ms = runtime.settings.retention_ms if older_than_ms is None else older_than_ms
    if not keep_ms:
        click.echo("TENGO_RETENTION is 0 (keep every run): only expired dedupe claims go; "
                   "give --older-than to prune runs", err=True)
    timekeeper = runtime.timekeeper
    if dry_run:
        counted = timekeeper.prune(older_than_ms=keep_ms, dry_run=True)
        click.echo(f"would delete {counted.runs} run(s), {counted.steps} step(s), "
                   f"{counted.events} event(s), {counted.dedupe} expired dedupe claim(s)")
        return
    total = timekeeper.prunable_runs(older_than_ms=keep_ms)
    with click.progressbar(length=total, label="pruning runs", file=sys.stderr) as bar:
        done = timekeeper.prune(older_than_ms=keep_ms, progress=bar.update)
    click.echo(f"deleted {done.runs} run(s), {done.steps} step(s), {done.events} event(s), "
               f"{done.dedupe} expired dedupe claim(s)")


@main.command()
@click.argument("run_id", required=False)
@click.option("--function", "function_id", default=None,
              help="cancel this function's unfinished runs (with the filters below)")
@click.option("--since", default=None, help="runs created at or after: ISO 8601 or epoch ms")
@click.option("--until", default=None, help="runs created before: ISO 8601 or epoch ms")
@click.option("--if", "if_exp", default=None, help='CEL over the event: event.data.id == "x"')
@click.option("--all", "all_runs", is_flag=True, help="every unfinished run of --function")
def cancel(run_id: str | None, function_id: str | None, since: Any, until: Any,
           if_exp: str | None, all_runs: bool) -> None:
    """Cancel an unfinished run (a worker executing it stops at its next checkpoint), or
    with --function every unfinished run that matches, in batches."""
    _one_or_bulk(run_id, function_id, {"--since": since, "--until": until, "--if": if_exp,
                                       "--all": all_runs})
    since, until = _time_option(since, "--since"), _time_option(until, "--until")
    runtime = _boot(load_functions=False)
    if function_id:
        done = _in_bulk(runtime, "cancelling", UNFINISHED, function_id, since, until,
                        lambda progress: runtime.control.bulk_cancel(
                            function_id=function_id, started_after=since, started_before=until,
                            if_exp=if_exp, all_runs=all_runs, progress=progress))
        click.echo(f"cancelled {done['cancelled']} run(s) of {function_id}")
        return
    try:
        run = runtime.control.cancel(cast(str, run_id))  # (_one_or_bulk: a RUN_ID here)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run {run['id']} {run['status']}")


@main.command()
@click.argument("run_id", required=False)
@click.option("--from-step", default=None, help="reuse the outputs of the steps before this one")
@click.option("--input", "input_json", default=None,
              help="with --from-step: new arguments for that step's function, a JSON array "
                   "(positional) or object (keyword)")
@click.option("--output", "output_json", default=None,
              help="with --from-step: that step's result as JSON; the step does not run")
@click.option("--function", "function_id", default=None,
              help="replay this function's finished runs (with the filters below)")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(list(FINAL_RUN_STATUSES)),
              help="runs in this status (repeat for several; default: every finished run)")
@click.option("--since", default=None, help="runs created at or after: ISO 8601 or epoch ms")
@click.option("--until", default=None, help="runs created before: ISO 8601 or epoch ms")
@click.option("--all", "all_runs", is_flag=True, help="every finished run of --function")
def replay(run_id: str | None, from_step: str | None, input_json: str | None,
           output_json: str | None, function_id: str | None, statuses: tuple[str, ...],
           since: Any, until: Any, all_runs: bool) -> None:
    """Start a run again as a new run, from the start or from a step (with new input or a
    supplied result for it), or with --function every finished run that matches."""
    _one_or_bulk(run_id, function_id, {"--status": statuses, "--since": since, "--until": until,
                                       "--all": all_runs})
    if function_id and (from_step or input_json is not None or output_json is not None):
        raise click.UsageError("--from-step, --input and --output replay one run (RUN_ID)")
    new_input, new_output = _json_option(input_json, "--input"), _json_option(output_json,
                                                                              "--output")
    since, until = _time_option(since, "--since"), _time_option(until, "--until")
    runtime = _boot(load_functions=False)
    if function_id:
        done = _in_bulk(runtime, "replaying", statuses or FINAL_RUN_STATUSES, function_id,
                        since, until, lambda progress: runtime.control.bulk_replay(
                            function_id=function_id, status=list(statuses) or None,
                            started_after=since, started_before=until, all_runs=all_runs,
                            progress=progress))
        click.echo(f"replayed {done['replayed']} run(s) of {function_id}")
        for new_id in done["run_ids"]:
            click.echo(new_id)
        return
    try:
        run = runtime.control.replay(cast(str, run_id), from_step=from_step, input=new_input,
                                     output=new_output)
    except TengoJobsError as exc:
        raise click.ClickException(str(exc)) from None
    copied = f" ({len(run['steps'])} earlier step(s) reused)" if from_step else ""
    changed = run["replay_note"]["changed"]
    click.echo(f"run {run['id']} queued, replaying {run_id}{copied}"
               + (f", {from_step} given new {changed}" if changed else ""))


@main.command("check-replay")
@click.option("--function", "function_id", default=None,
              help="check only the runs of this function")
def check_replay(function_id: str | None) -> None:
    """Replay the stored steps of every unfinished run against the code now deployed (no
    step is executed); exit status 1 if any run could not resume."""
    runtime = _boot()
    checker = ReplayChecker(store=runtime.store, registry=runtime.registry)
    checked = incompatible = 0
    for verdict in checker.check_all(function_id):
        checked += 1
        incompatible += not verdict.compatible
        click.echo(verdict.line())
    click.echo(f"{checked} unfinished run(s) with stored steps checked, "
               f"{incompatible} incompatible")
    sys.exit(1 if incompatible else 0)


main.add_command(dev)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
