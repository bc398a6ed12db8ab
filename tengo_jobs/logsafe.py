"""Keep secrets out of logs, and set up how a process logs (text or JSON lines).

:func:`install` (called once per process by :func:`tengo_jobs.runtime.boot`) makes
everything the logging system emits pass through :func:`redact`:

- every log record, when it is created (a log-record factory, so loggers and handlers
  set up later — gunicorn's, Dramatiq's, werkzeug's, APScheduler's — are covered too):
  its message, exception text and stack;
- every line a logging handler formats (``logging.Handler.format``), so a formatter that
  renders the traceback or extra fields itself is covered as well;
- the tracebacks of uncaught exceptions (``sys.excepthook``, ``threading.excepthook``),
  which Python prints without the logging system.

What :func:`redact` replaces with ``[REDACTED]``:

- every configured secret value (:meth:`Settings.secrets` — event keys, the signing key
  in its prefixed and hashed forms, the dashboard password, the database and Redis URL
  passwords — and each extension's ``secrets``, e.g. Tengo Lugar's Resend key). A secret
  of :data:`SUBSTRING_MIN_LENGTH` characters or more is replaced wherever it occurs; a
  shorter one (production refuses those, development allows them) only where it stands
  alone, not inside a longer word or number — replacing every ``x`` of a log would make
  it unreadable, and a short secret printed as a value is still bounded by punctuation
  or spaces (``:x@``, ``=x``, ``"x"``);
- the password of any URL (``postgresql://user:PASS@host``, ``redis://:PASS@host``,
  ``rediss://…``), configured or not;
- ``password=…`` (libpq's keyword DSN form, query strings) and ``'password': '…'``;
- the event key in Inngest's intake path ``/e/<key>``, whatever it is (in development any
  key is accepted, and a wrong key may be another environment's right one);
- ``Authorization`` header values.

``TENGO_LOG_FORMAT=json`` (:func:`configure_logging`, :func:`apply_format`) makes every
line one JSON object (:class:`JsonFormatter`): ``time``, ``level``, ``logger``,
``message``, and ``run_id``, ``function_id``, ``step_key`` where there is one — given as
``extra`` (``ctx.logger`` does) or set for a stretch of code by :func:`log_context` (the
executor around a run, the step runner around a step's function). Every field is redacted
as above; so is an uncaught exception, written as a JSON line too.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import re
import sys
import threading
import traceback
import types
from typing import Any, Iterable, Iterator

REDACTED = "[REDACTED]"
SUBSTRING_MIN_LENGTH = 6  # shorter secrets are redacted only as whole words

_INTAKE_PATH = re.compile(r"(/e/)[^/?#\s\"']+")
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer |basic )?[^\s\"',}]+")
# scheme://user:PASSWORD@host — the password runs to the last '@' before the host part
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@\"'<>]*:)([^\s/?#\"'<>]*)@")
_DSN_PASSWORD = re.compile(
    r"(?i)\b(\w*(?:password|passwd|pwd))(\s*=\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\")}]+)")
_MAPPING_PASSWORD = re.compile(r"(?i)([\"'](?:password|passwd|pwd)[\"']\s*:\s*)([\"'])(.*?)\2")

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_pattern: re.Pattern[str] | None = None
_installed = False
_json_lines = False  # uncaught exceptions are written as JSON lines too

#: The run fields a JSON line carries when the record or the current context has them.
CONTEXT_FIELDS = ("run_id", "function_id", "step_key")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "tengo_jobs_log_context", default={})


def _compile(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for the short secrets, each only where it stands alone."""
    short = sorted({s for s in secrets if len(s) < SUBSTRING_MIN_LENGTH}, key=len, reverse=True)
    parts = [rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])" for s in short]
    return re.compile("|".join(parts)) if parts else None


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with secrets, URL and DSN passwords, intake keys and Authorization values
    replaced by ``[REDACTED]``."""
    if not isinstance(text, str):
        text = str(text)
    if secrets is None:
        candidates, pattern = _secrets, _pattern
    else:
        candidates = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        pattern = _compile(candidates)
    # Cheap substring tests first: this runs on every log line, twice (the record, then
    # the formatted text). Secrets are replaced longest first, so one containing another
    # is replaced whole.
    short_seen = False
    for secret in candidates:
        if secret in text:
            if len(secret) >= SUBSTRING_MIN_LENGTH:
                text = text.replace(secret, REDACTED)
            else:
                short_seen = True
    if short_seen and pattern is not None:
        text = pattern.sub(REDACTED, text)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)
    lower = text.lower()
    if "pass" in lower or "pwd" in lower:
        text = _DSN_PASSWORD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        text = _MAPPING_PASSWORD.sub(
            lambda m: m.group(1) + m.group(2) + REDACTED + m.group(2), text)
    if "/e/" in text:
        text = _INTAKE_PATH.sub(r"\1" + REDACTED, text)
    if "authorization" in lower:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) or "") + REDACTED, text)
    return text


_PLAIN_ARG = (str, int, float, bool, type(None))


def _redact_message(record: logging.LogRecord) -> None:
    """Redact the record's message. A record with nothing to redact keeps its ``msg`` and
    ``args`` (formatters such as uvicorn's access log unpack ``args``); one with a secret
    keeps them redacted one by one where the result is clean, else becomes the redacted
    text with no ``args``."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string must not hide the line
        record.msg, record.args = redact(f"{record.msg!r} {record.args!r}"), None
        return
    clean = redact(message)
    if clean == message:
        return
    args = record.args
    if isinstance(args, tuple) and args and isinstance(record.msg, str) and all(
            isinstance(a, _PLAIN_ARG) for a in args):
        msg = redact(record.msg)
        parts = tuple(redact(a) if isinstance(a, str) else a for a in args)
        try:
            rendered = msg % parts
        except Exception:  # noqa: BLE001 - e.g. %d given a redacted string: flatten below
            rendered = None
        if rendered is not None and redact(rendered) == rendered:
            record.msg, record.args = msg, parts
            return
    record.msg, record.args = clean, None


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    _redact_message(record)
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


def _install_hooks() -> None:
    previous_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return _redact_record(previous_factory(*args, **kwargs))

    logging.setLogRecordFactory(factory)

    handler_format = logging.Handler.format

    def format_redacted(self: logging.Handler, record: logging.LogRecord) -> str:
        if isinstance(self.formatter, JsonFormatter):  # it redacts each field itself
            return handler_format(self, record)
        return redact(handler_format(self, record))

    logging.Handler.format = format_redacted  # type: ignore[method-assign]

    def excepthook(exc_type: type[BaseException], exc: BaseException,
                   tb: types.TracebackType | None) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(_uncaught_line(f"uncaught {exc_type.__name__}: {exc}", text))
        sys.stderr.flush()

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value,
                                                  args.exc_traceback))
        sys.stderr.write(_uncaught_line(f"uncaught {args.exc_type.__name__} in thread {name}: "
                                        f"{args.exc_value}", f"Exception in thread {name}:\n{text}"))
        sys.stderr.flush()

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


def install(secrets: Iterable[str] = ()) -> None:
    """Redact ``secrets`` (and URL passwords, intake keys, Authorization values) in
    everything logged from now on; see the module docstring.

    Idempotent: the hooks are installed once per process, later calls add secrets.
    """
    global _secrets, _pattern, _installed
    with _lock:
        merged = set(_secrets) | {s for s in secrets if s}
        if merged != set(_secrets):
            _secrets = tuple(sorted(merged, key=len, reverse=True))
            _pattern = _compile(_secrets)
        if not _installed:
            _install_hooks()
            _installed = True


def installed_secrets() -> tuple[str, ...]:
    return _secrets


def _uncaught_line(message: str, text: str) -> str:
    if not _json_lines:
        return redact(text)
    return json.dumps({"time": _iso(dt.datetime.now(dt.timezone.utc).timestamp()),
                       "level": "CRITICAL", "logger": "uncaught", "message": redact(message),
                       "process": os.getpid(), "exc_info": redact(text)}) + "\n"


# -- JSON lines -----------------------------------------------------------------------------
@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` (``run_id``, ``function_id``, ``step_key``) to every JSON line logged
    by this thread or task inside the block (``None`` values are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _iso(created: float) -> str:
    return (dt.datetime.fromtimestamp(created, dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``process``, ``thread``, the run fields (:data:`CONTEXT_FIELDS`) where there
    are any, and ``exc_info``/``stack_info`` text; every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": _iso(record.created), "level": record.levelname, "logger": record.name,
                "message": redact(record.getMessage()), "process": record.process,
                "thread": record.threadName}
        context = _context.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value is not None:
                line[name] = redact(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = redact(record.exc_text)
        if record.stack_info:
            line["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, default=str)


# the root logger, and the loggers with handlers of their own that tengo_jobs' processes
# carry (gunicorn's worker, once the app is loaded)
_FORMATTED_LOGGERS = ("", "gunicorn.error", "gunicorn.access")


def apply_format(fmt: str = "text") -> None:
    """Make the root logger's handlers (and gunicorn's) write ``fmt`` (``json``:
    :class:`JsonFormatter`; ``text`` leaves them as they are). The Dramatiq worker process
    calls it at boot, on the handler Dramatiq configured."""
    global _json_lines
    if fmt != "json":
        return
    _json_lines = True
    for name in _FORMATTED_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Process logging for the processes that configure their own (scheduler, dev, web):
    one stderr handler on the root logger, unless there is one already (pytest's, a
    user's); APScheduler's chatter only as warnings. ``fmt`` is ``TENGO_LOG_FORMAT``:
    ``json`` writes one JSON object per line (:func:`apply_format`)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
        logging.getLogger(name).setLevel(logging.WARNING)
    apply_format(fmt)


__all__ = ["install", "redact", "configure_logging", "apply_format", "log_context",
           "JsonFormatter", "CONTEXT_FIELDS", "RedactingFilter", "REDACTED",
           "SUBSTRING_MIN_LENGTH"]
