"""In-app notifications: ``send_system_notification`` for jobs, ``notify_user`` for signed-in users.

``send_system_notification`` acts as the system: it needs no session, only a user
that exists, and reports failures as an :class:`ApiResponse` (``USER_NOT_FOUND``,
``VALIDATION_ERROR``). ``notify_user`` acts on behalf of a signed-in user and so needs
their session; a job has none, and calling it from one fails at once with a message
pointing to ``send_system_notification``.
"""

from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class SystemNotification:
    """One notification ``send_system_notifications`` stores: the arguments of
    ``send_system_notification`` as a value."""

    user_id: str
    title: str
    message: str
    type: str
    link: str | None = None
    metadata: dict | None = None


def send_system_notification(user_id: str, title: str, message: str, type: str,
                             link: str | None = None, metadata: dict | None = None, *,
                             idempotency_key: str | None = None) -> ApiResponse:
    """Store a notification for ``user_id`` as the system; no session needed.

    Fails (``USER_NOT_FOUND``, ``VALIDATION_ERROR``) without raising. With
    ``idempotency_key`` a repeated call (a step re-run) stores nothing new.
    """
    [response] = send_system_notifications(
        [SystemNotification(user_id, title, message, type, link, metadata)],
        idempotency_key=idempotency_key)
    return response


def send_system_notifications(notes: Iterable[SystemNotification], *,
                              idempotency_key: str | None = None) -> list[ApiResponse]:
    """``send_system_notification`` for each of ``notes``, with one query that checks the
    users and one insert: the same answers, one ``ApiResponse`` per note, as calling it
    once per note (an unknown user fails its own note only)."""
    notes = list(notes)
    answers: list[ApiResponse | None] = []
    for note in notes:
        problem = _validate(note.title, note.message, note.type, note.link, note.metadata)
        if problem is None and (not isinstance(note.user_id, str) or not note.user_id):
            problem = f"userId must be a non-empty string, got {note.user_id!r}"
        answers.append(None if problem is None else ApiResponse.fail(problem, "VALIDATION_ERROR"))
    wanted = list(dict.fromkeys(n.user_id for n, a in zip(notes, answers) if a is None))
    if not wanted:
        return answers  # type: ignore[return-value]
    runtime = get_runtime()
    now = runtime.now()
    rows = []
    with in_transaction(runtime.db):
        found = set()
        for i in range(0, len(wanted), _CHUNK):
            found.update(u for (u,) in User.select(User.id)
                         .where(User.id.in_(wanted[i:i + _CHUNK])).tuples())
        for i, note in enumerate(notes):
            if answers[i] is not None:
                continue
            if note.user_id not in found:
                answers[i] = ApiResponse.fail(f"User {note.user_id} not found", "USER_NOT_FOUND")
                continue
            meta = (json.dumps(note.metadata, separators=(",", ":"))
                    if note.metadata is not None else None)
            rows.append(dict(user=note.user_id, title=note.title, message=note.message,
                             type=note.type, link=note.link, metadata=meta, read=False,
                             created_at=now, idempotency_key=idempotency_key))
            answers[i] = ApiResponse.ok(
                {"userId": note.user_id, "title": note.title, "message": note.message,
                 "type": note.type, "link": note.link, "metadata": note.metadata,
                 "read": False, "createdAt": now}, message="Notification sent")
        for i in range(0, len(rows), _CHUNK):
            bulk_insert(Notification, rows[i:i + _CHUNK], ignore_conflicts=True)
    return answers  # type: ignore[return-value]


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
