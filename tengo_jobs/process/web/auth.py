"""Authentication: event keys for the intake, the dashboard password for everything else.

- Event keys (``TENGO_EVENT_KEYS``): the key in ``/e/<key>`` or ``Authorization:
  Bearer <key>`` must be one of them. In ``TENGO_ENV=development`` any key is
  accepted, as Inngest's dev server does.
- The dashboard, the REST API and ``/metrics`` need ``TENGO_DASHBOARD_PASSWORD``: as a
  bearer token or the password of HTTP basic auth (any user name), for scripts; or, in a
  browser, a session cookie (:data:`SESSION_COOKIE`) that ``POST /login`` sets when the
  password is typed in its form. A dashboard page asked for without either redirects to
  ``/login``; the API and ``/metrics`` answer 401.
- The session cookie is itsdangerous's timestamped signature under a key derived from
  ``TENGO_SIGNING_KEY`` and the password (a password change logs everyone out), valid for
  ``TENGO_SESSION_LIFETIME`` (12 h); ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when
  the request came over HTTPS. ``POST /logout`` deletes it.
- Without a password set (development; production refuses to start without one), access
  is open only to a client on a loopback address (127.0.0.1, ::1); the dashboard says so
  in a banner. Any other client is refused with 403.

A state-changing request to either must also pass :mod:`.csrf` (not cross-site; JSON
only for the API; a form token for the dashboard's forms).

Every comparison is constant-time (``hmac.compare_digest``) and looks at every
configured key, so timing says nothing about which key almost matched.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
from typing import TYPE_CHECKING, Callable, Iterable, ParamSpec, cast
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from . import csrf
from .errors import error_response

if TYPE_CHECKING:
    from ...config import Settings

_P = ParamSpec("_P")


def _settings() -> Settings:
    return cast("Settings", current_app.extensions["tengo_jobs"].settings)


def _matches_any(candidate: str, secrets: Iterable[str]) -> bool:
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


SESSION_COOKIE = "tj_session"
SESSION_SALT = "tengo_jobs dashboard session"
_SESSION_KEY = "tengo_jobs_session_key"
OK, MISSING, WRONG, REMOTE = "ok", "missing", "wrong", "remote"


def install(app: Flask, settings: Settings) -> None:
    """Derive the session cookie's key from the deployment's secrets."""
    app.extensions[_SESSION_KEY] = csrf.derive_key(settings, b"tengo_jobs session key")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.extensions[_SESSION_KEY], salt=SESSION_SALT,
                                  signer_kwargs={"digest_method": hashlib.sha256})


def session_lifetime_s() -> int:
    return max(1, _settings().session_lifetime_ms // 1000)


def issue_session(*, now: float | None = None) -> str:
    """A session cookie's value, signed at ``now`` (default: the current time)."""
    serializer = _serializer()
    if now is not None:
        # a URLSafeTimedSerializer's signer is a TimestampSigner
        signer = cast(TimestampSigner, serializer.make_signer(SESSION_SALT))
        signer.get_timestamp = lambda: int(now)  # type: ignore[method-assign]
        return signer.sign(serializer.dump_payload({"v": 1})).decode("ascii")
    return serializer.dumps({"v": 1})


def session_ok() -> bool:
    value = request.cookies.get(SESSION_COOKIE)
    if not value or len(value) > 256:
        return False
    try:
        return bool(_serializer().loads(value, max_age=session_lifetime_s()) == {"v": 1})
    except (BadSignature, ValueError):  # expired, forged, or signed under another password
        return False


def set_session_cookie(response: BaseResponse) -> None:
    response.set_cookie(SESSION_COOKIE, issue_session(), max_age=session_lifetime_s(),
                        httponly=True, samesite="Lax", secure=request.is_secure, path="/")


def clear_session_cookie(response: BaseResponse) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="Lax",
                           secure=request.is_secure, path="/")


def password_ok(given: str | None) -> bool:
    password = _settings().dashboard_password
    return password is not None and bool(password) and given is not None and _matches_any(
        given, [password])


def from_loopback() -> bool:
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def open_without_password() -> bool:
    """No password is set: the dashboard is open, to loopback clients only."""
    return not _settings().dashboard_password


def access() -> str:
    """:data:`OK`, or why not: :data:`MISSING` (no credentials), :data:`WRONG` (credentials
    that do not match), :data:`REMOTE` (no password set, and the client is not local)."""
    settings = _settings()
    if not settings.dashboard_password:
        return OK if from_loopback() and not settings.is_production else REMOTE
    given = bearer_token() or _basic_password()
    if given is not None:
        return OK if password_ok(given) else WRONG
    return OK if session_ok() else MISSING


def dashboard_ok() -> bool:
    return access() == OK


def unauthorized(message: str) -> Response:
    response = error_response(401, message)
    response.headers["WWW-Authenticate"] = 'Basic realm="tengo_jobs", charset="UTF-8"'
    return response


REMOTE_MESSAGE = ("no TENGO_DASHBOARD_PASSWORD is set, so this server answers only clients on "
                  "a loopback address (127.0.0.1, ::1): set the password to reach it from "
                  "another address")
API_MESSAGE = ("the dashboard password is required (Authorization: Bearer "
               "<TENGO_DASHBOARD_PASSWORD>, HTTP basic auth, or a session from /login)")


def safe_next(target: str | None) -> str | None:
    """``target`` when it is a path on this site (``/runs/x?y``), else ``None``: a login
    never sends the browser to another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return None
    return target


def _refused(why: str, *, json_api: bool) -> ResponseReturnValue:
    if why == REMOTE:
        if json_api:
            return error_response(403, REMOTE_MESSAGE)
        return render_template("tj/message.html", title="Local access only",
                               message=REMOTE_MESSAGE), 403
    if json_api:
        return unauthorized(API_MESSAGE)
    if why == MISSING and request.method in ("GET", "HEAD"):
        return redirect(url_for("tengo_dashboard.login_page", next=request.full_path.rstrip("?")))
    return render_template("tj/message.html", title="Log in first",
                           message="this page needs the dashboard password: log in at /login",
                           login_link=True), 401


def _protect(view: Callable[_P, ResponseReturnValue], *,
             json_api: bool) -> Callable[_P, ResponseReturnValue]:
    @functools.wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> ResponseReturnValue:
        why = access()
        if why != OK:
            return _refused(why, json_api=json_api)
        refused = csrf.refusal(json_api=json_api)
        if refused is not None:
            return refused
        return view(*args, **kwargs)

    return wrapper


def require_dashboard(view: Callable[_P, ResponseReturnValue]
                      ) -> Callable[_P, ResponseReturnValue]:
    """Decorator for a dashboard page: the password (a session cookie from ``/login``,
    bearer or basic auth) is required, a browser without one is sent to the login form,
    and a state-changing request must come from the dashboard itself (:mod:`.csrf`)."""
    return _protect(view, json_api=False)


def require_api(view: Callable[_P, ResponseReturnValue]) -> Callable[_P, ResponseReturnValue]:
    """Decorator for the REST API and ``/metrics``: as :func:`require_dashboard`, but a
    request without credentials is a 401 (not a redirect), and a state-changing request
    takes a JSON body only (415 otherwise) instead of a form token."""
    return _protect(view, json_api=True)
