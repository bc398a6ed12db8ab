"""Inngest SDK sync: ``POST /fn/register`` and the synced apps, ``GET /api/apps``.

``POST /fn/register`` is what an Inngest SDK posts to a dev server when its serve endpoint
gets a ``PUT`` (``INNGEST_DEV`` / ``INNGEST_BASE_URL`` pointing at this server): the app
and its functions (:mod:`tengo_jobs.engine.sdk_sync`). It answers in the shape the SDK
parses (``{status, modified, error}``: ``error`` is the message the SDK relays to whoever
sent the ``PUT``), plus what was registered and what was refused, per function. With
``TENGO_SIGNING_KEY`` set, the SDK's ``Authorization: Bearer <hashed signing key>`` is
required (401 otherwise); without one (development) the sync is open, as Inngest's dev
server is.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from flask import Blueprint, current_app, jsonify

from .auth import bearer_token, require_api
from .errors import error_response
from .params import json_object_body

bp = Blueprint("tengo_sdk_api", __name__)

_PREFIX = re.compile(r"^signkey-\w+-")


def _runtime():
    return current_app.extensions["tengo_jobs"]


def _hashed(signing_key: str) -> str:
    """The signing key as Inngest's SDKs send it: SHA-256 of its hex body, prefix kept."""
    prefix = _PREFIX.match(signing_key)
    body = signing_key[prefix.end():] if prefix else signing_key
    try:
        digest = hashlib.sha256(bytes.fromhex(body)).hexdigest()
    except ValueError:
        digest = hashlib.sha256(body.encode()).hexdigest()
    return (prefix.group(0) if prefix else "") + digest


def _sync_allowed() -> bool:
    key = _runtime().settings.signing_key
    if not key:
        return True
    given = bearer_token() or ""
    return hmac.compare_digest(given.encode(), _hashed(key).encode())


@bp.post("/fn/register")
def register():
    if not _sync_allowed():
        return error_response(401, "the sync must carry Authorization: Bearer <the hashed "
                                   "signing key> (TENGO_SIGNING_KEY is set)", field="Authorization")
    body = json_object_body('{"appName": "my-app", "url": "http://...", "functions": []}')
    return jsonify(_runtime().sdk_apps.sync(body))


@bp.get("/api/apps")
@require_api
def list_apps():
    return jsonify({"apps": _runtime().sdk_apps.list()})


__all__ = ["bp"]
