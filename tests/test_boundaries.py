"""The architecture's rules, checked: the engine stands alone, and the store owns the SQL."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

from procs import ROOT, process_env

ENGINE = ROOT / "tengo_jobs"
SQL = re.compile(r"\b(INSERT INTO|DELETE FROM|UPDATE \"?tj_|SELECT .* FROM \"?tj_)", re.I)


def _engine_modules() -> list[str]:
    names = []
    for path in sorted(ENGINE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_engine_module_imports_without_the_domain_and_pulls_none_of_it_in():
    code = ("import importlib, sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('tengo_lugar', 'actors', 'resend'):\n"
            "            raise ImportError(f'the engine imported {name}')\n"
            "sys.meta_path.insert(0, Block())\n"
            f"for m in {_engine_modules()!r}:\n"
            "    importlib.import_module(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tengo_lugar', 'actors', 'resend')]\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], env=process_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_engine_reads_no_domain_setting():
    text = (ENGINE / "config.py").read_text()
    for name in ("RESEND_", "PAYMENT_", "EMAIL_FROM", "ADMIN_USER_ID", "Tengo Lugar"):
        assert name not in text, name


def test_no_sql_on_the_system_tables_outside_the_store():
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if path.relative_to(ENGINE).parts[0] == "store":
            continue
        text = path.read_text()
        if SQL.search(text) or "Row.update(" in text or "Row.insert" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_function_local_import_of_the_engine():
    """Imports sit at the top of each module: none hides inside a function to dodge a cycle."""
    offenders = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.level or "tengo_jobs" in (inner.module or "")):
                        offenders.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert offenders == []


def test_every_engine_error_derives_from_the_one_root():
    import tengo_jobs.errors as errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, BaseException)
               and v.__module__ == errors.__name__]
    roots = {c for c in classes if not issubclass(c, (errors.TengoJobsError, errors.Interrupt))}
    assert roots == set()


def test_the_engine_package_does_not_depend_on_resend():
    requirements = (ROOT / "setup.cfg").read_text()
    assert "resend" in requirements  # the app needs it ...
    assert not [p for p in ENGINE.rglob("*.py") if re.search(r"^\s*(import|from) resend", p.read_text(), re.M)]
