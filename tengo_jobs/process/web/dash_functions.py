"""The dashboard's functions: the list, and one function's page — its triggers, its cron
schedule's next five fires (in the function's zone and in UTC, from the engine's cron
module), retries and flow-control settings, its last 24 hours from the performance
summaries (success rate, p50/p95 duration, runs per hour as an inline SVG chart), and
forms that act on it: **Invoke** (a JSON payload; a run of this function only, admitted as
an invoked child is, :meth:`~tengo_jobs.engine.control.Control.invoke`), **Pause** and **Resume**
(:meth:`~tengo_jobs.engine.control.Control.pause`, the REST API's own calls).

A paused function shows a ``paused`` badge on every page of this module and of
:mod:`.dash_events` and :mod:`.dash_perf` that names it.

Routes of the dashboard's blueprint (:mod:`.dashboard`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from flask import current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ...core.cron import parse_cron
from ...errors import (ConfigurationError, FunctionNotFoundError, TengoJobsError,
                       ValidationError)
from . import params
from .auth import require_dashboard
from .charts import bar_chart
from .dashboard import bp

if TYPE_CHECKING:
    from ...core.functions import FunctionDef
    from ...runtime import Runtime

NEXT_FIRES = 5


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


@bp.get("/functions")
@require_dashboard
def functions_page() -> ResponseReturnValue:
    runtime = _runtime()
    now = runtime.clock.now()
    return render_template("tj/functions.html", functions=runtime.control.functions(now=now),
                           day=runtime.store.stats.per_function(window="24h", now=now))


def next_fires(cron: str, function_id: str, now: int, count: int = NEXT_FIRES) -> dict[str, Any]:
    """The cron string's zone and its next ``count`` ticks after ``now``, each as
    ``{"zone": wall time in the zone, "utc": ISO UTC}``; ``error`` when it does not parse."""
    try:
        spec = parse_cron(cron, function_id=function_id)
    except ConfigurationError as exc:
        return {"timezone": None, "fires": [], "error": str(exc)}
    fires, after = [], now
    for _ in range(count):
        tick = spec.next_fire(after)
        if tick is None:
            break
        at = dt.datetime.fromtimestamp(tick / 1000, tz=dt.timezone.utc)
        fires.append({"zone": at.astimezone(spec.zone).strftime("%Y-%m-%d %H:%M %Z (%a)"),
                      "utc": at.strftime("%Y-%m-%d %H:%M UTC")})
        after = tick
    return {"timezone": spec.timezone, "fires": fires, "error": None}


def _settings(fn: FunctionDef[..., Any]) -> list[tuple[str, object]]:
    """The function's options worth showing, as ``(name, value)``: flow control, cancel_on,
    timeouts (``None``/empty ones left out)."""
    described = fn.describe()
    rows = [(name, value) for name, value in described["flow_control"].items()
            if value not in (None, [], {})]
    for name in ("cancel_on", "timeouts"):
        value = getattr(fn, name, None)
        if value:
            rows.append((name, [dataclasses.asdict(v) for v in value] if isinstance(value, tuple)
                         else dataclasses.asdict(value)))
    return rows


def _function_page(function_id: str, *, invoke_form: str = "", invoke_error: str | None = None,
                   status: int = 200) -> ResponseReturnValue:
    runtime = _runtime()
    fn = runtime.registry.find(function_id)
    if fn is None:
        return render_template("tj/message.html", title="Function not found",
                               message=f"no function {function_id!r} is registered"), 404
    now = runtime.clock.now()
    stats = runtime.store.stats
    day = stats.series(window="24h", now=now, function_ids=[fn.id])
    finished = day["totals"]["completed"] + day["totals"]["failed"]
    return render_template(
        "tj/function.html", fn=fn.describe(), cron=(next_fires(fn.cron, fn.id, now)
                                                    if fn.cron else None),
        settings=_settings(fn), pause=runtime.control.pause_state(fn.id), day=day,
        success_rate=(day["totals"]["completed"] / finished) if finished else None,
        chart=bar_chart(day["points"], ("completed", "failed", "cancelled"),
                        label=f"runs of {fn.id}"),
        invoke_form=invoke_form, invoke_error=invoke_error), status


@bp.get("/functions/<function_id>")
@require_dashboard
def function_page(function_id: str) -> ResponseReturnValue:
    return _function_page(function_id)


@bp.post("/functions/<function_id>/invoke")
@require_dashboard
def invoke_function(function_id: str) -> ResponseReturnValue:
    """Start a run with the form's JSON ``data``; the run's page, or the form again with the
    error beside the field and the text kept (400)."""
    raw = request.form.get("data", "")
    try:
        data = params.parse_json(raw.strip() or "{}", field="data", what="data")
        if not isinstance(data, dict):
            raise ValidationError("data must be a JSON object, like {\"userId\": \"u-1\"}",
                                  field="data")
        run_id = _runtime().control.invoke(function_id, data)
    except FunctionNotFoundError as exc:
        return render_template("tj/message.html", title="Function not found",
                               message=str(exc)), 404
    except TengoJobsError as exc:
        return _function_page(function_id, invoke_form=raw, invoke_error=str(exc), status=400)
    if run_id is None:
        return _function_page(function_id, invoke_form=raw, status=409,
                              invoke_error="no run was started for this invocation")
    return redirect(url_for(".run_page", run_id=run_id), 303)


@bp.post("/functions/<function_id>/pause")
@require_dashboard
def pause_function(function_id: str) -> ResponseReturnValue:
    return _pause_or_resume(function_id, pause=True)


@bp.post("/functions/<function_id>/resume")
@require_dashboard
def resume_function(function_id: str) -> ResponseReturnValue:
    return _pause_or_resume(function_id, pause=False)


def _pause_or_resume(function_id: str, *, pause: bool) -> ResponseReturnValue:
    control = _runtime().control
    try:
        (control.pause if pause else control.resume)(function_id)
    except FunctionNotFoundError as exc:
        return render_template("tj/message.html", title="Function not found",
                               message=str(exc)), 404
    return redirect(url_for(".function_page", function_id=function_id), 303)
