"""``TENGO_LOG_FORMAT=json``: one JSON object per line, with the run, function and step where
there is one, and secrets still redacted — read from real processes' stderr."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import requests

from engine_funcs import harness
from procs import ROOT, free_port, process_env, start_worker, wait_until
from tengo_jobs import Settings, logsafe
from tengo_jobs.errors import ConfigurationError
from tengo_jobs.store.schema import RunRow as Run, RunStatus
from test_dev import _dev_command, wait_healthy
from procs import Proc

SECRET = "json-logs-secret-4be19f"
FUNCS = "json_log_funcs"


def _lines(text: str) -> list[dict]:
    """Every line of ``text`` parsed as a JSON object (fails on the first one that is not)."""
    parsed = []
    for line in text.splitlines():
        if line.strip():
            try:
                parsed.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def test_the_setting_is_read_once_and_checked():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"TENGO_LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(ConfigurationError, match="TENGO_LOG_FORMAT='xml' is not one of text, json"):
        Settings.from_env({"TENGO_LOG_FORMAT": "xml"})


def test_a_json_line_has_the_run_fields_of_its_context_and_extra():
    logsafe.install([SECRET])
    record = logging.LogRecord("t", logging.WARNING, __file__, 1, "key %s", (SECRET,), None)
    formatter = logsafe.JsonFormatter()
    with logsafe.log_context(run_id="r-1", function_id="f-1"):
        with logsafe.log_context(step_key="s:1"):
            inner = json.loads(formatter.format(record))
        outer = json.loads(formatter.format(record))
    assert inner["run_id"] == "r-1" and inner["function_id"] == "f-1" and inner["step_key"] == "s:1"
    assert "step_key" not in outer and outer["run_id"] == "r-1"
    assert inner["level"] == "WARNING" and inner["logger"] == "t"
    assert inner["message"] == f"key {logsafe.REDACTED}" and inner["time"].endswith("Z")
    record.run_id = "from-extra"  # given as extra, it wins over the context
    assert json.loads(formatter.format(record))["run_id"] == "from-extra"
    assert "run_id" not in json.loads(formatter.format(
        logging.LogRecord("t", logging.INFO, __file__, 1, "plain", (), None)))


def test_an_uncaught_exception_is_a_redacted_json_line():
    code = ("from tengo_jobs import logsafe; logsafe.install([%r]); logsafe.apply_format('json');"
            "raise RuntimeError('died holding ' + %r)") % (SECRET, SECRET)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=process_env(), cwd=ROOT, timeout=60)
    assert done.returncode == 1 and SECRET not in done.stderr
    [line] = _lines(done.stderr)
    assert line["level"] == "CRITICAL" and "RuntimeError" in line["exc_info"]
    assert line["message"] == f"uncaught RuntimeError: died holding {logsafe.REDACTED}"


def _check_function_lines(lines: list[dict]) -> None:
    """The lines the function logged carry its run, function and step, redacted."""
    started = [x for x in lines if x["message"].startswith("started, the secret is")]
    assert len(started) == 1, lines
    run_id = started[0]["run_id"]
    assert started[0]["function_id"] == "json-logger" and "step_key" not in started[0]
    [inside] = [x for x in lines if x["message"].startswith("inside the step")]
    assert inside["step_key"] == "log-inside" and inside["run_id"] == run_id
    assert inside["logger"] == "json_log_funcs" and logsafe.REDACTED in inside["message"]
    [failed] = [x for x in lines if x["message"] == "the step failed"]
    assert failed["level"] == "ERROR" and "RuntimeError: boom with" in failed["exc_info"]
    assert failed["run_id"] == run_id


def test_the_dev_process_writes_only_json_lines_without_the_secret(tmp_path):
    port = free_port()
    env = process_env(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}",
                      TENGO_FUNCTIONS=FUNCS, TENGO_LOG_FORMAT="json",
                      TENGO_DASHBOARD_PASSWORD=SECRET)
    for name in ("TENGO_ENV", "REDIS_URL"):
        env.pop(name, None)
    proc = Proc(_dev_command(), env, tmp_path / "dev.log", cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        r = requests.post(f"{base}/e/dev-key", json={"name": "logs/go", "data": {}}, timeout=5)
        assert r.status_code == 200, r.text
        wait_until(lambda: "the step failed" in proc.log(), timeout=30, message="the run's logs")
    finally:
        proc.stop()
    text = proc.log()
    assert SECRET not in text
    lines = _lines(text)
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    _check_function_lines(lines)
    # the web server's request lines are JSON too, the intake key redacted
    assert any("/e/[REDACTED]" in x["message"] for x in lines)


@pytest.mark.integration
def test_a_dramatiq_worker_process_writes_json_lines_without_the_secret(redis_url, postgres_url,
                                                                         queue_name, tmp_path):
    env = harness.worker_env(postgres_url, redis_url, queue_name, TENGO_FUNCTIONS=FUNCS,
                             TENGO_LOG_FORMAT="json", TENGO_DASHBOARD_PASSWORD=SECRET)
    with harness.scheduler_runtime(env) as (runtime, jobs):
        import json_log_funcs

        jobs.registry.add(json_log_funcs.json_logger)
        proc = start_worker(FUNCS, tmp_path / "worker.log", threads=2, **env)
        try:
            [event_id] = jobs.send({"name": "logs/go", "data": {}})
            runtime.flush()
            wait_until(lambda: [r.status for r in Run.select().where(Run.event_id == event_id)]
                       == [RunStatus.COMPLETED], timeout=60, message="the run to complete")
        finally:
            proc.stop()
    text = proc.log()
    assert SECRET not in text
    # Dramatiq's main process writes its own few lifecycle lines in its own format
    # (docs/operations.md); every line of the worker processes is JSON.
    worker_lines = [line for line in text.splitlines()
                    if line.strip() and "[dramatiq.MainProcess]" not in line]
    lines = _lines("\n".join(worker_lines))
    _check_function_lines(lines)
