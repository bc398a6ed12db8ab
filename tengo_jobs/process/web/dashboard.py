"""The dashboard: server-rendered pages over the same queries as the REST API.

``/`` runs and ``/runs/<id>`` a run, the events, functions, performance and health
pages are routes of this same blueprint kept in their own modules (:mod:`.dash_runs`,
:mod:`.dash_events`, :mod:`.dash_functions`, :mod:`.dash_perf`, :mod:`.dash_health`),
so every page shares its login, error page, filters and endpoint names
(``tengo_dashboard.event_page``). Pages need the dashboard password: ``/login`` asks for it and
sets a signed session cookie, ``POST /logout`` drops it (HTTP basic auth and bearer
tokens work too, for scripts; see :mod:`.auth`). A run's page acts on it with forms that
post directly: cancel, rerun, rerun from a step with edited input. Pages run no inline
script (the runs page loads one script file from this origin, for its live refresh) and take
their style from stylesheets of this origin, as the Content-Security-Policy demands
(:mod:`.headers`); a form carries
``{{ csrf_token() }}`` in a hidden ``csrf_token`` field (:mod:`.csrf`). Parameters are
read through :mod:`.params`. Applications add pages of their own (Tengo Lugar's email
outbox) by registering a blueprint whose templates extend ``tj/base.html`` and
calling :func:`add_nav_link`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import (Blueprint, Flask, current_app, redirect, render_template, request, send_from_directory,
                   url_for)
from flask.typing import ResponseReturnValue

from ...durations import ms_to_iso
from ...errors import ValidationError
from . import auth, csrf

bp = Blueprint("tengo_dashboard", __name__, template_folder="templates")
if TYPE_CHECKING:
    from ...runtime import Runtime

STATIC = Path(__file__).parent / "static"


def add_nav_link(app: Flask, label: str, endpoint: str) -> None:
    """Show a link to ``endpoint`` in the dashboard's navigation bar."""
    app.config.setdefault("TENGO_DASHBOARD_LINKS", []).append((label, endpoint))


def printable(value: Any) -> Any:
    """Jinja's ``finalize``: text with an unpaired surrogate (stored event data, a step's
    error) is shown with the surrogate escaped (``\\ud800``) instead of failing the page."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return type(value)(value.encode("utf-8", "backslashreplace").decode("utf-8"))
    return value


@bp.errorhandler(ValidationError)
def _bad_request(exc: ValidationError) -> ResponseReturnValue:
    return render_template("tj/message.html", title="Bad request", message=str(exc)), 400


@bp.get("/static/tj/dashboard.css")
def stylesheet() -> ResponseReturnValue:
    """The dashboard's one stylesheet (the CSP allows no inline style); public, as the
    login page needs it and it holds nothing but style."""
    return send_from_directory(STATIC, "dashboard.css", max_age=3600)


@bp.get("/login")
def login_page() -> ResponseReturnValue:
    return _login_form(error=None)


def _login_form(*, error: str | None, status: int = 200) -> ResponseReturnValue:
    return render_template("tj/login.html", error=error,
                           next=auth.safe_next(request.values.get("next")) or "",
                           no_password=auth.open_without_password()), status


@bp.post("/login")
def login() -> ResponseReturnValue:
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
def logout() -> ResponseReturnValue:
    refused = csrf.refusal(json_api=False)
    if refused is not None:
        return refused
    response = redirect(url_for(".login_page"), 303)
    auth.clear_session_cookie(response)
    return response


@bp.app_template_filter("iso")
def _iso(ms: Any) -> Any:
    return ms_to_iso(ms) if isinstance(ms, int) else (ms or "")


@bp.app_template_filter("pretty")
def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value is not None else ""


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    return {"extra_links": current_app.config.get("TENGO_DASHBOARD_LINKS", []),
            "open_without_password": auth.open_without_password(),
            "logged_in": auth.session_ok()}


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


from . import dash_runs  # noqa: E402,F401  (the runs and run pages: routes on bp)
