"""Tengo Lugar's settings, read from the environment in this one place, once.

``get_settings()`` reads the environment the first time it is called (never at import)
and keeps the result; ``configure(settings)`` replaces it (tests, one-off scripts).
The engine's own settings (database, broker, keys) are :class:`tengo_jobs.Settings`.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import threading
from typing import Mapping

from tengo_jobs import ConfigurationError


class Env(str, enum.Enum):
    """Every environment variable the Tengo Lugar app reads."""

    RESEND_API_KEY = "RESEND_API_KEY"
    RESEND_API_URL = "RESEND_API_URL"
    EMAIL_FROM = "EMAIL_FROM"
    ADMIN_USER_ID = "ADMIN_USER_ID"
    PAYMENT_GATEWAY = "PAYMENT_GATEWAY"
    PAYMENT_SANDBOX_FAILURE_RATE = "PAYMENT_SANDBOX_FAILURE_RATE"


DEFAULT_EMAIL_FROM = "Tengo Lugar <no-reply@tengolugar.local>"


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """What the Tengo Lugar jobs need: email over Resend, the admin, the payment gateway."""

    resend_api_key: str | None = dataclasses.field(default=None, repr=False)
    resend_api_url: str | None = None  # None: the SDK's default (https://api.resend.com)
    email_from: str = DEFAULT_EMAIL_FROM
    admin_user_id: str | None = None
    payment_gateway: str = "sandbox"
    payment_sandbox_failure_rate: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "AppSettings":
        e = os.environ if environ is None else environ
        rate_raw = e.get(Env.PAYMENT_SANDBOX_FAILURE_RATE.value, "0") or "0"
        try:
            failure_rate = float(rate_raw)
        except ValueError:
            failure_rate = -1.0
        if not 0.0 <= failure_rate <= 1.0:
            raise ConfigurationError(
                f"PAYMENT_SANDBOX_FAILURE_RATE={rate_raw!r} is not a number from 0 to 1")
        values = dict(
            resend_api_key=e.get(Env.RESEND_API_KEY.value) or None,
            resend_api_url=e.get(Env.RESEND_API_URL.value) or None,
            email_from=e.get(Env.EMAIL_FROM.value) or DEFAULT_EMAIL_FROM,
            admin_user_id=e.get(Env.ADMIN_USER_ID.value) or None,
            payment_gateway=(e.get(Env.PAYMENT_GATEWAY.value) or "sandbox").strip().lower(),
            payment_sandbox_failure_rate=failure_rate,
        )
        values.update(overrides)
        return cls(**values)

    def secrets(self) -> dict[str, str]:
        """The values log redaction must hide, by setting name (production refuses a
        ``.env.example`` placeholder among them)."""
        return {name: value for name, value in (("RESEND_API_KEY", self.resend_api_key),)
                if value}


_current: AppSettings | None = None
_lock = threading.Lock()


def get_settings() -> AppSettings:
    """The app's settings, read from the environment on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = AppSettings.from_env()
    return _current


def configure(settings: AppSettings | None) -> AppSettings | None:
    """Replace the app's settings (``None``: read the environment again on next use);
    returns the previous ones."""
    global _current
    with _lock:
        previous, _current = _current, settings
    return previous
