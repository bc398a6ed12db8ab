"""R12: planted secrets appear in no log line of web, worker, scheduler and dev.

The planted secrets: two event keys, an Inngest-style signing key (``signkey-prod-<hex>``,
so its unprefixed and hashed forms exist too), the dashboard password, the password of a
real PostgreSQL role in ``DATABASE_URL``, the password of a ``redis-server
--requirepass`` in ``REDIS_URL``, and Tengo Lugar's Resend key.

The production stack runs as the Procfile starts it — gunicorn (access log on, debug
level), ``dramatiq actors``, ``python scheduler.py`` — with ``TENGO_FUNCTIONS`` adding
:mod:`leaky_functions`. The test then drives what leaks secrets in practice: the start-up
banners; the event key in ``/e/<key>`` and in query strings, wrong keys that embed the
right one, the password as bearer and basic credentials; a step whose error message,
logged traceback and crashing thread contain every secret and URL; the Resend SDK
answering with an error that echoes the key; Redis going away under all three processes;
and each process started against a wrong database port. ``tengo-jobs dev`` gets the same
(with a 3-character password, which development allows). Every line each real process
wrote to stdout and stderr is checked.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import signal
import uuid

import inngest
import pytest
import requests

from fake_resend import FakeResend
from prodhelpers import (dev_command, postgres_with_password, redis_with_password,
                         run_procfile, start_procfile)
from procs import Proc, free_port, process_env, wait_until
from tengo_jobs import logsafe

EVENT_KEY = "evtkey-planted-3b7e91c4d2"
OTHER_KEY = "evtkey-second-77ab01f9e3"
PASSWORD = "dashpass-planted-8a6f0e2b"
RESEND_KEY = "re_planted_5d1c7a9e44"
SIGNING_KEY = "signkey-prod-c0ffee77c0ffee77c0ffee77"
PG_PASSWORD = "pgpass-planted-41d2c9"
REDIS_PASSWORD = "redispass-planted-e5f6a7"
_SIGNING_BODY = SIGNING_KEY.removeprefix("signkey-prod-")
_SIGNING_HASH = hashlib.sha256(bytes.fromhex(_SIGNING_BODY)).hexdigest()
SECRETS = [EVENT_KEY, OTHER_KEY, PASSWORD, RESEND_KEY, SIGNING_KEY, _SIGNING_BODY, _SIGNING_HASH,
           hashlib.sha256(EVENT_KEY.encode()).hexdigest(), PG_PASSWORD, REDIS_PASSWORD]
FUNCTIONS = "actors,leaky_functions"


# -- redaction rules ---------------------------------------------------------------------------
def test_url_and_dsn_passwords_are_redacted_configured_or_not():
    text = logsafe.redact(
        "db postgresql://tj:s3cr%40t@db:5432/tj, broker redis://:rpass@r:6379/0 and "
        "rediss://default:tls-pass@r:6380 dsn host=db password=kwpass user=tj "
        "quoted password='q pass' params {'password': 'dictpass'} "
        "pg postgresql://u:p@ss@h/db and http://example.com:8288/path", secrets=[])
    for leaked in ("s3cr%40t", "rpass", "tls-pass", "kwpass", "q pass", "dictpass", "p@ss"):
        assert leaked not in text, text
    assert "postgresql://tj:[REDACTED]@db:5432/tj" in text
    assert "redis://:[REDACTED]@r:6379/0" in text and "@h/db" in text
    assert "http://example.com:8288/path" in text  # a port is not a password


def test_short_secrets_are_redacted_where_they_stand_alone():
    text = logsafe.redact("pw=k9q user:k9q@host 'k9q' k9qk k9q1 ak9q ok", secrets=["k9q"])
    assert text == "pw=[REDACTED] user:[REDACTED]@host '[REDACTED]' k9qk k9q1 ak9q ok"
    long_secret = "planted-long-secret"
    assert logsafe.redact(f"x{long_secret}x", secrets=[long_secret]) == "x[REDACTED]x"


def test_a_record_keeps_its_args_for_formatters_that_unpack_them():
    """uvicorn's access formatter unpacks ``record.args``: a line with nothing to redact keeps
    them as they are, one with a secret keeps them redacted one by one."""
    secret = "planted-args-secret-4c"
    logsafe.install([secret])
    access = '%s - "%s %s HTTP/%s" %d'
    plain = logging.makeLogRecord({"msg": access, "args": ("127.0.0.1:1", "GET", "/", "1.1", 200)})
    logsafe.RedactingFilter().filter(plain)
    assert plain.args == ("127.0.0.1:1", "GET", "/", "1.1", 200)
    keyed = logging.makeLogRecord({"msg": access,
                                   "args": ("127.0.0.1:1", "POST", f"/jobs/e/{EVENT_KEY}", "1.1", 200)})
    logsafe.RedactingFilter().filter(keyed)
    assert keyed.args == ("127.0.0.1:1", "POST", "/jobs/e/[REDACTED]", "1.1", 200)
    client, method, path, version, status = keyed.args  # what uvicorn does
    assert EVENT_KEY not in keyed.getMessage()
    leaky = logging.makeLogRecord({"msg": "%s and %d", "args": (Exception(secret), 3)})
    logsafe.RedactingFilter().filter(leaky)  # not a plain value: flattened, redacted
    assert leaky.args is None and leaky.msg == "[REDACTED] and 3"


def test_handlers_formatters_and_uncaught_tracebacks_are_redacted(capsys):
    secret = "planted-format-secret-9d"
    logsafe.install([secret])

    class ReformattingFormatter(logging.Formatter):  # renders the exception by itself
        def format(self, record):
            return f"{record.levelname} {self.formatException(record.exc_info)}"

    import io
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ReformattingFormatter())
    logger = logging.getLogger("test.secrets.reformatting")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"failed with {secret}")
        except RuntimeError:
            logger.error("oops", exc_info=True)
        import sys
        try:
            raise RuntimeError(f"uncaught with {secret}")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        logger.removeHandler(handler)
    assert "RuntimeError: failed with [REDACTED]" in stream.getvalue()
    err = capsys.readouterr().err
    assert "RuntimeError: uncaught with [REDACTED]" in err and secret not in err


# -- the real processes ------------------------------------------------------------------------
def _assert_no_secret(logs: dict[str, str]) -> None:
    for name, text in logs.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            for secret in SECRETS:
                assert secret not in line, f"{name}:{lineno} leaks a planted secret: {line}"


def _drive_web(base: str, *, password: str) -> list[str]:
    """Requests that put keys and passwords where logs look: returns the accepted event ids."""
    auth = {"Authorization": f"Bearer {password}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"ops:{password}".encode()).decode()}
    sdk = inngest.Inngest(app_id="leaky", event_api_base_url=base, is_production=False,
                          event_key=EVENT_KEY, signing_key=SIGNING_KEY)
    ids = sdk.send_sync([inngest.Event(name="leaky/step", data={"n": 1})])
    r = requests.post(f"{base}/api/events", json={"name": "leaky/email"},
                      headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=10)
    assert r.status_code == 200, r.text
    ids += r.json()["ids"]
    assert requests.post(f"{base}/e/{EVENT_KEY}", data=b"{oops", timeout=10).status_code == 400
    requests.post(f"{base}/e/x{EVENT_KEY}x", json={"name": "a"}, timeout=10)  # 401 in production
    assert requests.post(f"{base}/e/{EVENT_KEY}?key={EVENT_KEY}&password={PASSWORD}",
                         json={"name": "a"}, timeout=10).status_code == 200
    assert requests.get(f"{base}/api/runs?cursor={password}", headers=auth,
                        timeout=10).status_code == 400
    assert requests.get(f"{base}/api/runs", headers=basic, timeout=10).status_code == 200
    assert requests.get(f"{base}/metrics", headers=auth, timeout=10).status_code == 200
    requests.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {password}-wrong"},
                 timeout=10)
    requests.get(f"{base}/api/runs", headers={"Authorization": f"Bearer {SIGNING_KEY}"},
                 timeout=10)
    return ids


def _wait_failed(base: str, ids: list[str], *, password: str) -> None:
    auth = {"Authorization": f"Bearer {password}"}

    def failed():
        for event_id in ids:
            runs = requests.get(f"{base}/api/events/{event_id}", headers=auth,
                                timeout=5).json()["runs"]
            if not runs or any(r["status"] != "failed" for r in runs):
                return False
        return True

    wait_until(failed, timeout=60, interval=0.3, message="the leaky runs to fail")


def _env(database_url: str, redis_url: str, fake: FakeResend, queue: str, **extra) -> dict:
    env = dict(TENGO_ENV="production", DATABASE_URL=database_url, REDIS_URL=redis_url,
                TENGO_QUEUE=queue, TENGO_FUNCTIONS=FUNCTIONS,
                TENGO_EVENT_KEYS=f"{EVENT_KEY},{OTHER_KEY}", TENGO_SIGNING_KEY=SIGNING_KEY,
                TENGO_DASHBOARD_PASSWORD=PASSWORD, RESEND_API_KEY=RESEND_KEY,
                RESEND_API_URL=fake.url, TENGO_SWEEP_INTERVAL="1s",
                LEAKY_EXTRA=(f"host=127.0.0.1 port=5432 user=tj password={PG_PASSWORD} "
                             f"rediss://default:{REDIS_PASSWORD}@127.0.0.1:6380/0"))
    env.update(extra)
    return env


@pytest.mark.integration
def test_no_planted_secret_in_any_log_of_the_procfile_processes(tmp_path):
    fake = FakeResend()
    procs: dict[str, Proc] = {}
    with postgres_with_password(PG_PASSWORD) as database_url, \
            redis_with_password(REDIS_PASSWORD, tmp_path / "redis.log") as (redis_url, redis):
        assert PG_PASSWORD in database_url and REDIS_PASSWORD in redis_url
        env = _env(database_url, redis_url, fake, f"tj_leaky_{uuid.uuid4().hex[:8]}")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            procs["web"] = start_procfile("web", env, tmp_path / "web.log", port=port, extra=[
                "--access-logfile", "-", "--error-logfile", "-", "--log-level", "debug"])
            wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
                       timeout=40, message=f"gunicorn on {base}")
            procs["worker"] = start_procfile("worker", env, tmp_path / "worker.log")
            procs["scheduler"] = start_procfile("scheduler", env, tmp_path / "scheduler.log")
            wait_until(lambda: "scheduler started" in procs["scheduler"].log(), timeout=40,
                       message="the scheduler")
            fake.fail_next(422, name="validation_error",
                           message=f"API key {RESEND_KEY} may not send from this domain")
            ids = _drive_web(base, password=PASSWORD)
            _wait_failed(base, ids, password=PASSWORD)
            assert fake.emails(), "the email never reached the fake Resend"

            redis.stop()  # Redis fails under all three processes
            requests.post(f"{base}/e/{EVENT_KEY}", json={"name": "leaky/step"}, timeout=10)
            wait_until(lambda: "Error 111" in procs["worker"].log()
                       and "sweep failed" in procs["scheduler"].log()
                       and "could not enqueue" in procs["web"].log(), timeout=30,
                       message="the processes to log the lost Redis")
        finally:
            for proc in procs.values():
                proc.stop()
        logs = {f"{name}.log": proc.log() for name, proc in procs.items()}

        # each kind against a wrong database port: the connect errors are logged
        wrong = dict(env, DATABASE_URL=database_url.replace(":5432/", f":{free_port()}/"))
        scheduler = run_procfile("scheduler", wrong)
        assert scheduler.returncode != 0
        logs["scheduler-wrong-port.log"] = scheduler.stdout + scheduler.stderr
        web = start_procfile("web", wrong, tmp_path / "web-wrong-port.log", port=free_port())
        worker = start_procfile("worker", wrong, tmp_path / "worker-wrong-port.log")
        try:
            wait_until(lambda: not web.alive(), timeout=60, message="the web process to give up")
            wait_until(lambda: "failed: Connection refused" in worker.log(), timeout=60,
                       message="the worker to log the database failure")
        finally:
            web.stop()
            worker.stop()
        assert web.popen.returncode != 0
        logs["web-wrong-port.log"], logs["worker-wrong-port.log"] = web.log(), worker.log()
    fake.close()

    # the paths were driven...
    access = [line for line in logs["web.log"].splitlines() if '"POST /e/' in line]
    assert len(access) >= 4 and all("/e/[REDACTED]" in line for line in access), logs["web.log"]
    worker_log = logs["worker.log"]
    assert "starting with" in worker_log and "step failing" in worker_log
    assert "thread crashed" in worker_log and "cannot connect" in worker_log
    assert f"postgresql://{database_url.split('//')[1].split(':')[0]}:[REDACTED]@" in worker_log
    assert "password=[REDACTED]" in worker_log and "rediss://default:[REDACTED]@" in worker_log
    assert "Resend (422" in worker_log and "API key [REDACTED] may not" in worker_log
    for name in ("scheduler-wrong-port.log", "web-wrong-port.log", "worker-wrong-port.log"):
        assert "Connection refused" in logs[name], logs[name]
    # ...and no line of any process carries a planted secret
    _assert_no_secret(logs)


SHORT_PASSWORD = "k9q"  # development allows it; it is redacted where it stands alone


@pytest.mark.integration
def test_no_planted_secret_in_the_dev_log(tmp_path):
    fake = FakeResend()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(f"sqlite:///{tmp_path / 'dev.db'}",
               f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0", fake, "tj_dev",
               TENGO_ENV="development", TENGO_DASHBOARD_PASSWORD=SHORT_PASSWORD, PORT=str(port))
    env["LEAKY_EXTRA"] += f" dashboard {SHORT_PASSWORD}"
    proc = Proc(dev_command(), process_env(**env), tmp_path / "dev.log", cwd=tmp_path)
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
                   timeout=40, message=f"tengo-jobs dev on {base}\n{proc.log()}")
        fake.fail_next(401, name="invalid_api_key", message=f"API key {RESEND_KEY} is invalid")
        ids = _drive_web(base, password=SHORT_PASSWORD)
        _wait_failed(base, ids, password=SHORT_PASSWORD)
        proc.kill(signal.SIGINT)
        wait_until(lambda: not proc.alive(), timeout=20, message="tengo-jobs dev to stop")
    finally:
        proc.stop()
        fake.close()
    text = proc.log()
    assert "tengo-jobs dev ready" in text and "thread crashed" in text, text
    assert "Resend (401" in text and "API key [REDACTED] is invalid" in text, text
    _assert_no_secret({"dev.log": text})
    alone = re.compile(rf"(?<![A-Za-z0-9]){SHORT_PASSWORD}(?![A-Za-z0-9])")
    for lineno, line in enumerate(text.splitlines(), 1):
        assert not alone.search(line), f"dev.log:{lineno} leaks the short password: {line}"
