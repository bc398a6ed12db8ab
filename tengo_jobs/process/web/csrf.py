"""Cross-site requests refused on everything the dashboard password protects.

A browser that has the dashboard's basic-auth credentials cached attaches them to every
request to the dashboard's origin, including one that another site's page makes it send.
So a state-changing request (POST, PUT, PATCH, DELETE) to a view behind
:func:`~.auth.require_dashboard` must show that it comes from the dashboard itself:

1. **Not cross-site** (403): ``Sec-Fetch-Site`` (sent by current browsers) is
   ``same-origin`` or ``none``; without it, ``Origin``, else ``Referer``, names this host.
   A request with none of the three (curl, scripts, the CLI) passes this check.
2. **The REST API takes JSON only** (415): a body must be ``application/json`` (or
   ``…+json``); a body of another type, or any ``Content-Type`` that is not JSON, is
   refused, so a cross-site form (form-encoded, multipart or ``text/plain``) cannot act.
   A page can send JSON to another origin only after a CORS preflight, which this server
   never grants. A request with no body and no ``Content-Type`` (``curl -X POST``) passes.
3. **Forms carry a token** (403): a non-JSON request to the dashboard (its
   send-test-event form, an application's pages) carries :func:`issue_token`'s value in
   its ``csrf_token`` field or an ``X-CSRF-Token`` header. The token is stateless:
   itsdangerous's timestamped signature (salt :data:`TOKEN_SALT`) under a key derived from
   ``TENGO_SIGNING_KEY`` and ``TENGO_DASHBOARD_PASSWORD``, so every web process of a
   deployment accepts the others' tokens and a password change voids them; it is valid for
   :data:`TOKEN_MAX_AGE_S`. With neither secret set (development), the key is random per
   process.

The event API (``/e/<key>``, ``POST /api/events``) is not behind the dashboard password
and is not concerned: its event key is in the URL or an ``Authorization: Bearer`` header,
neither of which a browser adds by itself, and Inngest's SDKs and ``curl -d`` send events
from other origins with whatever ``Content-Type`` they use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from .errors import error_response

if TYPE_CHECKING:
    from ...config import Settings

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
TOKEN_FIELD = "csrf_token"
TOKEN_HEADER = "X-CSRF-Token"
TOKEN_MAX_AGE_S = 24 * 3600
TOKEN_SALT = "tengo_jobs dashboard form token"
_TOKEN_VALUE = b"form"  # what is signed; the salt and the time carry the meaning
_CLOCK_SKEW_S = 300  # a token issued by another web host whose clock runs ahead
_KEY = "tengo_jobs_csrf_key"


def derive_key(settings: Settings, purpose: bytes) -> bytes:
    """A key for ``purpose`` from the deployment's secrets (``TENGO_SIGNING_KEY`` and
    ``TENGO_DASHBOARD_PASSWORD``): the same in every web process, changed with either
    secret; random per process without any."""
    material = [s for s in (settings.signing_key, settings.dashboard_password) if s]
    if not material:
        return secrets.token_bytes(32)
    joined = "\0".join(material).encode("utf-8", "surrogatepass")
    return hmac.new(purpose, joined, hashlib.sha256).digest()


def install(app: Flask, settings: Settings, *, scope: Any = None) -> None:
    """Derive this app's token key from the deployment's secrets (random without any).

    ``csrf_token()`` is a template global, or with ``scope`` (an application's own app: see
    :func:`tengo_jobs.process.web.init_app`) only in the templates the engine's blueprints
    render, so it does not shadow an application's own ``csrf_token`` (Flask-WTF's)."""
    app.extensions[_KEY] = derive_key(settings, b"tengo_jobs csrf token key")
    if scope is None:
        app.jinja_env.globals["csrf_token"] = issue_token
    else:
        scope.context_processor(lambda: {"csrf_token": issue_token})


class _FormSigner(TimestampSigner):
    """itsdangerous's timestamped signer for form tokens, on a clock a caller may set."""

    def __init__(self, now: float | None):
        super().__init__(current_app.extensions[_KEY], salt=TOKEN_SALT,
                         digest_method=hashlib.sha256)
        self._now = now

    def get_timestamp(self) -> int:
        return int(time.time() if self._now is None else self._now)


def issue_token(*, now: float | None = None) -> str:
    """A token for a form of this dashboard (``{{ csrf_token() }}`` in a template)."""
    return _FormSigner(now).sign(_TOKEN_VALUE).decode("ascii")


def token_ok(token: str | None, *, now: float | None = None) -> bool:
    if not token or len(token) > 128:
        return False
    signer = _FormSigner(now)
    try:
        return signer.unsign(token, max_age=TOKEN_MAX_AGE_S) == _TOKEN_VALUE
    except SignatureExpired as exc:  # signed by this deployment, but too old or ahead of us
        signed = exc.date_signed
        assert signed is not None  # TimestampSigner.unsign always sets it on expiry
        ahead = signed.timestamp() - signer.get_timestamp()
        return 0 < ahead <= _CLOCK_SKEW_S and exc.payload == _TOKEN_VALUE
    except (BadSignature, ValueError):  # ValueError: text that is not UTF-8
        return False


def _cross_site() -> str | None:
    """Why this request comes from another site, or ``None``."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site.strip().lower() in ("same-origin", "none"):
            return None
        return f"Sec-Fetch-Site: {fetch_site[:40]}"
    host = request.host.lower()
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        try:
            netloc = urlsplit(value.strip()).netloc.lower()
        except ValueError:
            netloc = ""
        if netloc and netloc == host:
            return None
        return f"{header} {value[:80]!r} is not this dashboard ({host})"
    return None


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/")
                                              and mimetype.endswith("+json"))


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", "").lower()


def refusal(*, json_api: bool) -> ResponseReturnValue | None:
    """The response refusing this state-changing request, or ``None`` to let it through."""
    if request.method in SAFE_METHODS:
        return None
    why = _cross_site()
    if why is not None:
        return _refuse(403, f"cross-site request refused: {why}", json_api=json_api)
    mimetype = request.mimetype
    if _is_json(mimetype):
        return None
    if json_api:
        if not mimetype and not _has_body():
            return None
        given = request.headers.get("Content-Type") or "none"
        return error_response(415, f"this endpoint takes a JSON body: send Content-Type: "
                                   f"application/json (got {given[:80]!r})",
                              field="Content-Type")
    token = request.headers.get(TOKEN_HEADER) or request.form.get(TOKEN_FIELD)
    if not token_ok(token):
        return _refuse(403, "this form has no valid CSRF token (it is missing, older than 24 "
                            "hours, or from another dashboard): reload the page and send it "
                            "again", json_api=False)
    return None


def _refuse(status: int, message: str, *, json_api: bool) -> ResponseReturnValue:
    if json_api:
        return error_response(status, message)
    return render_template("tj/message.html", title="Request refused", message=message), status


__all__ = ["install", "derive_key", "issue_token", "token_ok", "refusal", "TOKEN_FIELD", "TOKEN_HEADER",
           "TOKEN_MAX_AGE_S"]
