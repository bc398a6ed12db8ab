"""The dashboard: server-rendered pages over the same queries as the REST API.

``/`` runs (filter by status and function), ``/runs/<id>`` a run with its step
timeline; the events, functions, performance and health pages are routes of this same
blueprint kept in their own modules (:mod:`.dash_events`, :mod:`.dash_functions`,
:mod:`.dash_perf`, :mod:`.dash_health`), so every page shares its login, error page,
filters and endpoint names (``tengo_dashboard.event_page``). Pages need the dashboard password: ``/login`` asks for it and
sets a signed session cookie, ``POST /logout`` drops it (HTTP basic auth and bearer
tokens work too, for scripts; see :mod:`.auth`). A run's page acts on it with forms that
post directly: cancel, rerun, rerun from a step with edited input. Pages run no script and take their style from one stylesheet,
as the Content-Security-Policy demands (:mod:`.headers`); a form carries
``{{ csrf_token() }}`` in a hidden ``csrf_token`` field (:mod:`.csrf`). Parameters are
read through :mod:`.params`. Applications add pages of their own (Tengo Lugar's email
outbox) by registering a blueprint whose templates extend ``tj/base.html`` and
calling :func:`add_nav_link`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from flask import (Blueprint, current_app, redirect, render_template, request, send_from_directory,
                   url_for)

from ...durations import ms_to_iso
from ...errors import InvalidRunStateError, RunNotFoundError, TengoJobsError, ValidationError
from . import auth, csrf, params
from .auth import require_dashboard

bp = Blueprint("tengo_dashboard", __name__, template_folder="templates")
STATIC = Path(__file__).parent / "static"


def add_nav_link(app, label: str, endpoint: str) -> None:
    """Show a link to ``endpoint`` in the dashboard's navigation bar."""
    app.config.setdefault("TENGO_DASHBOARD_LINKS", []).append((label, endpoint))


def printable(value):
    """Jinja's ``finalize``: text with an unpaired surrogate (stored event data, a step's
    error) is shown with the surrogate escaped (``\\ud800``) instead of failing the page."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return type(value)(value.encode("utf-8", "backslashreplace").decode("utf-8"))
    return value


@bp.errorhandler(ValidationError)
def _bad_request(exc: ValidationError):
    return render_template("tj/message.html", title="Bad request", message=str(exc)), 400


@bp.get("/static/tj/dashboard.css")
def stylesheet():
    """The dashboard's one stylesheet (the CSP allows no inline style); public, as the
    login page needs it and it holds nothing but style."""
    return send_from_directory(STATIC, "dashboard.css", max_age=3600)


@bp.get("/login")
def login_page():
    return _login_form(error=None)


def _login_form(*, error: str | None, status: int = 200):
    return render_template("tj/login.html", error=error,
                           next=auth.safe_next(request.values.get("next")) or "",
                           no_password=auth.open_without_password()), status


@bp.post("/login")
def login():
    """Check ``password`` (constant-time) and set the session cookie; then go to ``next``
    (a path on this site) or the runs page."""
    refused = csrf.refusal(json_api=False)
    if refused is not None:
        return refused
    if auth.open_without_password():
        return _login_form(error="no TENGO_DASHBOARD_PASSWORD is set: there is nothing to log "
                                 "in to", status=400)
    if not auth.password_ok(request.form.get("password", "")):
        return _login_form(error="wrong password", status=401)
    response = redirect(auth.safe_next(request.form.get("next")) or url_for(".runs_page"), 303)
    auth.set_session_cookie(response)
    return response


@bp.post("/logout")
def logout():
    refused = csrf.refusal(json_api=False)
    if refused is not None:
        return refused
    response = redirect(url_for(".login_page"), 303)
    auth.clear_session_cookie(response)
    return response


@bp.app_template_filter("iso")
def _iso(ms):
    return ms_to_iso(ms) if isinstance(ms, int) else (ms or "")


@bp.app_template_filter("pretty")
def _pretty(value):
    return json.dumps(value, indent=2, ensure_ascii=False) if value is not None else ""


@bp.app_context_processor
def _nav():
    return {"extra_links": current_app.config.get("TENGO_DASHBOARD_LINKS", []),
            "open_without_password": auth.open_without_password(),
            "logged_in": auth.session_ok()}


def _runtime():
    return current_app.extensions["tengo_jobs"]


@bp.get("/")
@require_dashboard
def runs_page():
    status = request.args.get("status") or None
    function_id = params.text_arg("function")
    try:
        page = _runtime().store.queries.list_runs(status=params.status_arg(blank_is_absent=True),
                                                  function_id=function_id, limit=50,
                                                  cursor=params.cursor_arg())
    except TengoJobsError as exc:
        return render_template("tj/runs.html", runs=[], next_cursor=None, error=str(exc),
                               status=status, function=function_id), 400
    return render_template("tj/runs.html", runs=page["data"], next_cursor=page.get("next_cursor"),
                           status=status, function=function_id, error=None)


@bp.get("/runs/<run_id>")
@require_dashboard
def run_page(run_id: str):
    return _run_page(run_id)


def _run_page(run_id: str, *, error: str | None = None, form: dict | None = None,
              status: int = 200):
    runtime = _runtime()
    queries = runtime.store.queries
    try:
        run = queries.get_run(run_id, now=runtime.clock.now())
    except TengoJobsError as exc:
        return render_template("tj/message.html", title="Run not found", message=str(exc)), 404
    event = None
    if run["event_id"]:
        try:
            event = queries.get_event(run["event_id"])
        except TengoJobsError:  # pruned
            event = None
    return render_template("tj/run.html", run=run, timeline=_timeline(run["steps"]),
                           links=queries.run_links(run_id), event=event, action_error=error,
                           form=form or {}), status


@bp.post("/runs/<run_id>/cancel")
@require_dashboard
def cancel_run(run_id: str):
    try:
        _runtime().control.cancel(run_id)
    except TengoJobsError as exc:
        return _run_page(run_id, error=str(exc), status=_status_of(exc))
    return redirect(url_for(".run_page", run_id=run_id), 303)


@bp.post("/runs/<run_id>/rerun")
@require_dashboard
def rerun(run_id: str):
    """Rerun from the top, or (``from_step``) from a step, the steps before it keeping their
    stored results; ``input`` (JSON, optional) replaces that step's arguments."""
    from_step = request.form.get("from_step") or None
    raw = (request.form.get("input") or "").strip()
    body: dict = {"from_step": from_step}
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


def _timeline(steps: list[dict]) -> list[dict]:
    """Each step's bar as left offset and width in percent of the run's span."""
    def ms(text):
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) if text else None

    spans = [(ms(s.get("started_at")), ms(s.get("ended_at"))) for s in steps]
    starts = [a for a, _ in spans if a is not None]
    ends = [b or a for a, b in spans if a is not None]
    if not starts:
        return [dict(step=s, left=0, width=0) for s in steps]
    t0, t1 = min(starts), max(ends)
    total = max(1, t1 - t0)
    bars = []
    for step, (a, b) in zip(steps, spans):
        if a is None:
            bars.append(dict(step=step, left=0, width=0))
            continue
        left = (a - t0) * 100 / total
        bars.append(dict(step=step, left=round(left, 2),
                         width=round(max(0.5, ((b or a) - a) * 100 / total), 2)))
    return bars
