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

``init_app(app, runtime, url_prefix="/jobs")`` registers the same blueprints on an
application's own Flask app under a prefix (what :meth:`tengo_jobs.Jobs.init_app` calls).
There the boundary above is installed for the engine's blueprints only — their error
handlers, security headers, CSRF token and request checks are keyed by blueprint name —
so the application's own routes keep their own behaviour; the app's JSON provider and
body limits are left alone (the engine's views parse and bound bodies themselves).
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import Flask, current_app, request
from flask.typing import ResponseReturnValue

from ... import logsafe
from ...engine.sdk_sync import SyncOnStart
from ...errors import ConfigurationError
from . import (api, auth, csrf, dashboard, event_api, headers, health, metrics, openapi, params,
               sdk_api)
# the dashboard's other pages: routes of its blueprint, in modules of their own
from . import dash_events, dash_functions, dash_health, dash_perf  # noqa: F401
from .errors import error_response, register_error_handlers
from .dashboard import add_nav_link, printable
from .event_api import MAX_REQUEST_BYTES
from ...runtime import Runtime, boot

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

# A request body to the REST API or the dashboard: the send-test-event form holds one
# event (512 KiB of JSON, up to three times that form-encoded).
MAX_FORM_BYTES = 2 * 1024 * 1024


def create_app(runtime: Runtime | None = None, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> Flask:
    """Build the web app on ``runtime`` (default: booted from the environment)."""
    booted = runtime is None
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
    auth.install(app, runtime.settings)
    app.before_request(_check_request)
    _register_blueprints(app, runtime, "")
    if booted and runtime.settings.sdk_urls:  # TENGO_SDK_URLS: sync those apps once we serve
        app.extensions["tengo_jobs_sdk_sync"] = SyncOnStart(runtime.settings.sdk_urls).start()
    return app


ENGINE_MODULES = (event_api, api, sdk_api, health, metrics, openapi, dashboard)


def _register_blueprints(app: Flask, runtime: Runtime, prefix: str) -> list[str]:
    """The engine's blueprints and the extensions' pages on ``app`` under ``prefix``;
    returns their names."""
    blueprints = [module.bp for module in ENGINE_MODULES]
    for extension in runtime.registry.extensions:  # applications' pages (Extension.blueprints)
        blueprints.extend(extension.blueprints)
    for blueprint in blueprints:
        if prefix:
            app.register_blueprint(blueprint, url_prefix=prefix + (blueprint.url_prefix or ""))
        else:
            app.register_blueprint(blueprint)
    for extension in runtime.registry.extensions:
        for label, endpoint in extension.nav_links:
            add_nav_link(app, label, endpoint)
    return [blueprint.name for blueprint in blueprints]


def url_prefix_arg(url_prefix: object) -> str:
    """``url_prefix`` as a path prefix: ``""`` or ``/segment[/...]`` without a trailing slash."""
    if url_prefix is None:
        return ""
    if not isinstance(url_prefix, str) or (url_prefix and not url_prefix.startswith("/")):
        raise ConfigurationError(f"url_prefix must be a path starting with '/' (like \"/jobs\"), "
                                 f"got {url_prefix!r}")
    if any(c in url_prefix for c in "<>?#% \t\n"):
        raise ConfigurationError(f"url_prefix must be a plain path, got {url_prefix!r}")
    return url_prefix.rstrip("/")


class _Scope:
    """Request hooks and error handlers of ``app`` that apply to some blueprints only
    (Flask keys them by blueprint name; ``None`` would be the whole app). An error handler
    a blueprint declared itself (the dashboard's HTML 400) stays in front."""

    def __init__(self, app: Flask, names: list[str]):
        self.app, self.names = app, names

    def errorhandler(self, exc_or_code: type[Exception] | int
                     ) -> Callable[[_Handler], _Handler]:
        exc_class, code = self.app._get_exc_class_and_code(exc_or_code)

        def register(handler: _Handler) -> _Handler:
            for name in self.names:
                self.app.error_handler_spec[name][code].setdefault(exc_class, handler)
            return handler

        return register

    def before_request(self, hook: Callable[..., Any]) -> None:
        for name in self.names:
            self.app.before_request_funcs.setdefault(name, []).append(hook)

    def after_request(self, hook: Callable[..., Any]) -> None:
        for name in self.names:
            self.app.after_request_funcs.setdefault(name, []).append(hook)

    def context_processor(self, processor: Callable[..., Any]) -> None:
        for name in self.names:
            self.app.template_context_processors.setdefault(name, []).append(processor)


def init_app(app: Flask, runtime: Runtime, *, url_prefix: str = "/jobs") -> None:
    """Register the engine (event API, REST API, dashboard, health, metrics, OpenAPI) on the
    application's ``app`` under ``url_prefix``, its boundary scoped to its own blueprints."""
    prefix = url_prefix_arg(url_prefix)
    if "tengo_jobs" in app.extensions:
        raise ConfigurationError(f"the Flask app {app.name!r} already has a tengo_jobs engine "
                                 "(one Jobs per app; init_app is called once)")
    runtime.settings.check_production()
    logsafe.install(runtime.settings.secrets())
    app.extensions["tengo_jobs"] = runtime
    app.config.setdefault("TENGO_MAX_REQUEST_BYTES", MAX_REQUEST_BYTES)
    app.config.setdefault("TENGO_MAX_FORM_BYTES", MAX_FORM_BYTES)
    app.config["TENGO_URL_PREFIX"] = prefix
    if "jinja_env" not in app.__dict__ and app.jinja_options.get("finalize") is None:
        # identity on every string that can be sent; an unpaired surrogate is escaped
        app.jinja_options = {**app.jinja_options, "finalize": printable}
    names = _register_blueprints(app, runtime, prefix)
    scope = _Scope(app, names)
    register_error_handlers(scope)
    scope.after_request(headers.add_security_headers)
    csrf.install(app, runtime.settings, scope=scope)
    auth.install(app, runtime.settings)
    scope.before_request(_check_request)


def _check_request() -> ResponseReturnValue | None:
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
    request.max_form_memory_size = limit
    params.check_request_text()
    return None


__all__ = ["create_app", "init_app", "url_prefix_arg", "add_nav_link", "MAX_FORM_BYTES"]
