"""The Flask application factory. Blueprints for the event API, REST API and dashboard live here."""

from __future__ import annotations

from flask import Flask, jsonify


def create_app(runtime=None) -> Flask:
    """Build the web app on ``runtime`` (default: booted from the environment)."""
    from ..runtime import boot

    runtime = runtime or boot()
    app = Flask("tengo_jobs")
    app.extensions["tengo_jobs"] = runtime

    @app.get("/healthz")
    def healthz():
        from .. import broker, db

        checks = {}
        status = 200
        for name, check in (("database", lambda: db.ping(runtime.db)),
                            ("broker", lambda: broker.ping(runtime.broker))):
            try:
                check()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                checks[name] = f"error: {type(exc).__name__}"
                status = 503
        return jsonify({"status": "ok" if status == 200 else "unavailable", "checks": checks}), status

    return app
