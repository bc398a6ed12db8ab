"""The process's function registry: every function of every ``Jobs`` client, by id.

Like Dramatiq's actor registry on a broker, it is filled when user modules are
imported (``@jobs.function``), and read by the executor, the intake (which
functions an event triggers) and the scheduler (cron functions).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import DuplicateFunctionError, UnknownFunctionError

if TYPE_CHECKING:
    from .extensions import Extension
    from .functions import FunctionDef


class Registry:
    def __init__(self) -> None:
        self._functions: dict[str, "FunctionDef[..., Any]"] = {}
        self._extensions: list["Extension"] = []
        self._lock = threading.Lock()

    def add_extension(self, extension: "Extension") -> None:
        """Remember an application's extension (once, however many clients bring it)."""
        with self._lock:
            if extension not in self._extensions:
                self._extensions.append(extension)

    @property
    def extensions(self) -> list["Extension"]:
        return list(self._extensions)

    def extension_models(self) -> list[Any]:
        return [m for ext in self._extensions for m in ext.models]

    def extension_secrets(self) -> tuple[str, ...]:
        return tuple(s for ext in self._extensions for s in ext.secret_values())

    def extension_named_secrets(self) -> tuple[tuple[str, str], ...]:
        return tuple(pair for ext in self._extensions for pair in ext.named_secrets())

    def add(self, fn: "FunctionDef[..., Any]") -> None:
        with self._lock:
            existing = self._functions.get(fn.id)
            if existing is not None and existing.qualname != fn.qualname:
                raise DuplicateFunctionError(
                    f"function id {fn.id!r} is already registered by {existing.qualname}; "
                    f"{fn.qualname} must use another id")
            self._functions[fn.id] = fn

    def remove(self, fn_id: str) -> None:
        with self._lock:
            self._functions.pop(fn_id, None)

    def get(self, fn_id: str) -> "FunctionDef[..., Any]":
        try:
            return self._functions[fn_id]
        except KeyError:
            raise UnknownFunctionError(
                f"no function {fn_id!r} is registered in this process; is its module listed "
                "in TENGO_FUNCTIONS (default 'actors')?") from None

    def find(self, fn_id: str) -> "FunctionDef[..., Any] | None":
        return self._functions.get(fn_id)

    def all(self) -> list["FunctionDef[..., Any]"]:
        return list(self._functions.values())

    def triggered_by(self, event_name: str) -> list["FunctionDef[..., Any]"]:
        return [fn for fn in self._functions.values() if event_name in fn.events]

    def cron_functions(self) -> list["FunctionDef[..., Any]"]:
        return [fn for fn in self._functions.values() if fn.cron]


registry = Registry()


def load_modules(modules: Iterable[str]) -> list[str]:
    """Import the modules that define functions (``TENGO_FUNCTIONS``); returns their names."""
    if os.getcwd() not in sys.path:  # like `dramatiq MODULE`: the user's modules live here
        sys.path.insert(0, os.getcwd())
    loaded = []
    for name in modules:
        importlib.import_module(name)
        loaded.append(name)
    return loaded
