"""The dashboard's performance page: per function or for the whole system, over 1 h, 24 h
or 7 d — runs started, completed and failed per interval (inline SVG charts), p50/p95/p99
of run duration, queue delay (from when a run was due to its first step) and step
duration, the slowest steps and the top errors grouped by message.

Everything is read from the performance summaries the scheduler maintains
(:mod:`tengo_jobs.store.stats`: a few hundred summary rows per request, never the runs
table), so the page lags the runs by up to a roll-up interval (a minute; 5 s in
``tengo-jobs dev``), which it says.

Routes of the dashboard's blueprint (:mod:`.dashboard`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue

from ...durations import ms_to_iso
from ...errors import ValidationError
from ...store.stats import WINDOWS
from . import params
from .auth import require_dashboard
from .charts import bar_chart, ms_text
from .dashboard import bp


if TYPE_CHECKING:
    from ...core.registry import Registry
    from ...runtime import Runtime

@bp.app_template_filter("ms")
def _ms(value: float | None) -> str:
    return ms_text(value)


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


def _every_function(per_function: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Every registered function (a row of zeros when it ran nothing), and any other
    function that ran in the window."""
    for fn in registry.all():
        per_function.setdefault(fn.id, {"started": 0, "completed": 0, "failed": 0,
                                        "cancelled": 0, "success_rate": None, "p50": None,
                                        "p95": None, "p99": None})
    return per_function


@bp.get("/performance")
@require_dashboard
def performance_page() -> ResponseReturnValue:
    runtime = _runtime()
    window = request.args.get("window") or "24h"
    if window not in WINDOWS:
        raise ValidationError(f"window must be one of {', '.join(WINDOWS)}, got "
                              f"{params.shown(window)}", field="window")
    function_id = params.text_arg("function")
    scope = [function_id] if function_id else None
    now = runtime.clock.now()
    stats = runtime.store.stats
    series = stats.series(window=window, now=now, function_ids=scope)
    mark = stats.watermark()
    return render_template(
        "tj/performance.html", window=window, windows=list(WINDOWS), function=function_id,
        functions=sorted(fn.id for fn in runtime.registry.all()),
        paused=runtime.store.queries.paused_functions(), series=series,
        ended_chart=bar_chart(series["points"], ("completed", "failed", "cancelled"),
                              label="runs ended"),
        started_chart=bar_chart(series["points"], ("started",), label="runs started"),
        per_function=(None if function_id else _every_function(
            stats.per_function(window=window, now=now), runtime.registry)),
        slowest=stats.slowest_steps(window=window, now=now, function_ids=scope),
        errors=stats.top_errors(window=window, now=now, function_ids=scope),
        rolled_up=(ms_to_iso(mark[1]["ended"]) if mark else None),
        interval=ms_text(series["interval_ms"]))
