"""The ``Jobs`` client: declare durable functions and send events."""

from __future__ import annotations

from typing import Any, Callable

from .core.functions import DEFAULT_RETRIES, FunctionDef, build_function
from .core.registry import Registry, registry as default_registry
from .errors import ConfigurationError
from .runtime import get_runtime


class Jobs:
    """An app's client, like ``Inngest(app_id=...)``.

    ``extensions`` are the application's :class:`~tengo_jobs.Extension` objects (its
    tables, web pages and CLI commands), known to every process that loads this client.

    Declaring a client binds the process runtime (database, broker) from the
    environment if none is set yet — as Dramatiq's ``@actor`` binds ``get_broker()`` —
    so ``dramatiq MODULE`` finds the run-executing actor. Pass ``runtime=`` to bind
    another one explicitly.
    """

    def __init__(self, app_id: str, *, extensions=(), runtime=None,
                 registry: Registry | None = None):
        if not isinstance(app_id, str) or not app_id.strip():
            raise ConfigurationError(f"Jobs(app_id=...) must be a non-empty string, got {app_id!r}")
        self.app_id = app_id
        self._runtime = runtime
        self.registry = registry or default_registry
        for extension in extensions:
            self.registry.add_extension(extension)
        self.functions: dict[str, FunctionDef] = {}
        if runtime is None:
            self.runtime  # bind the process runtime now (Dramatiq's CLI needs the actor)

    @property
    def runtime(self):
        if self._runtime is not None:
            return self._runtime
        return get_runtime()

    def function(self, id: str, *, event: str | list[str] | None = None, cron: str | None = None,
                 retries: int = DEFAULT_RETRIES, on_failure: Callable | None = None,
                 misfire: str = "coalesce", name: str | None = None,
                 **options: Any) -> Callable[[Callable], FunctionDef]:
        """Declare a durable function ``handler(ctx, step)`` triggered by ``event`` or ``cron``."""

        def decorate(handler: Callable) -> FunctionDef:
            fn = build_function(self.app_id, id, handler, event=event, cron=cron, retries=retries,
                                on_failure=on_failure, misfire=misfire, name=name, **options)
            self.registry.add(fn)
            if fn.on_failure is not None:
                self.registry.add(fn.on_failure)
            self.functions[fn.id] = fn
            return fn

        return decorate

    def send(self, events, *, now: int | None = None) -> list[str]:
        """Send one event (a dict or ``Event``) or a list; returns one event id per event."""
        return self.runtime.send(events, now=now)
