"""JSON error responses: every error the web app returns is ``{"error", "status", ...}``.

Inngest's SDKs read ``error`` from a non-2xx body, so the intake answers in that
shape too. Database trouble is 503 (the client retries; nothing was stored),
never a 2xx and never a bare 500 page.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol, TypeVar

import peewee as pw
from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from ...errors import (DatabaseUnavailableError, EventTooLargeError, InvalidRunStateError,
                       RunNotFoundError, TengoJobsError, ValidationError)

log = logging.getLogger(__name__)

UNAVAILABLE_ERRORS = (pw.OperationalError, pw.InterfaceError)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class ErrorHandlerHost(Protocol):
    """A Flask app, or anything else with its ``errorhandler`` decorator."""

    def errorhandler(self, code_or_exception: type[Exception] | int
                     ) -> Callable[[_Handler], _Handler]: ...


def error_response(status: int, message: str, **extra: Any) -> Response:
    body = {"error": message, "status": status}
    body.update({k: v for k, v in extra.items() if v is not None})
    response = jsonify(body)
    response.status_code = status
    return response


def validation_response(exc: ValidationError) -> Response:
    status = 413 if isinstance(exc, EventTooLargeError) else 400
    body = exc.to_dict()
    return error_response(status, body.pop("error"), **body)


def register_error_handlers(app: ErrorHandlerHost) -> None:
    """On ``app``, or on anything with Flask's ``errorhandler`` decorator (the engine's
    blueprints inside an application's app)."""
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        for key, value in exc.get_headers():  # e.g. Allow on 405
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return validation_response(exc)

    @app.errorhandler(RunNotFoundError)
    def _not_found(exc: RunNotFoundError) -> Response:
        return error_response(404, str(exc))

    @app.errorhandler(InvalidRunStateError)
    def _conflict(exc: InvalidRunStateError) -> Response:
        return error_response(409, str(exc))

    @app.errorhandler(TengoJobsError)
    def _engine(exc: TengoJobsError) -> Response:
        log.exception("request failed")
        return error_response(500, f"{type(exc).__name__}: {exc}")

    @app.errorhandler(DatabaseUnavailableError)
    @app.errorhandler(pw.OperationalError)
    @app.errorhandler(pw.InterfaceError)
    def _unavailable(exc: Exception) -> Response:
        log.error("database unavailable: %s: %s", type(exc).__name__, exc)
        return error_response(503, "the database is unavailable; retry later (an event sent "
                                   "again with the same id is stored once)")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(500, "internal error (see the server log)")

