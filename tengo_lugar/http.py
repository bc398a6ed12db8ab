"""The server actions over HTTP: a Flask blueprint, authenticated by a bearer session token.

``tengo_lugar.pages`` installs it on the web app; the engine's web package never
imports it. Every answer is an :class:`ApiResponse` as JSON.

- ``POST /app/actions/document-verification`` body: the document (``type``, ``number``,
  ``frontUrl``, ``backUrl``, ``expiresAt``) → 201
- ``POST /app/actions/payment-reminder`` body: ``{"paymentId", "dueDate"}`` → 202; only the
  payment's owner or an admin may schedule it.

``Authorization: Bearer <session token>`` (a row of ``tl_sessions``); without a valid
one: 401. Bad input: 400 naming the field; unknown payment: 404.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .actions import create_document_verification, schedule_payment_reminder
from .api_response import ApiResponse
from .models import Payment, Session

blueprint = Blueprint("tengo_lugar_actions", __name__, url_prefix="/app/actions")

_STATUS = {"VALIDATION_ERROR": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403,
           "PAYMENT_NOT_FOUND": 404}


def _reply(response: ApiResponse, ok_status: int = 200):
    status = ok_status if response.success else _STATUS.get(response.error.code, 400)
    return jsonify(response.to_dict()), status


def _session() -> Session | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = Session.get_or_none(Session.token == token.strip())
    runtime = current_app.extensions["tengo_jobs"]
    if row is None or row.expires_at <= runtime.now():
        return None
    return row


def _unauthenticated():
    return _reply(ApiResponse.fail("send Authorization: Bearer <session token> of a signed-in user",
                                   "UNAUTHENTICATED"))


def _body() -> dict | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@blueprint.post("/document-verification")
def document_verification():
    session = _session()
    if session is None:
        return _unauthenticated()
    body = _body()
    if body is None:
        return _reply(ApiResponse.fail("the body must be a JSON object", "VALIDATION_ERROR"))
    return _reply(create_document_verification(session, body), 201)


@blueprint.post("/payment-reminder")
def payment_reminder():
    session = _session()
    if session is None:
        return _unauthenticated()
    body = _body()
    if body is None or not isinstance(body.get("paymentId"), str):
        return _reply(ApiResponse.fail("paymentId (a string) is required", "VALIDATION_ERROR"))
    if "dueDate" not in body:
        return _reply(ApiResponse.fail("dueDate (ISO 8601 with offset, or epoch ms) is required",
                                       "VALIDATION_ERROR"))
    payment = Payment.get_or_none(Payment.id == body["paymentId"])
    if payment is not None and payment.user_id != session.user_id and not session.user.is_admin:
        return _reply(ApiResponse.fail("this payment belongs to another user", "FORBIDDEN"))
    return _reply(schedule_payment_reminder(body["paymentId"], body["dueDate"]), 202)
