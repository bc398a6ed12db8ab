"""Helpers for the production tests: the Procfile's commands as real processes, and the
servers with passwords that the secrets test plants (a PostgreSQL role, a Redis)."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import uuid

from procs import ROOT, Proc, free_port, process_env, wait_until

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_TOOLS = {"gunicorn": [sys.executable, "-m", "gunicorn"],
          "dramatiq": [sys.executable, "-m", "dramatiq"],
          "python": [sys.executable]}


def procfile_args(kind: str, *, port: int | None = None) -> list[str]:
    """The ``Procfile``'s command for ``kind`` as argv, run by this interpreter; ``PORT`` is
    expanded and the bind address made loopback (tests listen on 127.0.0.1 only)."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind:
            command = command.replace("${PORT:-8288}", str(port or 8288))
            args = [a.replace("0.0.0.0", "127.0.0.1") for a in shlex.split(command)]
            return _TOOLS[args[0]] + args[1:]
    raise AssertionError(f"no {kind!r} process in the Procfile")


def run_procfile(kind: str, env: dict, *, extra: list[str] = (), timeout: float = 90):
    """Run the Procfile's ``kind`` to completion (it is expected to exit by itself)."""
    args = procfile_args(kind, port=free_port()) + list(extra)
    return subprocess.run(args, env=process_env(**env), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def start_procfile(kind: str, env: dict, log_path, *, port: int | None = None,
                   extra: list[str] = ()) -> Proc:
    return Proc(procfile_args(kind, port=port) + list(extra), process_env(**env), log_path)


@contextlib.contextmanager
def postgres_with_password(password: str):
    """A fresh database owned by a new role that has ``password``; yields its URL (the
    password in it). The test server trusts loopback, so the password is carried, not checked."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        from conftest import unavailable
        unavailable(f"PostgreSQL is not reachable ({exc})")
    suffix = uuid.uuid4().hex[:10]
    role, name = f"tj_leaky_{suffix}", f"tj_leaky_{suffix}"
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    admin.execute(f'CREATE DATABASE "{name}" OWNER {role}')
    try:
        yield f"postgresql://{role}:{password}@127.0.0.1:5432/{name}"
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                      (name,))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


@contextlib.contextmanager
def redis_with_password(password: str, log_path):
    """A ``redis-server --requirepass`` of its own on a free loopback port, without
    persistence; yields ``(url, proc)`` (stop ``proc`` to make Redis fail)."""
    import redis

    port = free_port()
    proc = Proc(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass",
                 password, "--save", "", "--appendonly", "no"], dict(os.environ), log_path)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis.Redis.from_url(url).ping(), timeout=10,
                   message=f"redis-server on port {port}")
        yield url, proc
    finally:
        proc.stop()


def dev_command() -> list[str]:
    """``tengo-jobs dev`` (the console script when installed, else the module)."""
    import shutil

    script = shutil.which("tengo-jobs", path=os.path.dirname(sys.executable)) or shutil.which(
        "tengo-jobs")
    return [script, "dev"] if script else [sys.executable, "-m", "tengo_jobs.cli", "dev"]
