"""Configuration, read from the environment in this one place.

Nothing here runs at import time: :meth:`Settings.from_env` is called when a
process builds its runtime. Constructor arguments (``Settings(...)``) win over
the environment, which wins over the defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Mapping

from .durations import to_ms
from .errors import ConfigurationError


class Env(str, enum.Enum):
    """Every environment variable the engine reads (applications read their own)."""

    DATABASE_URL = "DATABASE_URL"
    REDIS_URL = "REDIS_URL"
    TENGO_ENV = "TENGO_ENV"
    TENGO_EVENT_KEYS = "TENGO_EVENT_KEYS"
    TENGO_SIGNING_KEY = "TENGO_SIGNING_KEY"
    TENGO_DASHBOARD_PASSWORD = "TENGO_DASHBOARD_PASSWORD"
    TENGO_FUNCTIONS = "TENGO_FUNCTIONS"
    TENGO_ALLOW_UNSAFE = "TENGO_ALLOW_UNSAFE"
    TENGO_LEASE_TTL = "TENGO_LEASE_TTL"
    TENGO_RETRY_BASE = "TENGO_RETRY_BASE"
    TENGO_RETRY_MAX = "TENGO_RETRY_MAX"
    TENGO_REDELIVER_AFTER = "TENGO_REDELIVER_AFTER"
    TENGO_POLL_INTERVAL = "TENGO_POLL_INTERVAL"
    TENGO_SWEEP_INTERVAL = "TENGO_SWEEP_INTERVAL"
    TENGO_QUEUE = "TENGO_QUEUE"
    TENGO_MAX_OUTPUT_BYTES = "TENGO_MAX_OUTPUT_BYTES"
    TENGO_DB_RECONNECT_WINDOW = "TENGO_DB_RECONNECT_WINDOW"
    TENGO_GROUP_COMMIT = "TENGO_GROUP_COMMIT"
    TENGO_GROUP_COMMIT_WINDOW = "TENGO_GROUP_COMMIT_WINDOW"
    PORT = "PORT"


DEFAULT_DATABASE_URL = "sqlite:///tengo_jobs.db"


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _duration_ms(environ: Mapping[str, str], name: Env, default: str) -> int:
    raw = environ.get(name.value, default)
    try:
        return to_ms(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name.value}={raw!r} is not a duration ({exc})") from None


def _flag(environ: Mapping[str, str], name: Env) -> bool:
    raw = (environ.get(name.value) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name.value}={raw!r} is not one of on, off (1, 0, true, false)")


def _positive_int(environ: Mapping[str, str], name: Env, default: int) -> int:
    raw = environ.get(name.value)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigurationError(f"{name.value}={raw!r} is not a positive integer")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Process settings. Durations are milliseconds."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    env: str = "development"
    event_keys: tuple[str, ...] = ()
    signing_key: str | None = dataclasses.field(default=None, repr=False)
    dashboard_password: str | None = dataclasses.field(default=None, repr=False)
    functions: tuple[str, ...] = ("actors",)
    allow_unsafe: bool = False
    lease_ttl_ms: int = 30_000
    retry_base_ms: int = 1_000
    retry_max_ms: int = 3_600_000
    redeliver_after_ms: int = 60_000
    poll_interval_ms: int = 250
    sweep_interval_ms: int = 5_000
    reconnect_window_ms: int = 10_000  # how long a run waits out a lost database
    group_commit: bool = False  # concurrent sends share statements (threaded web servers)
    group_commit_window_ms: int = 0  # how long a group waits for more (0: only what is queued)
    queue_name: str = "tengo_jobs"
    output_limit: int = 4 * 1024 * 1024  # bytes of JSON per step or run output
    port: int = 8288

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """Build settings from ``environ`` (default ``os.environ``); ``overrides`` win."""
        e = os.environ if environ is None else environ
        env = e.get(Env.TENGO_ENV.value, "development").strip().lower() or "development"
        if env not in ("development", "production", "test"):
            raise ConfigurationError(
                f"TENGO_ENV={env!r} is not one of development, production, test")
        port_raw = e.get(Env.PORT.value, "8288")
        try:
            port = int(port_raw)
        except ValueError:
            raise ConfigurationError(f"PORT={port_raw!r} is not an integer") from None
        values = dict(
            database_url=e.get(Env.DATABASE_URL.value) or DEFAULT_DATABASE_URL,
            redis_url=e.get(Env.REDIS_URL.value) or None,
            env=env,
            event_keys=_split(e.get(Env.TENGO_EVENT_KEYS.value)),
            signing_key=e.get(Env.TENGO_SIGNING_KEY.value) or None,
            dashboard_password=e.get(Env.TENGO_DASHBOARD_PASSWORD.value) or None,
            functions=_split(e.get(Env.TENGO_FUNCTIONS.value, "actors")),
            allow_unsafe=e.get(Env.TENGO_ALLOW_UNSAFE.value, "").lower() in ("1", "true", "yes"),
            lease_ttl_ms=_duration_ms(e, Env.TENGO_LEASE_TTL, "30s"),
            retry_base_ms=_duration_ms(e, Env.TENGO_RETRY_BASE, "1s"),
            retry_max_ms=_duration_ms(e, Env.TENGO_RETRY_MAX, "1h"),
            redeliver_after_ms=_duration_ms(e, Env.TENGO_REDELIVER_AFTER, "60s"),
            poll_interval_ms=_duration_ms(e, Env.TENGO_POLL_INTERVAL, "250ms"),
            sweep_interval_ms=_duration_ms(e, Env.TENGO_SWEEP_INTERVAL, "5s"),
            reconnect_window_ms=_duration_ms(e, Env.TENGO_DB_RECONNECT_WINDOW, "10s"),
            group_commit=_flag(e, Env.TENGO_GROUP_COMMIT),
            group_commit_window_ms=_duration_ms(e, Env.TENGO_GROUP_COMMIT_WINDOW, "0ms"),
            queue_name=e.get(Env.TENGO_QUEUE.value) or "tengo_jobs",
            output_limit=_positive_int(e, Env.TENGO_MAX_OUTPUT_BYTES, 4 * 1024 * 1024),
            port=port,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so log filters can redact them."""
        values = [*self.event_keys, self.signing_key, self.dashboard_password]
        return tuple(v for v in values if v)

    def check_production(self, *, needs_event_keys: bool = True) -> None:
        """Refuse to start unsafe in production; ``TENGO_ALLOW_UNSAFE=1`` overrides explicitly."""
        if not self.is_production or self.allow_unsafe:
            return
        problems = []
        if needs_event_keys and not self.event_keys:
            problems.append("TENGO_EVENT_KEYS is empty (every event key would be accepted)")
        if not self.dashboard_password:
            problems.append("TENGO_DASHBOARD_PASSWORD is not set (the REST API would be open)")
        if self.is_sqlite:
            problems.append("DATABASE_URL is SQLite (use postgresql://... in production)")
        if problems:
            raise ConfigurationError(
                "refusing to start with TENGO_ENV=production: " + "; ".join(problems)
                + ". Fix these or set TENGO_ALLOW_UNSAFE=1 to start anyway.")
