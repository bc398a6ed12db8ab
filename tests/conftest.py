"""Shared fixtures.

Unit tests use ``tengo_jobs.testing`` (StubBroker + SQLite + FakeClock).
Integration fixtures give a real Redis and a fresh PostgreSQL database; they skip
with a visible reason when the server is unreachable, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from tengo_jobs.core.registry import registry

pytest_plugins = ["tengo_jobs.testing"]

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or fail under CI=true) when a service the test needs does not answer."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: integration tests must not skip)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Functions declared inside a test are forgotten after it; functions of importable modules
    (``actors``, modules imported lazily during a test) stay registered, as they would in a process."""
    before = {fn.id for fn in registry.all()}
    yield
    for fn in registry.all():
        if fn.id not in before and "<locals>" in fn.qualname:
            registry.remove(fn.id)


@pytest.fixture(autouse=True)
def _fresh_app_settings():
    """Tengo Lugar's settings (tengo_lugar.settings.configure) do not leak from one test to the next."""
    yield
    import sys

    app_settings = sys.modules.get("tengo_lugar.settings")
    if app_settings is not None:
        app_settings.configure(None)


@pytest.fixture
def redis_url():
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.close()
    return REDIS_URL


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"tj_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def queue_name():
    """A queue of this test's own, so tests sharing one Redis never see each other's messages."""
    return f"tj_test_{uuid.uuid4().hex[:10]}"
