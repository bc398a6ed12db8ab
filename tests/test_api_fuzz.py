"""R10 (issue 8): the API described by ``/openapi.json`` answers no hostile input with a 5xx.

Two tests:

- **hostile values, every parameter** (in-process, SQLite and PostgreSQL): every path and
  query parameter and every body field of every operation listed in ``/openapi.json`` gets
  each value of :data:`HOSTILE_TEXT` / :data:`HOSTILE_JSON` (JSON nested 1,000 deep,
  numbers past 64 bits and past Python's 4,300-digit limit, ``1e999``, ``NaN``, non-ASCII
  digits, NUL, lone surrogates, 5,000-character strings), and whole hostile bodies; no
  answer may be a 5xx and the server may log no error. A few seconds.
- **schemathesis** on a live gunicorn over PostgreSQL: generated valid and invalid input
  per operation; checks: no 5xx, status codes, content types and bodies as the document
  declares them, and schema-invalid input rejected with a 4xx. The seed is fixed so CI is
  reproducible. In the suite it runs ``TEST_FUZZ_EXAMPLES`` (default 25) examples per
  operation; ``bench/fuzz/run_full.sh`` runs 500 (issue 8, R10) and
  ``bench/RESULTS.md`` has its latest results. Explore with ``TEST_FUZZ_SEED=n``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from urllib.parse import quote

import pytest
import requests

from procs import ROOT
from tengo_jobs import Jobs
from tengo_jobs.process.web import create_app
from tengo_jobs.testing import JobsTester, make_test_runtime
from webhelpers import PASSWORD, bearer, live_stack

pytestmark = pytest.mark.integration

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")

DEEP = "[" * 1000 + "]" * 1000
HOSTILE_TEXT = [
    "", "\x00", "a\x00b", "\ud800", "x\udfffy",  # NUL (PostgreSQL) and lone surrogates (UTF-8)
    "²", "١٢٣", "１２", "9" * 20, "-" + "9" * 20, "1" * 4300, "1e999", "NaN", "-Infinity",
    "0x10", "1_000", DEEP, "{}", "[]", "null", "true", "x" * 5000, "\ufeff", "\u202e",
    "' OR 1=1 --", "../../etc/passwd", "%00", "%ED%A0%80", "<script>alert(1)</script>",
    "2026-13-45T99:99:99Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999-14:00",
]
# JSON values as raw text (some are not JSON a serializer would write)
HOSTILE_JSON = [
    DEEP, "[" * 65 + "]" * 65, "1" + "0" * 30, "-1" + "0" * 30, "1" * 4301, "1e999", "-1e999",
    "NaN", "Infinity", "1.7976931348623157e309", "-1", "0", "true", "null", "{}", "[]",
    '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udfff\\ud800"', json.dumps("x" * 5000),
    json.dumps({"\u0000": 1}), '{"\\ud800": 1}', '{"a": ' + DEEP + "}",
]
HOSTILE_BODIES = [DEEP, '{"name": "x", "data": {"a": ' + DEEP + "}}", "[" + DEEP + "]",
                  '{"name": "x", "data": {"n": 1e999}}', '{"name": "x", "data": {"n": NaN}}',
                  '"\\u0000"', "\x00", "{", '{"name": "\\ud800"}', b"\xff\xfe\x00".decode("latin-1"),
                  "[" + ",".join(['{"name": "x"}'] * 10) + "]" + "]" * 5000]


def _url_text(value: str) -> str:
    """``value`` for a URL: percent-encoded, a lone surrogate as its UTF-8-like bytes."""
    if value.startswith("%"):
        return value  # already encoded, sent as is
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _body_fields(schema: dict) -> set[str]:
    found: set[str] = set()
    for part in [schema, *schema.get("oneOf", []), schema.get("items", {})]:
        found |= set(part.get("properties", {}))
        for sub in part.get("oneOf", []):
            found |= _body_fields(sub)
        if "items" in part and part is not schema.get("items"):
            found |= _body_fields(part["items"])
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def hostile_web(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'fuzz.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    # development: any event key is accepted, so hostile keys and bodies reach validation
    runtime = make_test_runtime(url, env="development", dashboard_password=PASSWORD)
    jobs = Jobs("fuzz-app", runtime=runtime)

    @jobs.function("fuzz-fn", event="fuzz.go")
    def fn(ctx, step):
        return step.run("echo", lambda: ctx.event.data)

    [event_id] = runtime.send({"name": "fuzz.go", "data": {"k": 1}})
    JobsTester(runtime).run_until_idle()
    [run] = runtime.store.queries.get_event(event_id)["runs"]
    yield create_app(runtime).test_client(), {"event_id": event_id, "run_id": run["id"],
                                              "event_key": "any-key"}
    runtime.close()


def test_hostile_values_in_every_parameter_of_every_operation_are_never_a_5xx(hostile_web, caplog):
    client, ids = hostile_web
    document = client.get("/openapi.json", headers=bearer()).get_json()
    sent: dict[str, int] = {}
    failures = []

    def send(method, path_template, path_values, query="", body=None, where=""):
        path = path_template
        for name, value in path_values.items():
            path = path.replace("{" + name + "}", value)
        headers = bearer()
        kwargs = {}
        if body is not None:
            kwargs = dict(data=body.encode("utf-8", "surrogatepass"), content_type="application/json")
        answer = client.open(path + (f"?{query}" if query else ""), method=method.upper(),
                             headers=headers, **kwargs)
        key = f"{method.upper()} {path_template}"
        sent[key] = sent.get(key, 0) + 1
        if answer.status_code >= 500:
            failures.append((key, where, answer.status_code, answer.get_data(as_text=True)[:200]))

    for path_template, operations in document["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            base_path = {p["name"]: _url_text(ids.get(p["name"], "X")) for p in params
                         if p["in"] == "path"}
            body_schema = (operation.get("requestBody", {}).get("content", {})
                           .get("application/json", {}).get("schema"))
            base_body = '{"name": "fuzz.go", "data": {}}' if path_template.startswith(("/e/", "/api/events")) \
                else ("{}" if body_schema else None)
            send(method, path_template, base_path, body=base_body, where="baseline")
            for value in HOSTILE_TEXT:  # a parameter the operation does not declare
                send(method, path_template, base_path, query=f"{_url_text(value)}={_url_text(value)}",
                     body=base_body, where=f"undeclared {value[:20]!r}")
            for param in params:
                for value in HOSTILE_TEXT:
                    where = f"{param['in']} {param['name']}={value[:20]!r}"
                    if param["in"] == "path":
                        send(method, path_template, {**base_path, param["name"]: _url_text(value)},
                             body=base_body, where=where)
                    elif param["in"] == "query":
                        send(method, path_template, base_path,
                             query=f"{param['name']}={_url_text(value)}", body=base_body, where=where)
                # a repeated parameter
                send(method, path_template, base_path, query=f"{param['name']}=1&{param['name']}=2",
                     body=base_body, where=f"repeated {param['name']}")
            if body_schema is None:
                continue
            for body in HOSTILE_BODIES:
                send(method, path_template, base_path, body=body, where=f"body {body[:20]!r}")
            for field in sorted(_body_fields(body_schema)):
                for value in HOSTILE_JSON:
                    template = {"name": "fuzz.go", "data": {}} if base_body != "{}" else {}
                    template[field] = "__HOSTILE__"
                    body = json.dumps(template).replace('"__HOSTILE__"', value)
                    where = f"body {field}={value[:20]!r}"
                    send(method, path_template, base_path, body=body, where=where)
                    if base_body != "{}":  # the intake takes a batch too
                        send(method, path_template, base_path, body=f"[{body}]", where=where + " batch")

    assert not failures, failures[:20]
    operations = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    assert set(sent) == operations
    assert min(sent.values()) > len(HOSTILE_TEXT) and sum(sent.values()) > 1500, sent
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors][:5]


def _requests_per_operation(access_log: str, paths: dict) -> dict[str, dict[str, int]]:
    """From gunicorn's access log: requests and 5xx answers per operation of the document."""
    patterns = [(f"{method.upper()} {template}",
                 re.compile(method.upper() + " " + re.sub(r"\\{[^}]+\\}", "[^/?]+", re.escape(template))
                            + r"(\?\S*)? "))
                for template, operations in paths.items() for method in operations]
    counts = {name: {"requests": 0, "5xx": 0} for name, _ in patterns}
    for line in access_log.splitlines():
        request = re.search(r'"((?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+) HTTP/[\d.]+" (\d{3}) ', line)
        if not request:
            continue
        for name, pattern in patterns:
            if pattern.fullmatch(request.group(1) + " "):
                counts[name]["requests"] += 1
                counts[name]["5xx"] += request.group(2).startswith("5")
                break
    return counts


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
        tmp_path, postgres_url, redis_url, queue_name):
    examples = os.environ.get("TEST_FUZZ_EXAMPLES", "25")
    timeout = float(os.environ.get("TEST_FUZZ_TIMEOUT", "240"))
    # development: any event key is accepted, so generated events reach validation and storage
    with live_stack(tmp_path, postgres_url, redis_url, queue_name, worker=False,
                    TENGO_ENV="development") as (base, procs):
        # a few runs, so the operations on one run (reached through the document's links in
        # the stateful phase) find real ones instead of 404s only
        requests.post(f"{base}/e/fuzz-key", json=[{"name": "sdk.single", "data": {"i": i}}
                                                  for i in range(5)], timeout=10).raise_for_status()
        document = requests.get(f"{base}/openapi.json", headers=bearer(), timeout=10).json()
        out = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file",
             os.path.join(os.path.dirname(__file__), "schemathesis.toml"), "run", f"{base}/openapi.json",
             "--checks", CHECKS, "--max-examples", examples,
             "--phases", "examples,coverage,fuzzing,stateful",
             "--header", f"Authorization: Bearer {PASSWORD}", "--workers", "2",
             "--request-timeout", "10", "--seed", os.environ.get("TEST_FUZZ_SEED", "4"), "--no-color",
             "--suppress-health-check", "all"],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        server_log = procs[0].log()
    counts = _requests_per_operation(server_log, document["paths"])
    table = "\n".join(f"{name:45} {c['requests']:7} requests {c['5xx']:4} 5xx"
                      for name, c in counts.items())
    report_path = os.environ.get("TEST_FUZZ_REPORT") or str(tmp_path / "schemathesis.txt")
    with open(report_path, "w") as report_file:
        report_file.write(out.stdout + out.stderr + "\nrequests per operation (gunicorn's access log):\n"
                          + table + "\n")
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, f"full report: {report_path}\n{report}"
    assert "Traceback" not in server_log, server_log[-4000:]
    assert all(c["5xx"] == 0 for c in counts.values()), table
    assert all(c["requests"] > 0 for c in counts.values()), table
