"""Schemathesis fuzzes the API described by ``/openapi.json`` on a live gunicorn server.

Every operation gets generated valid and invalid input (bounded: a modest number of
examples per operation). Checks: no 5xx, status codes, content types and bodies as
the document declares them, and schema-invalid input rejected with a 4xx. The seed is
fixed so CI is reproducible; explore with ``TEST_FUZZ_SEED=n TEST_FUZZ_EXAMPLES=200``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from procs import ROOT
from webhelpers import PASSWORD, live_stack

pytestmark = pytest.mark.integration

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
        tmp_path, postgres_url, redis_url, queue_name):
    # development: any event key is accepted, so generated events reach validation and storage
    with live_stack(tmp_path, postgres_url, redis_url, queue_name, worker=False,
                    TENGO_ENV="development") as (base, procs):
        out = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json",
             "--checks", CHECKS, "--max-examples", os.environ.get("TEST_FUZZ_EXAMPLES", "25"), "--phases", "examples,coverage,fuzzing",
             "--header", f"Authorization: Bearer {PASSWORD}", "--workers", "2",
             "--request-timeout", "10", "--seed", os.environ.get("TEST_FUZZ_SEED", "4"), "--no-color",
             "--suppress-health-check", "all"],
            cwd=ROOT, capture_output=True, text=True, timeout=240)
        server_log = procs[0].log()
    (tmp_path / "schemathesis.txt").write_text(out.stdout + out.stderr)
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, f"full report: {tmp_path / 'schemathesis.txt'}\n{report}"
    assert "Traceback" not in server_log, server_log[-4000:]
