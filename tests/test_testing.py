"""tengo_jobs.testing: the helpers users test their functions with clean up after themselves."""

from __future__ import annotations

import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from procs import ROOT, process_env
from tengo_jobs.runtime import get_runtime, set_runtime
from tengo_jobs.testing import make_test_runtime

CHILD = """
from tengo_jobs import Jobs
from tengo_jobs.testing import JobsTester, make_test_runtime
runtime = make_test_runtime()
Jobs(app_id="t", runtime=runtime).function("f", event="go")(lambda ctx, step: step.run("s", lambda: 1))
tester = JobsTester(runtime)
tester.send({"name": "go"})
assert tester.run_until_idle()[0].status.value == "completed"
print(runtime.settings.database_url)
if CLOSE:
    runtime.close()
"""


def _database_dir(runtime) -> Path:
    return Path(urllib.parse.urlsplit(runtime.settings.database_url).path[1:]).parent


def test_closing_a_test_runtime_removes_its_database_files_and_its_current_status():
    runtime = make_test_runtime()
    runtime.send({"name": "anything"})
    directory = _database_dir(runtime)
    assert (directory / "jobs.db").exists()
    assert get_runtime() is runtime
    runtime.close()
    assert not directory.exists()
    previous = set_runtime(None)
    assert previous is None  # no longer the current runtime


@pytest.mark.parametrize("close", [True, False], ids=["closed", "never-closed"])
def test_a_process_using_make_test_runtime_leaves_no_temporary_files(tmp_path, close):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = subprocess.run([sys.executable, "-c", f"CLOSE = {close}\n{CHILD}"],
                            env=process_env(TMPDIR=str(tmp)), cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert str(tmp) in result.stdout  # the database was in the temporary directory...
    assert list(tmp.iterdir()) == []  # ...and nothing of it is left
