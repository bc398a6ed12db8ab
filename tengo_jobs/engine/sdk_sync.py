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

import json
import logging
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, Iterable, NoReturn, cast

from ..core.events import FUNCTION_FAILED_EVENT
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
# How the SDKs register ``onFailure``: a second function ``<fn id>-failure`` triggered by
# ``inngest/function.failed`` with this expression on the failed function's id.
_FAILURE_EXPRESSION = re.compile(r"^\s*event\.data\.function_id\s*==\s*(['\"])(?P<id>[^'\"]+)\1\s*$")


class SdkEndpoint:
    """The handler of a function served by an Inngest SDK app: where its runs are driven
    (the step URL the SDK registered). Calling it directly is refused: such a function runs
    only through the HTTP driver."""

    def __init__(self, app_id: str, url: str):
        self.app_id = app_id
        self.url = url
        self.__module__ = "tengo_jobs.sdk"
        self.__qualname__ = f"app:{app_id}"

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
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


def function_from_config(app_id: str, config: dict[str, Any]) -> FunctionDef[..., Any]:
    """One SDK function configuration as our definition; :class:`ConfigurationError`
    naming the function and what we cannot honour."""
    if not isinstance(config, dict):
        raise ConfigurationError(f"a function configuration must be an object, got {config!r}")
    fn_id: Any = config.get("id")  # checked by build_function
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
    failure_of = _failure_target(config)
    if failure_of is not None:
        return _failure_handler(app_id, fn_id, config, url, retries, failure_of)
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
        if trigger.get("event") == FUNCTION_FAILED_EVENT:
            raise ConfigurationError(
                f"{where}: a trigger on {FUNCTION_FAILED_EVENT!r} is supported only as an "
                "onFailure handler (the SDK's '<fn id>-failure' function)")
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


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def _failure_target(config: dict[str, Any]) -> str | None:
    """The id of the function whose ``onFailure`` handler ``config`` is (the SDK registers
    it as ``<fn id>-failure``, triggered by ``inngest/function.failed`` if
    ``event.data.function_id == '<fn id>'``), else ``None``."""
    triggers = config.get("triggers") or []
    if len(triggers) != 1 or not isinstance(triggers[0], dict):
        return None
    trigger = triggers[0]
    if trigger.get("event") != FUNCTION_FAILED_EVENT:
        return None
    match = _FAILURE_EXPRESSION.match(str(trigger.get("expression") or ""))
    if match is None or config.get("id") != f"{match.group('id')}-failure":
        return None
    return match.group("id")


def _failure_handler(app_id: str, fn_id: str, config: dict[str, Any], url: str, retries: int,
                     failure_of: str) -> FunctionDef[..., Any]:
    """The SDK's ``onFailure`` function as our failure handler: started by the engine (in
    the transaction that fails the run, linked to it) with the ``inngest/function.failed``
    event, exactly as a Python function's ``on_failure`` — never by an event trigger."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"function {fn_id!r}: retries must be a non-negative integer")
    fn: FunctionDef[..., Any] = FunctionDef(id=fn_id, app_id=app_id, handler=SdkEndpoint(app_id, url),
                                  retries=retries, is_failure_handler=True, failure_of=failure_of,
                                  name=config.get("name") or fn_id)
    fn.runtime = HTTP_RUNTIME
    return fn


def link_failure_handlers(functions: list[FunctionDef[..., Any]]) -> list[str]:
    """Attach each SDK failure handler to its function (``on_failure``) and drop the
    handlers whose function is not among ``functions``; returns why each was dropped."""
    by_id = {fn.id: fn for fn in functions if not fn.is_failure_handler}
    refused = []
    for fn in list(functions):
        if not fn.is_failure_handler:
            continue
        target = by_id.get(fn.failure_of or "")
        if target is None:
            functions.remove(fn)
            refused.append(f"function {fn.id!r}: the onFailure handler of {fn.failure_of!r}, "
                           "which is not registered")
        else:
            target.on_failure = fn
    return refused


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

    def sync(self, body: Any) -> dict[str, Any]:
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
        built, refused = self._build(app_id, configs, url)
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

    def _build(self, app_id: str, configs: list[Any], app_url: str
               ) -> tuple[list[FunctionDef[..., Any]], list[str]]:
        built, refused = [], []
        for config in configs:
            try:
                fn = function_from_config(app_id, config)
                step_url = cast(SdkEndpoint, fn.handler).url
                if _host(step_url) != _host(app_url):
                    # the worker calls only the app that synced (its serve URL's host)
                    raise ConfigurationError(f"function {fn.id!r}: its step URL is on "
                                             f"{_host(step_url)}, not on the app's "
                                             f"host {_host(app_url)}")
                existing = self.registry.find(fn.id)
                if existing is not None and existing.runtime != HTTP_RUNTIME:
                    raise ConfigurationError(f"function {fn.id!r} is already a Python function "
                                             "of this engine")
                built.append(fn)
            except (ConfigurationError, ValidationError) as exc:
                refused.append(str(exc))
        refused += link_failure_handlers(built)
        return built, refused

    def _install(self, app_id: str, functions: list[FunctionDef[..., Any]]) -> None:
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
            built, _ = self._build(app.app_id, app.functions, app.url)
            self._install(app.app_id, built)
            count += len(built)
        self._refreshed_at = self.clock.now()
        return count

    def refresh(self, function_id: str) -> FunctionDef[..., Any] | None:
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

    def list(self) -> list[dict[str, Any]]:
        return [app.describe() for app in self.store.apps.all()]


# Syncing apps at start-up (``tengo-jobs dev --sdk-url``, ``TENGO_SDK_URLS``): the backoff
# between attempts while an app is not up yet, and when to give up on it.
SYNC_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
SYNC_GIVE_UP_S = 600.0
SYNC_REQUEST_TIMEOUT_S = 30.0


def public_url(url: str) -> str:
    """``url`` as it may be logged: no user or password, no query (a key could be there)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def request_sync(url: str, *, timeout_s: float = SYNC_REQUEST_TIMEOUT_S) -> tuple[bool, str]:
    """Ask the Inngest app served at ``url`` to sync, as ``inngest dev -u`` does: a ``PUT``
    to its serve endpoint, which makes its SDK post its functions to our ``/fn/register``.
    Returns ``(synced, what the app answered)``."""
    request = urllib.request.Request(url, data=b"", method="PUT",
                                     headers={"User-Agent": "tengo-jobs",
                                              "X-Inngest-Server-Kind": "dev"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(64 * 1024)
    except (urllib.error.URLError, OSError) as exc:
        return False, f"not reachable ({getattr(exc, 'reason', exc)})"
    try:
        message = str(json.loads(raw).get("message") or "")
    except (ValueError, AttributeError):
        message = raw.decode(errors="replace")[:300]
    return 200 <= status < 300, f"HTTP {status}: {message}" if message else f"HTTP {status}"


class SyncOnStart:
    """Syncs each app of ``urls`` in a background thread, retrying with backoff
    (:data:`SYNC_BACKOFF_S`) while it is not up (or our own server is not listening
    yet), for at most :data:`SYNC_GIVE_UP_S`; logs each app's outcome (URLs without
    credentials or query)."""

    def __init__(self, urls: Iterable[str], *, give_up_s: float = SYNC_GIVE_UP_S,
                 sync: Callable[[str], tuple[bool, str]] = request_sync):
        self.urls = list(dict.fromkeys(urls))
        self.give_up_s = give_up_s
        self._sync = sync
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.results: dict[str, tuple[bool, str]] = {}

    def start(self) -> "SyncOnStart":
        if self.urls:
            self._thread = threading.Thread(target=self._run, name="tengo-sdk-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        pending = list(self.urls)
        waited = 0.0
        attempt = 0
        while pending and not self._stop.is_set():
            for url in list(pending):
                synced, message = self._sync(url)
                self.results[url] = (synced, message)
                if synced:
                    pending.remove(url)
                    log.info("SDK app at %s synced: %s", public_url(url), message)
                elif attempt == 0:
                    log.info("SDK app at %s not synced yet (%s); retrying with backoff",
                             public_url(url), message)
            if not pending:
                return
            delay = SYNC_BACKOFF_S[min(attempt, len(SYNC_BACKOFF_S) - 1)]
            attempt += 1
            if waited + delay > self.give_up_s:
                break
            waited += delay
            self._stop.wait(delay)
        for url in pending:
            if not self._stop.is_set():
                log.error("SDK app at %s could not be synced after %g s: %s", public_url(url),
                          waited, self.results.get(url, (False, "not tried"))[1])


__all__ = ["SdkApps", "SdkEndpoint", "SyncOnStart", "function_from_config", "public_url",
           "request_sync", "HTTP_RUNTIME"]
