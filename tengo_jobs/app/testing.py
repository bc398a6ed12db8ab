"""Test fixtures for Tengo Lugar's jobs: a fresh runtime with the app's tables and a tester.

Import the fixtures into a test module (``from tengo_jobs.app.testing import app_runtime,
tester``) after importing ``actors``, so the functions are registered before the test.
"""

from __future__ import annotations

import pytest

from tengo_jobs.runtime import set_runtime
from tengo_jobs.testing import JobsTester, make_test_runtime

from . import models  # noqa: F401  (registers the tables before migrate)
from .models import EmailOutbox, Notification

# 2026-03-10 12:00 UTC = 09:00 in Buenos Aires: when the daily reminder fires.
START_MS = 1_773_144_000_000


def make_app_runtime(tmp_path, database_url: str | None = None, **settings):
    url = database_url or f"sqlite:///{tmp_path / 'app.db'}"
    from tengo_jobs.clock import FakeClock

    return make_test_runtime(url, clock=FakeClock(START_MS), **settings)


@pytest.fixture
def app_runtime(tmp_path):
    runtime = make_app_runtime(tmp_path)
    yield runtime
    runtime.broker.flush_all()
    runtime.close()
    set_runtime(None)


@pytest.fixture
def tester(app_runtime):
    return JobsTester(app_runtime)


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
