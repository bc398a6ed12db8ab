"""Production mode refuses to start unsafe, in every process kind, naming every problem
at once and never a secret's value; ``TENGO_ALLOW_UNSAFE=1`` is the explicit override.

The rules are checked on :class:`Settings` directly, then on the real processes as the
Procfile starts them (gunicorn ``web:app``, ``dramatiq actors``, ``python scheduler.py``)
and on ``tengo-jobs dev``, with the ``.env.example`` values.
"""

from __future__ import annotations

import subprocess

import pytest

from prodhelpers import dev_command, run_procfile
from procs import ROOT, process_env
from tengo_jobs.config import MIN_KEY_LENGTH, MIN_PASSWORD_LENGTH, Settings
from tengo_jobs.errors import ConfigurationError, UnsafeProductionError

SAFE = dict(env="production", database_url="postgresql://tj:db-pass-1a2b3c4d@db.internal/tj",
            redis_url="redis://:redis-pass-9f8e7d6c@redis.internal:6379/0",
            event_keys=("event-key-0123456789abcdef",),
            signing_key="signkey-prod-0123456789abcdef0123",
            dashboard_password="dash-pass-7h3k9x")
KINDS = ("web", "worker", "scheduler", "cli")


def _env_example() -> dict[str, str]:
    env = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def _settings(**changes) -> Settings:
    return Settings(**{**SAFE, **changes})


# -- the rules -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_safe_production_settings_start_every_kind(kind):
    assert _settings().production_problems(kind) == []
    _settings().check_production(kind)


def test_the_env_example_is_refused_naming_every_placeholder_and_no_value():
    settings = Settings.from_env(_env_example())
    assert settings.is_production
    with pytest.raises(UnsafeProductionError) as caught:
        settings.check_production("web")
    message = str(caught.value)
    for name in ("TENGO_EVENT_KEYS", "TENGO_SIGNING_KEY", "TENGO_DASHBOARD_PASSWORD"):
        assert f"{name} is the .env.example placeholder" in message
    assert "change-me" not in message
    assert "TENGO_ALLOW_UNSAFE=1" in message
    assert isinstance(caught.value, ConfigurationError) and len(caught.value.problems) == 3


@pytest.mark.parametrize("value", ["change-me", "CHANGE-ME-please-0123456789", "re_change_me_x"])
def test_any_value_containing_the_placeholder_is_refused(value):
    problems = _settings(dashboard_password=value, event_keys=(value,)).production_problems("web")
    assert problems == ["TENGO_EVENT_KEYS is the .env.example placeholder",
                        "TENGO_DASHBOARD_PASSWORD is the .env.example placeholder"]


def test_short_keys_and_passwords_are_refused_with_the_minimum_named():
    short_key, short_password = "k" * (MIN_KEY_LENGTH - 1), "p" * (MIN_PASSWORD_LENGTH - 1)
    settings = _settings(event_keys=("event-key-0123456789abcdef", short_key),
                         signing_key=short_key, dashboard_password=short_password)
    problems = settings.production_problems("web")
    assert problems == [
        f"TENGO_EVENT_KEYS (key 2) is shorter than {MIN_KEY_LENGTH} characters",
        f"TENGO_SIGNING_KEY is shorter than {MIN_KEY_LENGTH} characters",
        f"TENGO_DASHBOARD_PASSWORD is shorter than {MIN_PASSWORD_LENGTH} characters"]
    assert _settings(event_keys=("k" * MIN_KEY_LENGTH,),
                     dashboard_password="p" * MIN_PASSWORD_LENGTH).production_problems("web") == []
    assert _settings(signing_key=None).production_problems("web") == []  # not required


def test_what_each_kind_needs():
    bare = Settings(env="production")
    web = bare.production_problems("web")
    assert web == [
        "DATABASE_URL is not set (the default is SQLite; use postgresql://...)",
        "TENGO_BROKER_URL (or REDIS_URL) is not set (the web process would use an in-process "
        "broker that no other process shares)",
        "TENGO_EVENT_KEYS is empty (every event key would be accepted)",
        "TENGO_DASHBOARD_PASSWORD is not set (the REST API would be open)"]
    for kind in ("worker", "scheduler"):
        problems = bare.production_problems(kind)
        assert len(problems) == 3 and not any("TENGO_EVENT_KEYS" in p for p in problems)
        assert any(p.startswith("TENGO_BROKER_URL (or REDIS_URL) is not set") for p in problems)
    assert [p.split(" ")[0] for p in bare.production_problems("cli")] == [
        "DATABASE_URL", "TENGO_DASHBOARD_PASSWORD"]
    sqlite = _settings(database_url="sqlite:////var/lib/tj.db").production_problems("worker")
    assert sqlite == ["DATABASE_URL is SQLite (use postgresql://... in production)"]


def test_url_passwords_that_are_placeholders_are_refused_without_being_shown():
    settings = _settings(database_url="postgresql://tj:change-me@db/tj",
                         redis_url="rediss://:change%2Dme-too@redis:6380/0")
    assert settings.production_problems("worker") == [
        "DATABASE_URL's password is the .env.example placeholder",
        "REDIS_URL's password is the .env.example placeholder"]
    # a URL without a password is fine: local trust or peer authentication is legitimate
    assert _settings(database_url="postgresql://tj@127.0.0.1/tj",
                     redis_url="redis://127.0.0.1:6379/0").production_problems("web") == []


def test_an_extensions_placeholder_secret_is_refused_by_name():
    problems = _settings().production_problems(
        "worker", extension_secrets=[("RESEND_API_KEY", "re_change_me")])
    assert problems == ["RESEND_API_KEY is the .env.example placeholder"]


def test_dev_is_refused_in_production_and_the_override_is_explicit():
    with pytest.raises(UnsafeProductionError, match="tengo-jobs dev. is a development server"):
        _settings().check_production("dev")
    Settings(env="production", allow_unsafe=True).check_production("web")
    Settings(env="production", allow_unsafe=True).check_production("dev")
    Settings(env="development").check_production("web")  # development checks nothing


def test_secrets_include_every_form_a_secret_may_be_logged_in():
    import hashlib

    secrets = set(_settings().secrets())
    body = "0123456789abcdef0123"
    hashed = hashlib.sha256(bytes.fromhex(body)).hexdigest()
    assert {"event-key-0123456789abcdef",
            hashlib.sha256(b"event-key-0123456789abcdef").hexdigest(),
            "signkey-prod-0123456789abcdef0123", body, hashed, f"signkey-prod-{hashed}",
            "dash-pass-7h3k9x", "db-pass-1a2b3c4d", "redis-pass-9f8e7d6c"} <= secrets
    encoded = _settings(database_url="postgresql://tj:p%40ss%2Fw0rd@db/tj").secrets()
    assert {"p%40ss%2Fw0rd", "p@ss/w0rd"} <= set(encoded)


# -- the real processes ------------------------------------------------------------------------
UNSAFE = {**_env_example(), "TENGO_DASHBOARD_PASSWORD": "hunter2",
          "TENGO_EVENT_KEYS": "change-me-event-key,sh0rtkey", "TENGO_FUNCTIONS": "actors",
          "RESEND_API_KEY": "re_change_me"}
UNSAFE_VALUES = ["change-me", "hunter2", "sh0rtkey", "re_change_me"]


def _assert_refused(output: str, *, names: list[str]):
    assert "refusing to start with TENGO_ENV=production" in output, output
    for name in names:
        assert name in output, output
    for value in UNSAFE_VALUES:
        assert value not in output, f"{value!r} printed:\n{output}"


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["web", "worker", "scheduler"])
def test_each_procfile_process_refuses_unsafe_production_settings(kind):
    result = run_procfile(kind, UNSAFE)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    names = ["TENGO_SIGNING_KEY is the .env.example placeholder",
             "TENGO_DASHBOARD_PASSWORD is shorter than 12 characters",
             "RESEND_API_KEY is the .env.example placeholder"]
    if kind == "web":
        names += ["TENGO_EVENT_KEYS (key 1) is the .env.example placeholder",
                  "TENGO_EVENT_KEYS (key 2) is shorter than 16 characters"]
    _assert_refused(output, names=names)
    if kind != "web":  # gunicorn prints its own traceback when both workers stop at once
        assert "Traceback" not in output, output


@pytest.mark.integration
def test_dev_refuses_production_unless_told_explicitly(tmp_path):
    env = process_env(TENGO_ENV="production", TENGO_FUNCTIONS="",
                      DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}")
    result = subprocess.run(dev_command() + ["--port", "1"], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert "`tengo-jobs dev` is a development server" in result.stderr
    assert "Traceback" not in result.stderr
