"""The Flask application factory: event intake, REST API, health, metrics, OpenAPI.

``create_app(runtime)`` composes the blueprints of this package on a runtime (by
default booted from the environment). It refuses to start unsafe in production
(:meth:`Settings.check_production`) and installs the log redaction of
:mod:`tengo_jobs.logsafe` before the first request, so neither keys nor
passwords reach a log line (including the access log's ``/e/<key>``).
"""

from __future__ import annotations

from flask import Flask

from ... import logsafe
from . import api, dashboard, event_api, health, metrics, openapi
from .errors import register_error_handlers
from .dashboard import add_nav_link
from .event_api import MAX_REQUEST_BYTES
from ...runtime import boot


def create_app(runtime=None, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> Flask:
    """Build the web app on ``runtime`` (default: booted from the environment)."""
    if runtime is None:
        runtime = boot("web")
    else:
        runtime.settings.check_production()
        logsafe.install(runtime.settings.secrets())
    app = Flask("tengo_jobs")
    app.extensions["tengo_jobs"] = runtime
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.config["TENGO_MAX_REQUEST_BYTES"] = max_request_bytes
    app.json.sort_keys = False
    register_error_handlers(app)
    for module in (event_api, api, health, metrics, openapi, dashboard):
        app.register_blueprint(module.bp)
    for extension in runtime.registry.extensions:  # applications' pages (Extension.blueprints)
        for blueprint in extension.blueprints:
            app.register_blueprint(blueprint)
        for label, endpoint in extension.nav_links:
            add_nav_link(app, label, endpoint)
    return app


__all__ = ["create_app", "add_nav_link"]
