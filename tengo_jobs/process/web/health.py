"""``GET /healthz``: the database and the broker answer, or 503 naming which does not."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("tengo_health", __name__)


@bp.get("/healthz")
def healthz():
    runtime = current_app.extensions["tengo_jobs"]
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
    return jsonify({"status": "ok" if status == 200 else "unavailable", "checks": checks}), status
