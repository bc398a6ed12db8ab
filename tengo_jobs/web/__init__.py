"""The Flask application factory: event intake, REST API, health, metrics, OpenAPI.

``create_app(runtime)`` composes the blueprints of this package on a runtime (by
default booted from the environment). It refuses to start unsafe in production
(:meth:`Settings.check_production`) and installs the log redaction of
:mod:`tengo_jobs.logsafe` before the first request, so neither keys nor
passwords reach a log line (including the access log's ``/e/<key>``).
"""

from __future__ import annotations

from flask import Flask

from .. import logsafe
from . import api, dashboard, health, intake, metrics, openapi
from .errors import register_error_handlers
from .dashboard import add_nav_link
from .intake import MAX_REQUEST_BYTES


_extensions: list = []


def web_extension(install):
    """Decorator: ``install(app)`` runs on every app :func:`create_app` builds.

    This is how an application adds its own endpoints and dashboard pages (Tengo
    Lugar's server actions and email outbox) to both ``web.py`` and ``tengo-jobs dev``
    without the engine importing it: the module that defines ``install`` is imported
    with the functions (``TENGO_FUNCTIONS``), before the app is built.
    """
    if install not in _extensions:
        _extensions.append(install)
    return install


def create_app(runtime=None, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> Flask:
    """Build the web app on ``runtime`` (default: booted from the environment)."""
    from ..config import Settings
    from ..runtime import boot

    if runtime is None:
        settings = Settings.from_env()
        settings.check_production()  # before anything connects: refuse early, say why
        logsafe.install(settings.secrets())
        runtime = boot(settings)
    else:
        runtime.settings.check_production()
    logsafe.install(runtime.settings.secrets())
    app = Flask("tengo_jobs")
    app.extensions["tengo_jobs"] = runtime
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.config["TENGO_MAX_REQUEST_BYTES"] = max_request_bytes
    app.json.sort_keys = False
    register_error_handlers(app)
    for module in (intake, api, health, metrics, openapi, dashboard):
        app.register_blueprint(module.bp)
    for install in list(_extensions):
        install(app)
    return app


__all__ = ["create_app", "web_extension", "add_nav_link"]
