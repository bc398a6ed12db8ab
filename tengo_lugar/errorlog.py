"""``log_error(message, context)``: the team's ``logError({message, context})``.

The document calls it in ``unstable-operation``'s failure handler without showing it.
What it does here: log the message at ERROR (logger ``tengo_lugar.errors``, the context
as JSON) and keep a row in ``tl_error_logs``, so the failure stays readable after the
process's logs are gone. With ``idempotency_key`` a repeated call (a handler re-run after
a crash) records nothing new.
"""

from __future__ import annotations

import json
import logging

from tengo_jobs import get_runtime

from .dbutil import in_transaction
from .models import ErrorLog

log = logging.getLogger("tengo_lugar.errors")


def log_error(message: str, context: dict | None = None, *,
              idempotency_key: str | None = None) -> bool:
    """Log ``message`` with ``context`` and store it; False if ``idempotency_key`` was
    already used (nothing logged or stored again)."""
    runtime = get_runtime()
    text = json.dumps(context, separators=(",", ":"), default=str) if context is not None else None
    with in_transaction(runtime.db):
        if idempotency_key is not None and ErrorLog.select().where(
                ErrorLog.idempotency_key == idempotency_key).exists():
            return False
        ErrorLog.create(message=str(message), context=text, created_at=runtime.now(),
                        idempotency_key=idempotency_key)
    log.error("%s %s", message, text or "")
    return True
