"""The dashboard's health page: the database and the broker (each pinged), the broker's
queue depth and the runs due that no worker holds, the oldest due timer and the
scheduler's lag, the worker and scheduler processes seen in the last minute (their
heartbeats), the sweeper's last pass, the last prune and the performance roll-up.

Every figure is a ping, an index lookup or a capped count (what ``/healthz`` and
``/metrics`` read), so the page is cheap on a large database. ``/healthz`` stays the
liveness probe; this page is for people.

Routes of the dashboard's blueprint (:mod:`.dashboard`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

from flask import current_app, render_template
from flask.typing import ResponseReturnValue

from ...durations import ms_to_iso
from ...store.queries import COUNT_CAP
from .auth import require_dashboard
from .dashboard import bp

if TYPE_CHECKING:
    from ...runtime import Runtime

SEEN_WITHIN_MS = 60_000


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


def _check(call: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", "ExceptionName: message")``: a page about failures
    must render while something fails."""
    try:
        return "ok", call()
    except Exception as exc:  # noqa: BLE001 - shown on the page
        return "error", f"{type(exc).__name__}: {str(exc)[:200]}"


def _at(pair: tuple[int, dict[str, Any]] | None) -> dict[str, Any] | None:
    if pair is None:
        return None
    at, detail = pair
    return {"at": ms_to_iso(at), **detail}


@bp.get("/health")
@require_dashboard
def health_page() -> ResponseReturnValue:
    runtime = _runtime()
    store = runtime.store
    now = runtime.clock.now()
    database, _ = _check(store.ping)
    broker, _ = _check(runtime.broker_adapter.ping)
    figures: dict[str, tuple[str, Any]] = {
        "queue_depth": _check(lambda: runtime.broker_adapter.queue_depth(
            runtime.settings.queue_name)),
        "due_runs": _check(lambda: store.queries.due_count(now=now)),
        "running": _check(lambda: store.queries.running_count(now=now)),
        "scheduler_lag_ms": _check(lambda: store.queries.scheduler_lag_ms(now=now)),
        "oldest_timer": _check(lambda: store.health.oldest_due_timer(now)),
        "processes": _check(lambda: [p for p in store.heartbeats.processes(now)
                                     if p["last_seen"] >= ms_to_iso(now - SEEN_WITHIN_MS)]),
        "sweep": _check(lambda: _at(store.retention.last("sweep"))),
        "prune": _check(lambda: _at(store.retention.last("prune"))),
        "stats": _check(store.stats.watermark),
    }
    timer = figures["oldest_timer"][1] if figures["oldest_timer"][0] == "ok" else None
    return render_template("tj/health.html", database=database, broker=broker, figures=figures,
                           timer_late_ms=(now - timer["due_at"]) if timer else None,
                           timer_due=ms_to_iso(timer["due_at"]) if timer else None,
                           now=ms_to_iso(now), count_cap=COUNT_CAP,
                           queue_name=runtime.settings.queue_name,
                           stats_at=_stats_at(figures["stats"]),
                           status=200 if database == broker == "ok" else 503), \
        200 if database == broker == "ok" else 503


def _stats_at(figure: tuple[str, Any]) -> dict[str, Any] | None:
    state, value = figure
    if state != "ok" or value is None:
        return None
    ran_at, marks = value
    return {"ran_at": ms_to_iso(ran_at), "upto": ms_to_iso(marks.get("ended"))}
