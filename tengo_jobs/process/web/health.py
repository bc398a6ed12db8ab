"""``GET /healthz``: the database and the broker answer, or 503 naming which does not.

With the dashboard password (as ``/metrics`` takes it; open outside production when none is
set) the answer also says how the deployment is doing, cheaply:

- ``processes``: every worker and scheduler process seen in the last day, from their
  heartbeats — ``{kind, host, pid, version, threads_busy, started_at, last_seen, status}``,
  ``status`` ``down`` after three of its heartbeat intervals without a beat;
- ``rows``: ``{runs, steps, events}`` (PostgreSQL: the planner's estimates, no table scan);
- ``disk``: what the database takes (PostgreSQL: ``bytes`` of every ``tj_`` table with its
  indexes, and per table its ``bytes`` and ``rows_estimate``, from the catalog; SQLite:
  ``bytes`` in pages, ``free_bytes`` a prune left for reuse, ``file_bytes`` of the file and
  its write-ahead log) — after a prune, what it left;
- ``last_prune``: when the last prune ran and what it deleted, or ``null``.

Without credentials only the checks are given: host names, process ids and sizes are not
for anyone who can reach the port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from ...durations import ms_to_iso
from .auth import dashboard_ok

if TYPE_CHECKING:
    from ...runtime import Runtime

bp = Blueprint("tengo_health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    runtime: Runtime = current_app.extensions["tengo_jobs"]
    checks = {}
    status = 200
    for name, check in (("database", runtime.store.ping),
                        ("broker", runtime.broker_adapter.ping)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks[name] = f"error: {type(exc).__name__}"
            status = 503
    body = {"status": "ok" if status == 200 else "unavailable", "checks": checks}
    if status == 200 and dashboard_ok():
        body.update(_detail(runtime))
    return jsonify(body), status


def _detail(runtime: Runtime) -> dict[str, Any]:
    store = runtime.store
    try:
        last: dict[str, Any] | None = None
        record = store.retention.last("prune")
        if record is not None:
            at, detail = record
            last = {**detail, "at": ms_to_iso(at), "cutoff": ms_to_iso(detail.get("cutoff"))}
        return {"processes": store.heartbeats.processes(runtime.now()),
                "rows": store.retention.row_counts(), "disk": store.retention.disk(),
                "last_prune": last}
    except Exception as exc:  # noqa: BLE001 - liveness does not depend on the detail
        return {"detail_error": type(exc).__name__}
