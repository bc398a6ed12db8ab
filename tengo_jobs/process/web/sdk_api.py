"""Inngest SDK sync: ``POST /fn/register`` and the synced apps, ``GET /api/apps``.

``POST /fn/register`` is what an Inngest SDK posts to a dev server when its serve endpoint
gets a ``PUT`` (``INNGEST_DEV`` / ``INNGEST_BASE_URL`` pointing at this server): the app
and its functions (:mod:`tengo_jobs.engine.sdk_sync`). It answers in the shape the SDK
parses (``{status, modified, error}``: ``error`` is the message the SDK relays to whoever
sent the ``PUT``), plus what was registered and what was refused, per function.

Authentication is the SDK's own: its sync carries ``Authorization: Bearer <hashed signing
key>`` (SHA-256 of the key's hex body, prefix kept; inngest 3.32.7 signs no body here). In
production (``TENGO_ENV=production``) the key must be set and the bearer is required. In
development a sync without a bearer is taken, as Inngest's dev server takes it (inngest-py's
``serve`` in dev mode sends none), but a bearer that is given must match the key when one is
set. An ``X-Inngest-Signature`` the call carries is verified against the key (HMAC of the raw
body, at most five minutes old); a wrong one is a 401 naming what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, cast

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from ...engine.drivers.http import SIGNATURE_HEADER, SignatureError, verify_signature
from .auth import bearer_token, require_api
from .errors import error_response
from .params import json_object_body

bp = Blueprint("tengo_sdk_api", __name__)

if TYPE_CHECKING:
    from ...runtime import Runtime

_PREFIX = re.compile(r"^signkey-\w+-")


def _runtime() -> Runtime:
    return cast("Runtime", current_app.extensions["tengo_jobs"])


def _hashed(signing_key: str) -> str:
    """The signing key as Inngest's SDKs send it: SHA-256 of its hex body, prefix kept."""
    prefix = _PREFIX.match(signing_key)
    body = signing_key[prefix.end():] if prefix else signing_key
    try:
        digest = hashlib.sha256(bytes.fromhex(body)).hexdigest()
    except ValueError:
        digest = hashlib.sha256(body.encode()).hexdigest()
    return (prefix.group(0) if prefix else "") + digest


def _sync_refusal() -> tuple[str, str] | None:
    """``(why, header)`` when this sync call is not authenticated, else ``None``."""
    settings = _runtime().settings
    key = settings.signing_key
    if not key:
        if settings.is_production:
            return ("SDK sync is refused: TENGO_SIGNING_KEY is not set (required in "
                    "production)", "Authorization")
        return None
    given = bearer_token()
    if given is None and not settings.is_production:
        return None  # development: open, as Inngest's dev server is
    if given is None or not hmac.compare_digest(given.encode(), _hashed(key).encode()):
        return ("the sync must carry Authorization: Bearer <the hashed signing key> "
                "(TENGO_SIGNING_KEY is set); "
                + ("none was given" if given is None else "the one given does not match"),
                "Authorization")
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        try:
            verify_signature(signature, request.get_data(cache=True), key,
                             now_ms=_runtime().clock.now())
        except SignatureError as exc:
            return f"the sync's {exc}", SIGNATURE_HEADER
    return None


@bp.post("/fn/register")
def register() -> ResponseReturnValue:
    refusal = _sync_refusal()
    if refusal is not None:
        return error_response(401, refusal[0], field=refusal[1])
    body = json_object_body('{"appName": "my-app", "url": "http://...", "functions": []}')
    return jsonify(_runtime().sdk_apps.sync(body))


@bp.get("/api/apps")
@require_api
def list_apps() -> ResponseReturnValue:
    return jsonify({"apps": _runtime().sdk_apps.list()})


__all__ = ["bp"]
