"""The dashboard's runs page and run page (routes on :data:`.dashboard.bp`).

``/`` lists runs newest first with filters (status, function, creation time ``from``/``to``,
the triggering event's name, text in its data), counts per status (capped), keyset pages
both ways (``cursor``: older than, ``before``: newer than) and checkboxes to cancel or
replay the selected runs (``POST /runs/selected``). ``/runs-table`` is the same table
alone, which ``/static/tj/runs.js`` fetches every few seconds (live refresh; the CSP
allows scripts from this origin only). Reads go through :mod:`tengo_jobs.store.run_pages`.

``/runs/<id>`` is a run: its Gantt timeline (:mod:`.timeline`), why it is not running,
its steps with their outputs, errors, stacks and attempts, its triggering event and its
output, its failure handler or original linked both ways, and forms to cancel, rerun,
rerun from a step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import (current_app, redirect, render_template, request, send_from_directory,
                   url_for)
from flask.typing import ResponseReturnValue

from ...errors import InvalidRunStateError, RunNotFoundError, TengoJobsError, ValidationError
from ...store.run_pages import COUNT_CAP, RunFilters, RunPages
from . import params
from .auth import require_dashboard
from .dashboard import STATIC, bp
from .timeline import gantt, iso_ms

if TYPE_CHECKING:
    from ...runtime import Runtime

MAX_SELECTED = 200  # runs one "cancel / replay selected" acts on
REFRESH_MS = 3000
_FILTER_ARGS = ("status", "function", "from", "to", "event", "text")


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


def _pages() -> RunPages:
    return RunPages(_runtime().store.queries.d)


@bp.get("/static/tj/runs.css")
@require_dashboard
def runs_stylesheet() -> ResponseReturnValue:
    """The runs and run pages' style (the timeline's shades, the filters); behind the
    login like the pages that use it."""
    return send_from_directory(STATIC, "runs.css", max_age=3600)


@bp.get("/static/tj/runs.js")
@require_dashboard
def runs_script() -> ResponseReturnValue:
    """The runs page's one script: live refresh, select-all, a confirmation before acting."""
    return send_from_directory(STATIC, "runs.js", max_age=3600)


def _filters() -> tuple[RunFilters, dict[str, Any]]:
    """The filters of the query string, and the values to put back in the form."""
    shown = {name: request.args.get(name, "") for name in _FILTER_ARGS}
    filters = RunFilters(status=params.status_arg(blank_is_absent=True),
                         function_id=params.text_arg("function"),
                         since=params.time_arg("from"), until=params.time_arg("to"),
                         event=params.text_arg("event"), text=params.text_arg("text"))
    return filters, shown


def _page_context() -> dict[str, Any]:
    filters, shown = _filters()
    pages = _pages()
    page = pages.page(filters, cursor=params.cursor_arg("cursor"),
                      before=params.cursor_arg("before"))
    counts = pages.status_counts(filters)
    kept = {k: v for k, v in shown.items() if v}
    return {"runs": page["data"], "page": page, "counts": counts, "count_cap": COUNT_CAP,
            "form": shown, "kept": kept, "filtered": filters,
            "refresh_ms": REFRESH_MS, "error": None,
            "paused_ids": set(_runtime().store.queries.paused_functions())}


def _empty_context(error: str) -> dict[str, Any]:
    shown = {name: request.args.get(name, "") for name in _FILTER_ARGS}
    return {"runs": [], "page": {"next_cursor": None, "prev_cursor": None, "searched_to": None},
            "counts": None, "count_cap": COUNT_CAP, "form": shown, "kept": {}, "filtered": None,
            "refresh_ms": REFRESH_MS, "error": error, "paused_ids": set()}


@bp.get("/")
@require_dashboard
def runs_page() -> ResponseReturnValue:
    functions = sorted(f.id for f in _runtime().registry.all())
    notice = _bulk_notice()
    try:
        context = _page_context()
    except TengoJobsError as exc:
        return render_template("tj/runs.html", functions=functions, notice=notice,
                               **_empty_context(str(exc))), 400
    return render_template("tj/runs.html", functions=functions, notice=notice, **context)


@bp.get("/runs-table")
@require_dashboard
def runs_table() -> ResponseReturnValue:
    """The runs page's table and counts alone (the live refresh fetches it)."""
    try:
        context = _page_context()
    except TengoJobsError as exc:
        return render_template("tj/_runs_table.html", **_empty_context(str(exc))), 400
    return render_template("tj/_runs_table.html", **context)


def _bulk_notice() -> dict[str, Any] | None:
    action = request.args.get("done")
    if action not in ("cancel", "replay"):
        return None
    try:
        ok, refused = int(request.args.get("ok", "0")), int(request.args.get("refused", "0"))
    except ValueError:
        return None
    return {"action": action, "ok": min(ok, MAX_SELECTED), "refused": min(refused, MAX_SELECTED)}


@bp.post("/runs/selected")
@require_dashboard
def act_on_selected() -> ResponseReturnValue:
    """Cancel or replay the runs checked on the runs page (``run_id``, repeated; at most
    :data:`MAX_SELECTED`), one run at a time through the same operations as a run's own
    buttons; a run in the wrong state is counted as refused, not an error."""
    action = request.form.get("action")
    if action not in ("cancel", "replay"):
        raise ValidationError("action must be cancel or replay", field="action")
    run_ids = [r for r in request.form.getlist("run_id") if r]
    if not run_ids:
        raise ValidationError("run_id: select at least one run (tick its box)", field="run_id")
    if len(run_ids) > MAX_SELECTED:
        raise ValidationError(f"run_id: select at most {MAX_SELECTED} runs at a time", field="run_id")
    control, queries = _runtime().control, _runtime().store.queries
    ok = refused = 0
    for run_id in dict.fromkeys(run_ids):
        params.check_text(run_id, "run_id")
        try:
            if action == "cancel":
                control.cancel(run_id)
            elif queries.run(run_id).status.is_final:
                control.replay(run_id)
            else:  # an unfinished run is not replayed (it would run twice at once)
                raise InvalidRunStateError(f"run {run_id} is not finished")
            ok += 1
        except (RunNotFoundError, InvalidRunStateError):
            refused += 1
    back: dict[str, Any] = {k: v for k, v in request.form.items() if k in _FILTER_ARGS and v}
    return redirect(url_for(".runs_page", done=action, ok=ok, refused=refused, **back), 303)


# -- one run --------------------------------------------------------------------------------
@bp.get("/runs/<run_id>")
@require_dashboard
def run_page(run_id: str) -> ResponseReturnValue:
    return _run_page(run_id)


def _run_page(run_id: str, *, error: str | None = None, form: dict[str, Any] | None = None,
              status: int = 200) -> ResponseReturnValue:
    runtime = _runtime()
    queries = runtime.store.queries
    now = runtime.clock.now()
    try:
        run = queries.get_run(run_id, now=now)
    except TengoJobsError as exc:
        return render_template("tj/message.html", title="Run not found", message=str(exc)), 404
    event = None
    if run["event_id"]:
        try:
            event = queries.get_event(run["event_id"])
        except TengoJobsError:  # pruned
            event = None
    links = queries.run_links(run_id)
    pages = _pages()
    unfinished = run["status"] in ("queued", "running", "sleeping", "waiting")
    function_paused = run["function_id"] in queries.paused_functions()
    paused = unfinished and function_paused
    hold = pages.flow_hold(run_id, run["function_id"]) if unfinished else None
    pending = pages.pending(run_id, now=now) if unfinished else None
    wakes: dict[str, int] = {}
    for step, due in [*((s["step"], s["until"]) for s in links["sleeping"]),
                      *((w["step"], w["expires_at"]) for w in links["waiting"])]:
        due_ms = iso_ms(due)
        if due_ms is not None:
            wakes[step] = due_ms
    chart = gantt(run, run["steps"], now=now, wakes=wakes,
                  waits={w["step"]: w["event"] for w in links["waiting"]})
    return render_template("tj/run.html", run=run, chart=chart, links=links, event=event,
                           hold=hold, pending=pending, paused=paused,
                           function_paused=function_paused, action_error=error,
                           form=form or {}), status


@bp.post("/runs/<run_id>/cancel")
@require_dashboard
def cancel_run(run_id: str) -> ResponseReturnValue:
    try:
        _runtime().control.cancel(run_id)
    except TengoJobsError as exc:
        return _run_page(run_id, error=str(exc), status=_status_of(exc))
    return redirect(url_for(".run_page", run_id=run_id), 303)


@bp.post("/runs/<run_id>/rerun")
@require_dashboard
def rerun(run_id: str) -> ResponseReturnValue:
    """Rerun from the top, or (``from_step``) from a step, the steps before it keeping their
    stored results; ``input`` (JSON, optional) replaces that step's arguments."""
    from_step = request.form.get("from_step") or None
    raw = (request.form.get("input") or "").strip()
    body: dict[str, Any] = {"from_step": from_step}
    try:
        if raw:
            body["input"] = params.parse_json(raw, field="input", what="input")
        new = _runtime().control.replay(run_id, **body)
    except TengoJobsError as exc:
        return _run_page(run_id, error=str(exc), status=_status_of(exc),
                         form={"from_step": from_step, "input": raw})
    return redirect(url_for(".run_page", run_id=new["id"]), 303)


def _status_of(exc: TengoJobsError) -> int:
    """As the REST API answers: 404 no such run, 409 a run in the wrong state, 400 bad input
    (anything else is not caught here: the app's handlers log it and answer 500)."""
    if isinstance(exc, RunNotFoundError):
        return 404
    if isinstance(exc, InvalidRunStateError):
        return 409
    if isinstance(exc, ValidationError):
        return 400
    raise exc
