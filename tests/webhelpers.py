"""Shared set-up for the web tests: a runtime with known credentials and a test client."""

from __future__ import annotations

import base64

from tengo_jobs.testing import make_test_runtime
from tengo_jobs.web import create_app

EVENT_KEY = "test-event-key-5f2a9c"
OTHER_KEY = "second-event-key-77b1"
PASSWORD = "dashboard-pass-8d41e0"


def make_app(tmp_path, **settings):
    defaults = dict(event_keys=(EVENT_KEY, OTHER_KEY), dashboard_password=PASSWORD)
    defaults.update(settings)
    runtime = make_test_runtime(f"sqlite:///{tmp_path / 'web.db'}", **defaults)
    return runtime, create_app(runtime)


def bearer(token: str = PASSWORD) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(password: str = PASSWORD, user: str = "admin") -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}
