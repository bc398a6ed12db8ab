"""Inngest SDK apps (``tj_apps``): what each app's SDK sent when it synced.

An app's row is the source of truth for its functions in every process: the web process
that handled the sync registers them at once; the others (workers, the scheduler, other
web processes) rebuild them from these rows at boot and when a run names a function they
do not know (:mod:`tengo_jobs.engine.sdk_sync`). One upsert per sync; the same SQL on both
databases.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..durations import ms_to_iso
from .dialect import Dialect
from .schema import SDK_APPS


@dataclasses.dataclass(frozen=True)
class SdkApp:
    app_id: str
    url: str
    sdk: str
    framework: str
    functions: list[dict[str, Any]]
    unsupported: list[str]
    synced_at: int

    def describe(self) -> dict[str, Any]:
        return {"app_id": self.app_id, "url": self.url, "sdk": self.sdk,
                "framework": self.framework,
                "functions": [f.get("id") for f in self.functions],
                "unsupported": self.unsupported, "synced_at": ms_to_iso(self.synced_at)}


_COLUMNS = '"app_id", "url", "sdk", "framework", "functions", "unsupported", "synced_at"'


class AppStore:
    def __init__(self, dialect: Dialect):
        self.d = dialect

    def save(self, app: SdkApp) -> None:
        """Insert or replace the app's row (a re-sync replaces its functions)."""
        self.d.execute(
            f'INSERT INTO "{SDK_APPS}" ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) '
            'ON CONFLICT ("app_id") DO UPDATE SET "url" = EXCLUDED."url", '
            '"sdk" = EXCLUDED."sdk", "framework" = EXCLUDED."framework", '
            '"functions" = EXCLUDED."functions", "unsupported" = EXCLUDED."unsupported", '
            '"synced_at" = EXCLUDED."synced_at"',
            (app.app_id, app.url, app.sdk, app.framework, json.dumps(app.functions),
             json.dumps(app.unsupported), app.synced_at))

    def version(self) -> tuple[int, int]:
        """``(apps, latest synced_at)``: changes whenever an app is synced (a cheap probe
        before reloading every app's functions)."""
        count, latest = self.d.execute(
            f'SELECT COUNT(*), MAX("synced_at") FROM "{SDK_APPS}"').fetchone()
        return int(count), int(latest or 0)

    def all(self) -> list[SdkApp]:
        """Every synced app, by id."""
        rows = self.d.execute(f'SELECT {_COLUMNS} FROM "{SDK_APPS}" ORDER BY "app_id"').fetchall()
        return [SdkApp(app_id, url, sdk, framework, json.loads(functions), json.loads(unsupported),
                       synced_at)
                for app_id, url, sdk, framework, functions, unsupported, synced_at in rows]


__all__ = ["AppStore", "SdkApp"]
