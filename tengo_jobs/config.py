"""Configuration, read from the environment in this one place.

Nothing here runs at import time: :meth:`Settings.from_env` is called when a
process builds its runtime. Constructor arguments (``Settings(...)``) win over
the environment, which wins over the defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import re
import urllib.parse
from typing import Any, Iterable, Mapping

from .durations import to_ms
from .errors import ConfigurationError, UnsafeProductionError


class Env(str, enum.Enum):
    """Every environment variable the engine reads (applications read their own)."""

    DATABASE_URL = "DATABASE_URL"
    REDIS_URL = "REDIS_URL"
    TENGO_BROKER_URL = "TENGO_BROKER_URL"
    TENGO_LOG_FORMAT = "TENGO_LOG_FORMAT"
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
    TENGO_MAX_RUN_STATE_BYTES = "TENGO_MAX_RUN_STATE_BYTES"
    TENGO_PARALLEL_MAX = "TENGO_PARALLEL_MAX"
    TENGO_DB_RECONNECT_WINDOW = "TENGO_DB_RECONNECT_WINDOW"
    TENGO_GROUP_COMMIT = "TENGO_GROUP_COMMIT"
    TENGO_GROUP_COMMIT_WINDOW = "TENGO_GROUP_COMMIT_WINDOW"
    TENGO_RETENTION = "TENGO_RETENTION"
    TENGO_PRUNE_INTERVAL = "TENGO_PRUNE_INTERVAL"
    TENGO_HEARTBEAT_INTERVAL = "TENGO_HEARTBEAT_INTERVAL"
    TENGO_SESSION_LIFETIME = "TENGO_SESSION_LIFETIME"
    TENGO_SDK_URLS = "TENGO_SDK_URLS"
    PORT = "PORT"


def environ_from_config(config: Mapping[str, object]) -> dict[str, str]:
    """The engine's settings an application's config gives (a Flask ``app.config``), as
    environment text: every :class:`Env` name it holds (``PORT`` aside: the application
    serves itself). A list is joined with commas, a boolean is ``true``/``false``."""
    environ = {}
    for name in Env:
        if name is Env.PORT or name.value not in config or config[name.value] is None:
            continue
        value = config[name.value]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, frozenset)):
            text = ",".join(str(part) for part in value)
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            raise ConfigurationError(f"app.config[{name.value!r}] must be text, a number, a "
                                     f"boolean or a list, got {type(value).__name__}")
        environ[name.value] = text
    return environ


DEFAULT_DATABASE_URL = "sqlite:///tengo_jobs.db"
LOG_FORMATS = ("text", "json")

# Production minimums (TENGO_ENV=production): an event or signing key shorter than this,
# or a dashboard password shorter than that, can be guessed; `.env.example`'s
# placeholders contain PLACEHOLDER (any value containing it is refused).
MIN_KEY_LENGTH = 16
MIN_PASSWORD_LENGTH = 12
PLACEHOLDER = re.compile(r"change[-_]?me", re.IGNORECASE)
# What each process kind needs in production, beyond a PostgreSQL database and safe values.
_NEEDS_EVENT_KEYS = frozenset({"web"})  # the kinds that accept events over HTTP (dev: refused)
_NEEDS_BROKER = frozenset({"web", "worker", "scheduler"})  # separate processes share a broker
_SIGNING_KEY_PREFIX = re.compile(r"^signkey-\w+-")


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _duration_ms(environ: Mapping[str, str], name: Env, default: str) -> int:
    raw = environ.get(name.value, default)
    try:
        return to_ms(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name.value}={raw!r} is not a duration ({exc})") from None


def _positive_duration_ms(environ: Mapping[str, str], name: Env, default: str) -> int:
    value = _duration_ms(environ, name, default)
    if value <= 0:
        raise ConfigurationError(f"{name.value} must be a positive duration (e.g. '5s')")
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def env_flag(environ: Mapping[str, str], name: Env | str, default: bool = False) -> bool:
    """The boolean setting ``name``: 1/true/yes/on or 0/false/no/off/empty (any case,
    spaces around ignored); unset is ``default``. Every boolean setting is read by this,
    an application's too, so ``on`` means the same everywhere."""
    key = name.value if isinstance(name, Env) else name
    raw = environ.get(key)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"{key}={raw[:40]!r} is not a boolean: use 1, true, yes or on to turn it on, "
        "0, false, no, off or empty to turn it off")


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
    """Process settings. Durations are milliseconds.

    ``broker_url`` is the broker (``TENGO_BROKER_URL``: ``redis://…``, ``amqp://…``);
    unset, it is ``redis_url`` (``REDIS_URL``, the older name, still accepted); neither
    set, the in-process broker."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    broker_url: str | None = None
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
    run_state_limit: int = 32 * 1024 * 1024  # bytes of JSON of all a run's step outputs
    parallel_max: int = 32  # threads one step.parallel call runs its branches on
    port: int = 8288
    retention_ms: int = 30 * 86_400_000  # finished runs older than this are pruned; 0: never
    prune_interval_ms: int = 300_000  # how often the scheduler prunes
    heartbeat_interval_ms: int = 5_000  # how often workers and schedulers say they are alive
    session_lifetime_ms: int = 12 * 3_600_000  # how long a dashboard login lasts
    log_format: str = "text"  # "json": one JSON object per line (tengo_jobs.logsafe)
    # Inngest SDK apps' serve URLs asked to sync at start-up (``TENGO_SDK_URLS``).
    sdk_urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.broker_url is None and self.redis_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        for url in self.sdk_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigurationError(f"TENGO_SDK_URLS: {url.split('?')[0][:100]!r} is not "
                                         "an http(s) URL (an Inngest app's serve endpoint)")
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"TENGO_LOG_FORMAT={self.log_format!r} is not one of "
                                     f"{', '.join(LOG_FORMATS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
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
        values: dict[str, Any] = dict(
            database_url=e.get(Env.DATABASE_URL.value) or DEFAULT_DATABASE_URL,
            redis_url=e.get(Env.REDIS_URL.value) or None,
            broker_url=e.get(Env.TENGO_BROKER_URL.value) or None,
            env=env,
            event_keys=_split(e.get(Env.TENGO_EVENT_KEYS.value)),
            signing_key=e.get(Env.TENGO_SIGNING_KEY.value) or None,
            dashboard_password=e.get(Env.TENGO_DASHBOARD_PASSWORD.value) or None,
            functions=_split(e.get(Env.TENGO_FUNCTIONS.value, "actors")),
            allow_unsafe=env_flag(e, Env.TENGO_ALLOW_UNSAFE),
            lease_ttl_ms=_duration_ms(e, Env.TENGO_LEASE_TTL, "30s"),
            retry_base_ms=_duration_ms(e, Env.TENGO_RETRY_BASE, "1s"),
            retry_max_ms=_duration_ms(e, Env.TENGO_RETRY_MAX, "1h"),
            redeliver_after_ms=_duration_ms(e, Env.TENGO_REDELIVER_AFTER, "60s"),
            poll_interval_ms=_duration_ms(e, Env.TENGO_POLL_INTERVAL, "250ms"),
            sweep_interval_ms=_duration_ms(e, Env.TENGO_SWEEP_INTERVAL, "5s"),
            reconnect_window_ms=_duration_ms(e, Env.TENGO_DB_RECONNECT_WINDOW, "10s"),
            group_commit=env_flag(e, Env.TENGO_GROUP_COMMIT),
            group_commit_window_ms=_duration_ms(e, Env.TENGO_GROUP_COMMIT_WINDOW, "0ms"),
            queue_name=e.get(Env.TENGO_QUEUE.value) or "tengo_jobs",
            output_limit=_positive_int(e, Env.TENGO_MAX_OUTPUT_BYTES, 4 * 1024 * 1024),
            run_state_limit=_positive_int(e, Env.TENGO_MAX_RUN_STATE_BYTES, 32 * 1024 * 1024),
            parallel_max=_positive_int(e, Env.TENGO_PARALLEL_MAX, 32),
            port=port,
            retention_ms=_duration_ms(e, Env.TENGO_RETENTION, "30d"),
            prune_interval_ms=_positive_duration_ms(e, Env.TENGO_PRUNE_INTERVAL, "5m"),
            heartbeat_interval_ms=_positive_duration_ms(e, Env.TENGO_HEARTBEAT_INTERVAL, "5s"),
            session_lifetime_ms=_positive_duration_ms(e, Env.TENGO_SESSION_LIFETIME, "12h"),
            log_format=(e.get(Env.TENGO_LOG_FORMAT.value) or "text").strip().lower(),
            sdk_urls=_split(e.get(Env.TENGO_SDK_URLS.value)),
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
        """Every secret value, in every form it may be logged in, so logs can redact them:
        the event keys (and their SHA-256, Inngest's hashed form), the signing key (with and
        without its ``signkey-<env>-`` prefix, and hashed as Inngest's SDKs send it), the
        dashboard password, and the passwords in ``DATABASE_URL``, ``TENGO_BROKER_URL`` and
        ``REDIS_URL``."""
        values: list[str] = []
        for key in self.event_keys:
            values += [key, hashlib.sha256(key.encode()).hexdigest()]
        if self.signing_key:
            values += _signing_key_forms(self.signing_key)
        if self.dashboard_password:
            values.append(self.dashboard_password)
        for url in (self.database_url, self.broker_url, self.redis_url):
            values += url_password_forms(url)
        return tuple(dict.fromkeys(v for v in values if v))

    def production_problems(self, kind: str = "web", *,
                            extension_secrets: Iterable[tuple[str, str]] = ()) -> list[str]:
        """Everything unsafe about these settings for a production process of ``kind``
        (``web``, ``worker``, ``scheduler``, ``dev``, ``cli``): each problem names the
        setting, never its value. ``extension_secrets`` are an application's ``(name,
        value)`` secrets, refused when they are placeholders."""
        if kind == "dev":
            return ["`tengo-jobs dev` is a development server (an in-process broker, and at "
                    "start-up it releases every lease in its database, taking runs from the "
                    "workers of a shared one): run the Procfile's processes in production "
                    "(honcho start), or set TENGO_ENV=development"]
        problems = []
        if self.is_sqlite:
            problems.append("DATABASE_URL is SQLite (use postgresql://... in production)"
                            if self.database_url != DEFAULT_DATABASE_URL else
                            "DATABASE_URL is not set (the default is SQLite; use postgresql://...)")
        if kind in _NEEDS_BROKER and not self.broker_url:
            problems.append(f"TENGO_BROKER_URL (or REDIS_URL) is not set (the {kind} process "
                            "would use an in-process broker that no other process shares)")
        if kind in _NEEDS_EVENT_KEYS and not self.event_keys:
            problems.append("TENGO_EVENT_KEYS is empty (every event key would be accepted)")
        if not self.dashboard_password:
            problems.append("TENGO_DASHBOARD_PASSWORD is not set (the REST API would be open)")
        for i, key in enumerate(self.event_keys, 1):
            name = "TENGO_EVENT_KEYS" + (f" (key {i})" if len(self.event_keys) > 1 else "")
            problems += _weak(name, key, MIN_KEY_LENGTH)
        if self.signing_key:
            problems += _weak("TENGO_SIGNING_KEY", self.signing_key, MIN_KEY_LENGTH)
        elif self.sdk_urls:
            problems.append("TENGO_SIGNING_KEY is not set (TENGO_SDK_URLS names Inngest apps: "
                            "their sync and every call to them are signed in production)")
        if self.dashboard_password:
            problems += _weak("TENGO_DASHBOARD_PASSWORD", self.dashboard_password,
                              MIN_PASSWORD_LENGTH)
        broker_name = ("REDIS_URL" if self.broker_url == self.redis_url
                       else "TENGO_BROKER_URL")
        for name, url in (("DATABASE_URL", self.database_url), (broker_name, self.broker_url)):
            if any(PLACEHOLDER.search(v) for v in url_password_forms(url)):
                problems.append(f"{name}'s password is the .env.example placeholder")
        for name, value in extension_secrets:
            if value and PLACEHOLDER.search(value):
                problems.append(f"{name} is the .env.example placeholder")
        return problems

    def check_production(self, kind: str = "web", *,
                         extension_secrets: Iterable[tuple[str, str]] = ()) -> None:
        """Refuse to start unsafe in production, naming every problem at once
        (:meth:`production_problems`); ``TENGO_ALLOW_UNSAFE=1`` overrides explicitly."""
        if not self.is_production or self.allow_unsafe:
            return
        problems = self.production_problems(kind, extension_secrets=extension_secrets)
        if problems:
            raise UnsafeProductionError(problems)


def _weak(name: str, value: str, minimum: int) -> list[str]:
    if PLACEHOLDER.search(value):
        return [f"{name} is the .env.example placeholder"]
    if len(value) < minimum:
        return [f"{name} is shorter than {minimum} characters"]
    return []


def _signing_key_forms(key: str) -> list[str]:
    """The signing key as configured, without its prefix, and hashed as Inngest's SDKs
    send it (SHA-256 of the hex body, with the prefix kept)."""
    prefix = _SIGNING_KEY_PREFIX.match(key)
    body = key[prefix.end():] if prefix else key
    forms = [key, body]
    try:
        hashed = hashlib.sha256(bytes.fromhex(body)).hexdigest()
    except ValueError:
        return forms
    return forms + [hashed, (prefix.group(0) if prefix else "") + hashed]


def url_password_forms(url: str | None) -> list[str]:
    """The password in a connection URL as written (percent-encoded) and decoded; ``[]``
    when there is none."""
    if not url:
        return []
    try:
        raw = urllib.parse.urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    except ValueError:
        return []
    return [v for v in dict.fromkeys((raw, urllib.parse.unquote(raw))) if v]
