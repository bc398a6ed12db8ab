"""Authentication: event keys for the intake, the dashboard password for the REST API.

- Event keys (``TENGO_EVENT_KEYS``): the key in ``/e/<key>`` or ``Authorization:
  Bearer <key>`` must be one of them. In ``TENGO_ENV=development`` any key is
  accepted, as Inngest's dev server does.
- The REST API and ``/metrics`` need ``TENGO_DASHBOARD_PASSWORD`` as a bearer token
  or as the password of HTTP basic auth (any user name). Without a password set,
  access is open outside production (production refuses to start without one).

A state-changing request to either must also pass :mod:`.csrf` (not cross-site; JSON
only for the API; a form token for the dashboard's forms).

Every comparison is constant-time (``hmac.compare_digest``) and looks at every
configured key, so timing says nothing about which key almost matched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac

from flask import current_app, request

from . import csrf
from .errors import error_response


def _settings():
    return current_app.extensions["tengo_jobs"].settings


def _matches_any(candidate: str, secrets) -> bool:
    given = candidate.encode("utf-8", "surrogateescape")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given, secret.encode("utf-8"))
    return found


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def event_key_ok(key: str | None) -> bool:
    settings = _settings()
    if settings.env == "development":
        return True
    if not key or not settings.event_keys:
        return False
    return _matches_any(key, settings.event_keys)


def _basic_password() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded.partition(":")[2]


def dashboard_ok() -> bool:
    settings = _settings()
    password = settings.dashboard_password
    if not password:
        return not settings.is_production
    given = bearer_token() or _basic_password()
    return given is not None and _matches_any(given, [password])


def unauthorized(message: str):
    response = error_response(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="tengo_jobs", charset="UTF-8"'
    return response


def _protect(view, *, json_api: bool):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not dashboard_ok():
            return unauthorized("the dashboard password is required (Authorization: Bearer "
                                "<TENGO_DASHBOARD_PASSWORD> or HTTP basic auth)")
        refused = csrf.refusal(json_api=json_api)
        if refused is not None:
            return refused
        return view(*args, **kwargs)

    return wrapper


def require_dashboard(view):
    """Decorator: the dashboard password (bearer or basic auth) is required, and a
    state-changing request must come from the dashboard itself (:mod:`.csrf`)."""
    return _protect(view, json_api=False)


def require_api(view):
    """Decorator for the REST API: as :func:`require_dashboard`, and a state-changing
    request takes a JSON body only (415 otherwise) instead of a form token."""
    return _protect(view, json_api=True)
