"""Keep secrets out of logs.

:func:`install` makes every log record of the process pass through :func:`redact`
before any handler sees it (a log-record factory, so loggers and handlers set up
later — gunicorn's access log, werkzeug's request log — are covered too):

- every configured secret value (event keys, signing key, dashboard password,
  Resend key: :meth:`Settings.secrets`) is replaced by ``[REDACTED]``;
- the event key in Inngest's intake path ``/e/<key>`` is replaced whatever it is
  (in development any key is accepted, and a wrong key may be another
  environment's right one);
- ``Authorization`` header values are replaced.

Call it when a process boots (``create_app`` does for the web process).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

REDACTED = "[REDACTED]"
_INTAKE_PATH = re.compile(r"(/e/)[^/?#\s\"']+")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer |basic )?[^\s\"',}]+")
_MIN_SECRET_LENGTH = 4  # shorter "secrets" would redact ordinary words

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_installed = False


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with secrets, intake-path keys and Authorization values replaced."""
    if not isinstance(text, str):
        text = str(text)
    for secret in (_secrets if secrets is None else secrets):
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    text = _INTAKE_PATH.sub(r"\1" + REDACTED, text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) or "") + REDACTED, text)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string must not hide the line
        message = f"{record.msg!r} {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A logging filter that redacts records in place (for handlers you configure yourself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def install(secrets: Iterable[str] = ()) -> None:
    """Redact ``secrets`` (and intake keys, Authorization values) in every record from now on.

    Idempotent; later calls add secrets. Secrets shorter than 4 characters are
    ignored (they would redact ordinary words); use longer keys.
    """
    global _secrets, _installed
    with _lock:
        merged = set(_secrets) | {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # longest first, so a secret containing another is replaced whole
        _secrets = tuple(sorted(merged, key=len, reverse=True))
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            return _redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True


def installed_secrets() -> tuple[str, ...]:
    return _secrets


__all__ = ["install", "redact", "RedactingFilter", "REDACTED"]
