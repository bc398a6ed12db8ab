"""In-app notifications: ``send_system_notification`` for jobs, ``notify_user`` for signed-in users.

``send_system_notification`` acts as the system: it needs no session, only a user
that exists, and reports failures as an :class:`ApiResponse` (``USER_NOT_FOUND``,
``VALIDATION_ERROR``). ``notify_user`` acts on behalf of a signed-in user and so needs
their session; a job has none, and calling it from one fails at once with a message
pointing to ``send_system_notification``.
"""

from __future__ import annotations

import json
from typing import Iterable

from tengo_jobs import bulk_insert, get_runtime

from .api_response import ApiResponse
from .dbutil import in_transaction
from .errors import SessionRequiredError
from .models import Notification, Session, User

_CHUNK = 500


def _validate(title, message, type, link, metadata) -> str | None:
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        return "title must be a non-empty string of at most 200 characters"
    if not isinstance(message, str) or not message.strip():
        return "message must be a non-empty string"
    if not isinstance(type, str) or not type.strip() or len(type) > 40:
        return "type must be a non-empty string of at most 40 characters"
    if link is not None and (not isinstance(link, str) or len(link) > 500):
        return "link must be a string of at most 500 characters or None"
    if metadata is not None:
        if not isinstance(metadata, dict):
            return "metadata must be a dict or None"
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as exc:
            return f"metadata is not JSON-serializable: {exc}"
    return None


def send_system_notification(user_id: str, title: str, message: str, type: str,
                             link: str | None = None, metadata: dict | None = None, *,
                             idempotency_key: str | None = None) -> ApiResponse:
    """Store a notification for ``user_id`` as the system; no session needed.

    With ``idempotency_key`` a repeated call (a step re-run) stores nothing new.
    """
    response = send_system_notifications([user_id], title, message, type, link, metadata,
                                         idempotency_key=idempotency_key)
    if not response.success:
        return response
    return ApiResponse.ok(response.data[0], message="Notification sent")


def send_system_notifications(user_ids: Iterable[str], title: str, message: str, type: str,
                              link: str | None = None, metadata: dict | None = None, *,
                              idempotency_key: str | None = None) -> ApiResponse:
    """The same notification for several users: one query checks them, one insert stores them.

    All or nothing: an unknown user fails the whole call with ``USER_NOT_FOUND``.
    """
    user_ids = list(dict.fromkeys(user_ids))
    problem = _validate(title, message, type, link, metadata)
    if problem is None and not all(isinstance(u, str) and u for u in user_ids):
        problem = "user ids must be non-empty strings"
    if problem is not None:
        return ApiResponse.fail(problem, "VALIDATION_ERROR")
    if not user_ids:
        return ApiResponse.ok([], message="No users to notify")
    runtime = get_runtime()
    now = runtime.now()
    meta = json.dumps(metadata, separators=(",", ":")) if metadata is not None else None
    with in_transaction(runtime.db):
        found = set()
        for i in range(0, len(user_ids), _CHUNK):
            found.update(u for (u,) in User.select(User.id)
                         .where(User.id.in_(user_ids[i:i + _CHUNK])).tuples())
        missing = [u for u in user_ids if u not in found]
        if missing:
            return ApiResponse.fail(f"user {missing[0]!r} not found"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                    "USER_NOT_FOUND")
        rows = [dict(user=u, title=title, message=message, type=type, link=link, metadata=meta,
                     read=False, created_at=now, idempotency_key=idempotency_key)
                for u in user_ids]
        for i in range(0, len(rows), _CHUNK):
            bulk_insert(Notification, rows[i:i + _CHUNK], ignore_conflicts=True)
    data = [{"userId": u, "title": title, "message": message, "type": type, "link": link,
             "metadata": metadata, "read": False, "createdAt": now} for u in user_ids]
    return ApiResponse.ok(data, message=f"{len(data)} notification(s) sent")


def session_user(session) -> User:
    """The user of ``session`` (a :class:`Session` or its token); raises when there is none."""
    if session is None:
        raise SessionRequiredError(
            "notify_user needs a signed-in user's session, and there is none (inside a job there "
            "never is); use send_system_notification(user_id, ...) instead")
    if isinstance(session, str):
        row = Session.get_or_none(Session.token == session)
    elif isinstance(session, Session):
        row = session
    else:
        raise SessionRequiredError(f"expected a Session or a session token, got {type(session).__name__}")
    if row is None or row.expires_at <= get_runtime().now():
        raise SessionRequiredError("the session is unknown or has expired; sign in again")
    return row.user


def notify_user(session, title: str, message: str, type: str, link: str | None = None,
                metadata: dict | None = None, *, user_id: str | None = None) -> ApiResponse:
    """Notify a user on behalf of the signed-in user of ``session`` (themselves by default)."""
    user = session_user(session)
    return send_system_notification(user_id or user.id, title, message, type, link, metadata)
