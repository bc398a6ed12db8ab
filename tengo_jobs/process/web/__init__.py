"""The Flask application factory: event intake, REST API, health, metrics, OpenAPI.

``create_app(runtime)`` composes the blueprints of this package on a runtime (by
default booted from the environment). It refuses to start unsafe in production
(:meth:`Settings.check_production`) and installs the log redaction of
:mod:`tengo_jobs.logsafe` before the first request, so neither keys nor
passwords reach a log line (including the access log's ``/e/<key>``).

At the boundary, for every route: security headers on every response
(:mod:`.headers`); bodies over :data:`MAX_FORM_BYTES` refused with 413 outside the
event API (which has its own limits); query and path text no database can hold
refused with 400 (:mod:`.params`); state-changing requests behind the dashboard
password refused cross-site (:mod:`.csrf`).
"""

from __future__ import annotations

from flask import Flask, current_app, request

from ... import logsafe
from . import api, csrf, dashboard, event_api, headers, health, metrics, openapi, params, sdk_api
from .errors import error_response, register_error_handlers
from .dashboard import add_nav_link, printable
from .event_api import MAX_REQUEST_BYTES
from ...runtime import boot

# A request body to the REST API or the dashboard: the send-test-event form holds one
# event (512 KiB of JSON, up to three times that form-encoded).
MAX_FORM_BYTES = 2 * 1024 * 1024


def create_app(runtime=None, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> Flask:
    """Build the web app on ``runtime`` (default: booted from the environment)."""
    if runtime is None:
        runtime = boot("web")
    else:
        runtime.settings.check_production()
        logsafe.install(runtime.settings.secrets())
    app = Flask("tengo_jobs", static_folder=None)  # the stylesheet is served behind the password
    app.jinja_options = {**app.jinja_options, "finalize": printable}
    app.extensions["tengo_jobs"] = runtime
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    app.config["TENGO_MAX_REQUEST_BYTES"] = max_request_bytes
    app.config["TENGO_MAX_FORM_BYTES"] = MAX_FORM_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_FORM_BYTES
    app.json = params.BoundedJSONProvider(app)
    app.json.sort_keys = False
    register_error_handlers(app)
    headers.install(app)
    csrf.install(app, runtime.settings)
    app.before_request(_check_request)
    for module in (event_api, api, sdk_api, health, metrics, openapi, dashboard):
        app.register_blueprint(module.bp)
    for extension in runtime.registry.extensions:  # applications' pages (Extension.blueprints)
        for blueprint in extension.blueprints:
            app.register_blueprint(blueprint)
        for label, endpoint in extension.nav_links:
            add_nav_link(app, label, endpoint)
    return app


def _check_request():
    """Body size and parameter text, for every route but the event API's (its own checks:
    a bad key is a 401 before anything else, and its body limit is larger)."""
    if request.blueprint == event_api.bp.name:
        return None
    limit = current_app.config["TENGO_MAX_FORM_BYTES"]
    length = request.content_length
    if length is not None and length > limit:
        return error_response(413, f"request body is {length} bytes; the limit is {limit} bytes "
                                   "outside the event API", field="body")
    request.max_content_length = limit  # a chunked body is cut off while it streams
    params.check_request_text()
    return None


__all__ = ["create_app", "add_nav_link", "MAX_FORM_BYTES"]
