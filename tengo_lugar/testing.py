"""Test fixtures for Tengo Lugar's jobs: a fresh runtime with the app's tables and a tester.

Import the fixtures into a test module (``from tengo_lugar.testing import app_runtime,
tester``) after importing ``actors``, so the functions are registered before the test.
``make_app_runtime(tmp_path, resend_api_key=..., lease_ttl_ms=...)`` takes both the
app's settings (:class:`~tengo_lugar.settings.AppSettings` fields) and the engine's.
"""

from __future__ import annotations

import dataclasses

import pytest

from tengo_jobs import FakeClock
from tengo_jobs.testing import JobsTester, make_test_runtime

from . import extension, settings as app_settings
from .models import EmailOutbox, ErrorLog, Notification

# 2026-03-10 12:00 UTC = 09:00 in Buenos Aires: when the daily reminder fires.
START_MS = 1_773_144_000_000
_APP_FIELDS = {f.name for f in dataclasses.fields(app_settings.AppSettings)}


def make_app_runtime(tmp_path, database_url: str | None = None, **settings):
    """A test runtime (SQLite in ``tmp_path`` unless ``database_url``) with the app's tables,
    on a fake clock at :data:`START_MS`; app settings from ``settings``, the rest defaults."""
    url = database_url or f"sqlite:///{tmp_path / 'app.db'}"
    app = {k: settings.pop(k) for k in list(settings) if k in _APP_FIELDS}
    app_settings.configure(app_settings.AppSettings(**app))
    runtime = make_test_runtime(url, clock=FakeClock(START_MS), **settings)
    runtime.registry.add_extension(extension)
    runtime.migrate()
    return runtime


@pytest.fixture
def app_runtime(tmp_path):
    runtime = make_app_runtime(tmp_path)
    with runtime:
        yield runtime
    app_settings.configure(None)


@pytest.fixture
def tester(app_runtime):
    return JobsTester(app_runtime)


def tick_cron(tester: JobsTester, function, at: int):
    """Fire ``function``'s cron tick at ``at`` (epoch ms), run until idle, return its run."""
    return tester.tick(function, at)


def outbox(**where) -> list[EmailOutbox]:
    q = EmailOutbox.select().order_by(EmailOutbox.id)
    for field, value in where.items():
        q = q.where(getattr(EmailOutbox, field) == value)
    return list(q)


def notifications(user_id: str | None = None) -> list[Notification]:
    q = Notification.select().order_by(Notification.id)
    if user_id is not None:
        q = q.where(Notification.user == user_id)
    return list(q)


def error_logs() -> list[ErrorLog]:
    return list(ErrorLog.select().order_by(ErrorLog.id))
