"""Inngest SDK sync: an app's ``serve()`` endpoint registers its functions here.

What ``POST /fn/register`` receives (what inngest's SDKs send to a dev server when their
serve endpoint gets a ``PUT``): the app's id (``appName``), its serve ``url``, ``sdk``,
``framework`` and ``functions`` — each with its id (``<app id>-<fn id>``), name, triggers
(events with an optional ``expression``, cron), its step's HTTP URL and retries, and its
options. Each function becomes a :class:`~tengo_jobs.core.functions.FunctionDef` with
``runtime="http"`` (driven by :class:`~.drivers.http.HttpDriver`), built by the same
:func:`~tengo_jobs.core.functions.build_function` as a Python function, so its options are
validated and enforced the same way. What we cannot honour is refused per function and
reported in the answer, never silently ignored.

The app's row (``tj_apps``) is the source of truth: every process rebuilds the functions
from it at boot (:meth:`SdkApps.load`) and when a run names a function it does not know
(:meth:`SdkApps.refresh`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..core.functions import FunctionDef, build_function
from ..core.registry import Registry
from ..errors import ConfigurationError, ValidationError
from ..store.apps import SdkApp

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store

log = logging.getLogger(__name__)

HTTP_RUNTIME = "http"
# Inngest's default: 3 retries (4 attempts) when a function does not say.
INNGEST_DEFAULT_RETRIES = 3
MIN_REFRESH_INTERVAL_MS = 1_000
# How often a process checks whether another process synced an app (one cheap query).
RELOAD_CHECK_INTERVAL_MS = 5_000

# Inngest's option name → ours, and how its fields are renamed.
_RENAMED = {"rateLimit": "rate_limit", "batchEvents": "batch_events", "cancel": "cancel_on"}
_FIELD_RENAMES = {"batch_events": {"maxSize": "max_size", "if": "if_exp"},
                  "cancel_on": {"if": "if_exp"}}
_OPTIONS = ("concurrency", "throttle", "rateLimit", "debounce", "priority", "batchEvents",
            "idempotency", "cancel", "timeouts", "singleton")
_KNOWN = {"id", "name", "triggers", "steps"} | set(_OPTIONS)


class SdkEndpoint:
    """The handler of a function served by an Inngest SDK app: where its runs are driven
    (the step URL the SDK registered). Calling it directly is refused: such a function runs
    only through the HTTP driver."""

    def __init__(self, app_id: str, url: str):
        self.app_id = app_id
        self.url = url
        self.__module__ = "tengo_jobs.sdk"
        self.__qualname__ = f"app:{app_id}"

    def __call__(self, *args, **kwargs):
        raise ConfigurationError(f"this function is served by the Inngest SDK app "
                                 f"{self.app_id!r} at {self.url}; it runs only through the "
                                 "HTTP driver (send its event)")


def _renamed(option: str, value: Any) -> Any:
    fields = _FIELD_RENAMES.get(option)
    if not fields:
        return value
    if isinstance(value, list):
        return [{fields.get(k, k): v for k, v in item.items()} if isinstance(item, dict) else item
                for item in value]
    if isinstance(value, dict):
        return {fields.get(k, k): v for k, v in value.items()}
    return value


def function_from_config(app_id: str, config: dict) -> FunctionDef:
    """One SDK function configuration as our definition; :class:`ConfigurationError`
    naming the function and what we cannot honour."""
    if not isinstance(config, dict):
        raise ConfigurationError(f"a function configuration must be an object, got {config!r}")
    fn_id = config.get("id")
    where = f"function {fn_id!r}"
    unknown = sorted(set(k for k, v in config.items() if v is not None) - _KNOWN)
    if unknown:
        raise ConfigurationError(f"{where}: option {unknown[0]!r} is not supported by "
                                 "tengo_jobs (refused rather than ignored)")
    steps = config.get("steps") or {}
    step = steps.get("step") if isinstance(steps, dict) else None
    if not isinstance(step, dict) or len(steps) != 1:
        raise ConfigurationError(f"{where}: expected one step named 'step', got {sorted(steps)!r}")
    runtime = step.get("runtime") or {}
    if runtime.get("type") != "http" or not isinstance(runtime.get("url"), str):
        raise ConfigurationError(f"{where}: only the 'http' step runtime is supported, got "
                                 f"{runtime.get('type')!r}")
    url = runtime["url"]
    retries = (step.get("retries") or {}).get("attempts", INNGEST_DEFAULT_RETRIES)
    events: list[str] = []
    crons: list[str] = []
    for trigger in config.get("triggers") or []:
        if not isinstance(trigger, dict):
            raise ConfigurationError(f"{where}: a trigger must be an object, got {trigger!r}")
        if trigger.get("expression"):
            raise ConfigurationError(
                f"{where}: trigger {trigger.get('event')!r} has an 'if' expression "
                f"({trigger['expression']!r}); trigger conditions are not supported yet "
                "(an onFailure handler is one)")
        if trigger.get("event"):
            events.append(trigger["event"])
        elif trigger.get("cron"):
            crons.append(trigger["cron"])
        else:
            raise ConfigurationError(f"{where}: a trigger needs 'event' or 'cron', got {trigger!r}")
    if len(crons) > 1:
        raise ConfigurationError(f"{where}: at most one cron trigger is supported, got {crons!r}")
    if crons and events:
        raise ConfigurationError(f"{where}: an event trigger and a cron trigger together are "
                                 "not supported")
    options = {_RENAMED.get(k, k): _renamed(_RENAMED.get(k, k), config[k])
               for k in _OPTIONS if config.get(k) is not None}
    fn = build_function(app_id, fn_id, SdkEndpoint(app_id, url), event=events or None,
                        cron=crons[0] if crons else None, retries=retries,
                        name=config.get("name") or fn_id, **options)
    fn.runtime = HTTP_RUNTIME
    return fn


class SdkApps:
    """Syncs SDK apps into the store and this process's registry."""

    def __init__(self, *, store: "Store", registry: Registry, clock: "Clock"):
        self.store = store
        self.registry = registry
        self.clock = clock
        self._lock = threading.Lock()
        self._refreshed_at = 0
        self._checked_at = 0
        self._version: tuple[int, int] | None = None

    def sync(self, body: Any) -> dict:
        """Register the app ``body`` describes; returns the answer (what was registered and
        what was refused, per function). :class:`ValidationError` for a body that is not a
        sync at all."""
        if not isinstance(body, dict):
            raise ValidationError("the sync body must be a JSON object", field="body")
        # inngest-py sends "appname" (Inngest's Go server matches JSON fields case-insensitively)
        app_id, url = body.get("appName", body.get("appname")), body.get("url")
        if not isinstance(app_id, str) or not app_id.strip() or len(app_id) > 128:
            raise ValidationError("'appName' must be a non-empty string of at most 128 "
                                  "characters", field="appName")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValidationError("'url' must be the app's http(s) serve URL", field="url")
        configs = body.get("functions")
        if not isinstance(configs, list):
            raise ValidationError("'functions' must be a list", field="functions")
        built, refused = self._build(app_id, configs)
        app = SdkApp(app_id=app_id, url=url, sdk=str(body.get("sdk") or "unknown")[:64],
                     framework=str(body.get("framework") or "unknown")[:64],
                     functions=configs, unsupported=refused, synced_at=self.clock.now())
        self.store.apps.save(app)
        self._install(app_id, built)
        registered = [fn.id for fn in built]
        message = (f"registered {len(registered)} function(s) of app {app_id!r}"
                   + (f"; refused: {'; '.join(refused)}" if refused else ""))
        log.info("SDK sync: %s", message)
        return {"ok": True, "status": 200, "modified": True, "error": message,
                "app_id": app_id, "functions": registered, "unsupported": refused}

    def _build(self, app_id: str, configs: list) -> tuple[list[FunctionDef], list[str]]:
        built, refused = [], []
        for config in configs:
            try:
                fn = function_from_config(app_id, config)
                existing = self.registry.find(fn.id)
                if existing is not None and existing.runtime != HTTP_RUNTIME:
                    raise ConfigurationError(f"function {fn.id!r} is already a Python function "
                                             "of this engine")
                built.append(fn)
            except (ConfigurationError, ValidationError) as exc:
                refused.append(str(exc))
        return built, refused

    def _install(self, app_id: str, functions: list[FunctionDef]) -> None:
        with self._lock:
            keep = {fn.id for fn in functions}
            for fn in self.registry.all():
                if (fn.runtime == HTTP_RUNTIME and getattr(fn.handler, "app_id", None) == app_id
                        and fn.id not in keep):
                    self.registry.remove(fn.id)
            for fn in functions:
                self.registry.remove(fn.id)  # a re-sync replaces the definition
                self.registry.add(fn)

    def load(self) -> int:
        """Register the functions of every synced app (at boot); returns how many."""
        count = 0
        self._version = self.store.apps.version()
        for app in self.store.apps.all():
            built, _ = self._build(app.app_id, app.functions)
            self._install(app.app_id, built)
            count += len(built)
        self._refreshed_at = self.clock.now()
        return count

    def refresh(self, function_id: str) -> FunctionDef | None:
        """``function_id`` after reloading the synced apps (a run names a function this
        process does not know: an app synced through another process). At most once a
        second, so a run of a function that is truly gone costs no query storm."""
        if self.clock.now() - self._refreshed_at >= MIN_REFRESH_INTERVAL_MS:
            self.load()
        return self.registry.find(function_id)

    def reload_if_changed(self) -> None:
        """Reload the synced apps when one was synced through another process since the
        last look (checked at most every :data:`RELOAD_CHECK_INTERVAL_MS`): an event for a
        function synced elsewhere then starts its run here too."""
        now = self.clock.now()
        if self._version is None or now - self._checked_at < RELOAD_CHECK_INTERVAL_MS:
            return
        self._checked_at = now
        if self.store.apps.version() != self._version:
            self.load()

    def list(self) -> list[dict]:
        return [app.describe() for app in self.store.apps.all()]


__all__ = ["SdkApps", "SdkEndpoint", "function_from_config", "HTTP_RUNTIME"]
