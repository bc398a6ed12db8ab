"""Extensions: what an application adds to every tengo_jobs process that loads its functions.

An application (Tengo Lugar is one) declares its extension once and hands it to its
client, ``Jobs(app_id=..., extensions=[extension])``. Every process that imports the
function modules (``TENGO_FUNCTIONS``) then knows it, and:

- ``migrate`` (and every process that migrates at boot) creates its ``models``' tables
  beside the system tables;
- the web app registers its ``blueprints`` and shows its ``nav_links`` in the dashboard;
- ``tengo-jobs`` offers its ``commands``;
- log redaction hides the values ``secrets()`` returns.

The engine never imports an application; the application's client brings its extension
along, so nothing happens as a side effect of importing a module.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable


@dataclasses.dataclass(frozen=True, eq=False)
class Extension:
    """The parts an application adds to the engine's processes (see the module docstring)."""

    name: str
    models: tuple = ()  # Peewee models on tengo_jobs.AppModel
    blueprints: tuple = ()  # Flask blueprints
    nav_links: tuple[tuple[str, str], ...] = ()  # (label, endpoint) in the dashboard's navigation
    commands: tuple = ()  # click commands added to `tengo-jobs`
    secrets: Callable[[], Iterable[str]] | None = None  # values never to be logged

    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.secrets() if self.secrets else ()) if v)
