"""Shared fixtures.

Unit tests use ``tengo_jobs.testing`` (StubBroker + SQLite + FakeClock). The engine's
tests take ``backend`` (or ``jobs`` / ``tester``, built on it) and run once on each
database: a fresh SQLite file, and PostgreSQL (one database for the session, migrated
once, its rows deleted before each test). Integration fixtures give a real Redis and a
fresh PostgreSQL database; they skip with a visible reason when the server is
unreachable, and fail under ``CI=true``. Tests that need a program (``redis-server``,
PostgreSQL's binaries, ``node``, ``ip``) ask for it the same way: :func:`require_tool`,
or :func:`unavailable` for whatever else the machine lacks.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from typing import NoReturn

import pytest

pytest.register_assert_rewrite("tengo_jobs.testing")  # imported below, before pytest_plugins

from tengo_jobs import Jobs  # noqa: E402
from tengo_jobs.core.registry import registry  # noqa: E402
from tengo_jobs.testing import JobsTester, make_test_runtime  # noqa: E402

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


def unavailable(reason: str) -> NoReturn:
    """Skip the test, saying ``reason`` (what the machine lacks), or fail it under CI=true,
    where everything the tests need is installed and a skip would hide a missing check."""
    if IN_CI:
        pytest.fail(reason + " (CI=true: integration tests must not skip)")
    pytest.skip(reason)


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or fail under CI=true) when a service the test needs does not answer."""
    if not _reachable(host, port):
        unavailable(f"{name} is not reachable at {host}:{port}")


def require_tool(name: str, reason: str | None = None) -> str:
    """The path of the program ``name``; skips (or fails under CI=true) when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        unavailable(reason or f"{name} is not installed")
    return path


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


# -- the engine suite on both databases ----------------------------------------------------
BACKENDS = ("sqlite", "postgresql")
_WIPE = """
DO $$ DECLARE t text; BEGIN
  SET LOCAL session_replication_role = replica;  -- no foreign key order to respect
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public'
             AND tablename <> 'tj_migrations' LOOP  -- the schema stays migrated
    EXECUTE format('DELETE FROM %I', t);
  END LOOP;
END $$"""


class _SessionPostgres:
    """One PostgreSQL database for every ``backend`` test of the session: created and
    migrated once; before each test every table in it is emptied (a few ms, against ~0.5 s
    to create and migrate a database)."""

    def __init__(self):
        import psycopg

        self.name = f"tj_suite_{uuid.uuid4().hex[:10]}"
        self.admin = psycopg.connect(POSTGRES_URL, autocommit=True)
        self.admin.execute(f'CREATE DATABASE "{self.name}"')
        # commits need not reach the disk for a test: ~5 ms less per commit on this machine
        self.admin.execute(f'ALTER DATABASE "{self.name}" SET synchronous_commit = off')
        self.url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{self.name}"
        make_test_runtime(self.url).close()
        self.conn = psycopg.connect(self.url, autocommit=True)
        self.conn.execute("SET lock_timeout = '10s'")  # a test left a transaction open: fail

    def wipe(self) -> None:
        self.conn.execute(_WIPE)

    def drop(self) -> None:
        self.conn.close()
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s", (self.name,))
        self.admin.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
        self.admin.close()


@pytest.fixture(scope="session")
def _session_postgres():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    database = _SessionPostgres()
    yield database
    database.drop()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A fresh runtime (StubBroker, FakeClock, migrated system tables, no rows) on each
    database in turn; ``backend.store.dialect.name`` says which. Settings of its own:
    ``@pytest.mark.runtime_settings(group_commit=True)``."""
    marker = request.node.get_closest_marker("runtime_settings")
    settings = marker.kwargs if marker is not None else {}
    if request.param == "sqlite":
        runtime = make_test_runtime(**settings)  # its own temporary file, removed on close
    else:
        database = request.getfixturevalue("_session_postgres")
        database.wipe()
        runtime = make_test_runtime(database.url, migrate=False, **settings)  # migrated once
    with runtime:
        yield runtime


@pytest.fixture(params=BACKENDS)
def backend_url(request, tmp_path):
    """An empty database of this test's own on each database in turn, for tests that start
    processes: a SQLite file in ``tmp_path``, or a PostgreSQL database (``postgres_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def tester(backend):
    """Drives ``backend``'s runs in-process (:class:`tengo_jobs.testing.JobsTester`)."""
    return JobsTester(backend)


@pytest.fixture
def jobs(backend):
    """A ``Jobs`` client on ``backend`` to declare a test's functions with."""
    return Jobs(app_id="app", runtime=backend)
