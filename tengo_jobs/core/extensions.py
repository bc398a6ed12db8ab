"""Extensions: what an application adds to every tengo_jobs process that loads its functions.

An application (Tengo Lugar is one) declares its extension once and hands it to its
client, ``Jobs(app_id=..., extensions=[extension])``. Every process that imports the
function modules (``TENGO_FUNCTIONS``) then knows it, and:

- ``migrate`` (and every process that migrates at boot) creates its ``models``' tables
  beside the system tables;
- the web app registers its ``blueprints`` and shows its ``nav_links`` in the dashboard;
- ``tengo-jobs`` offers its ``commands``;
- log redaction hides the values ``secrets()`` returns, and production refuses to start
  when one of them is a ``.env.example`` placeholder (``change-me``). ``secrets`` returns
  the values, or a mapping of setting name to value so that refusals can name the setting.

The engine never imports an application; the application's client brings its extension
along, so nothing happens as a side effect of importing a module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping


@dataclasses.dataclass(frozen=True, eq=False)
class Extension:
    """The parts an application adds to the engine's processes (see the module docstring)."""

    name: str
    models: tuple[Any, ...] = ()  # Peewee models on tengo_jobs.AppModel
    blueprints: tuple[Any, ...] = ()  # Flask blueprints
    nav_links: tuple[tuple[str, str], ...] = ()  # (label, endpoint) in the dashboard's navigation
    commands: tuple[Any, ...] = ()  # click commands added to `tengo-jobs`
    # values never to be logged (or {setting name: value})
    secrets: Callable[[], Iterable[str] | Mapping[str, str | None]] | None = None

    def named_secrets(self) -> tuple[tuple[str, str], ...]:
        """``(setting name, value)`` of every secret that is set."""
        found = self.secrets() if self.secrets else ()
        pairs = (found.items() if isinstance(found, Mapping)
                 else ((f"a secret of extension {self.name!r}", v) for v in found))
        return tuple((name, value) for name, value in pairs if value)

    def secret_values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.named_secrets())
