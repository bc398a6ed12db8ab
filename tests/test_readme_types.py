"""``mypy --strict`` passes on the README's Python examples (and on a module pinning what
the public types promise: :data:`TYPING_CONTRACT`).

Each ```python block of README.md becomes a module of its own in a temporary directory,
after a prelude defining what the examples leave to the reader (the functions they call,
a ``jobs`` client, a ``run_id``). A run of decorators with no function under them (the flow
control list) gets a stub handler under each. mypy reads the package from this checkout
(``MYPYPATH``) and reports only the examples' errors (``--follow-imports=silent``: the
package's own are setup.cfg's business, checked by ``.ci/run``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = '''\
# what the README's examples leave to the reader
from __future__ import annotations

import asyncio
from decimal import Decimal

import inngest
import pydantic

from tengo_jobs import AsyncStep, Context, Jobs, RunResult, Step

jobs = Jobs("readme")
run_id = "01JREADMERUN00000000000000"
key = "an-event-key"


def load_user(user_id: str) -> dict[str, str]:
    return {"id": user_id, "email": f"{user_id}@example.com"}


def send_email(to: str) -> str:
    return f"sent to {to}"


def charge(amount: Decimal) -> Decimal:
    return amount
# -- the README's block --
'''

#: What the types promise beyond the README's examples: ``step.run`` returns its function's
#: type (awaited, for an async handler, whether the function is async or plain), checks its
#: arguments against the function's, and the decorator keeps the handler's signature.
TYPING_CONTRACT = '''\
from typing import assert_type

from tengo_jobs import FunctionDef


async def load_user_async(user_id: str) -> dict[str, str]:
    return load_user(user_id)


@jobs.function("typed-sync", event="typed.sync")
def typed_sync(ctx: Context, step: Step) -> int:
    assert_type(step.run("load", load_user, "u1"), dict[str, str])
    step.run("wrong", load_user, 1)  # type: ignore[arg-type]
    return 1


@jobs.function("typed-async", event="typed.async")
async def typed_async(ctx: Context, step: AsyncStep) -> None:
    assert_type(await step.run("plain", load_user, "u1"), dict[str, str])
    assert_type(await step.run("async", load_user_async, "u1"), dict[str, str])


declared: FunctionDef[[Context, Step], int] = typed_sync
assert_type(typed_sync(Context.__new__(Context), Step.__new__(Step)), int)
'''

_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def readme_blocks() -> list[tuple[int, str]]:
    """(line number, dedented code) of each ```python block of README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 1, textwrap.dedent(m.group(2)))
            for m in _BLOCK.finditer(text)]


def with_stub_handlers(code: str) -> str:
    """Under each top-level decorator that has no ``def`` before the next one (or the end),
    a stub handler."""
    out: list[str] = []
    pending = False
    for line in code.splitlines():
        if line.startswith("@") and pending:
            out.append(f"def _handler_{len(out)}(ctx: Context, step: Step) -> None: ...")
        if line.startswith("@"):
            pending = True
        elif line.startswith(("def ", "async def ")):
            pending = False
        out.append(line)
    if pending:
        out.append(f"def _handler_{len(out)}(ctx: Context, step: Step) -> None: ...")
    return "\n".join(out) + "\n"


def test_the_readme_has_python_examples_to_check():
    blocks = readme_blocks()
    assert len(blocks) >= 5
    assert any("async def" in code for _, code in blocks)


def test_stub_handlers_go_under_decorators_without_a_function():
    code = '@jobs.function("a", event="x")\n@jobs.function("b", event="y",\n    retries=1)\n'
    stubbed = with_stub_handlers(code)
    assert stubbed.count("def _handler_") == 2
    assert with_stub_handlers("@d\ndef f() -> None: ...\n").count("_handler_") == 0


@pytest.mark.timeout(900)
def test_mypy_strict_passes_on_the_readme_examples(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    files = []
    for line, code in readme_blocks():
        path = tmp_path / f"readme_line_{line}.py"
        path.write_text(PRELUDE + with_stub_handlers(code), encoding="utf-8")
        files.append(path)
    contract = tmp_path / "typing_contract.py"
    contract.write_text(PRELUDE + TYPING_CONTRACT, encoding="utf-8")
    files.append(contract)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nfollow_imports = silent\n"
                      "python_version = 3.11\n", encoding="utf-8")
    env = dict(os.environ, MYPYPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary",
         "--cache-dir", str(tmp_path / ".mypy_cache"), *map(str, files)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=850)
    report = done.stdout + done.stderr
    # point at README.md's lines: the prelude's length is known
    offset = PRELUDE.count("\n")
    report = re.sub(r"readme_line_(\d+)\.py:(\d+)",
                    lambda m: f"README.md block at line {m.group(1)}, its line "
                              f"{int(m.group(2)) - offset}", report)
    assert done.returncode == 0, report
