"""The architecture's rules, checked: the engine stands alone, the store owns the SQL, and
the layers import only downward."""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest

from procs import ROOT, process_env

ENGINE = ROOT / "tengo_jobs"
SQL = re.compile(r"\b(INSERT INTO|DELETE FROM|UPDATE \"?tj_|SELECT .* FROM \"?tj_)", re.I)


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _engine_modules() -> list[str]:
    return [_module_name(path) for path in sorted(ENGINE.rglob("*.py"))]


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


# Bottom to top. A module may import its own layer and the ones below, never one above.
# ``client.py`` sits above ``runtime.py`` because declaring a ``Jobs`` client binds the
# process runtime (``get_runtime``); the runtime composes the engine without the client.
LAYERS = (
    ("leaves", {"errors", "config", "clock", "ids", "durations", "serde", "logsafe", "tracing",
                "middleware"}),
    ("core", {"core"}),
    ("store", {"store"}),
    ("engine", {"engine"}),
    ("broker", {"broker"}),
    ("runtime", {"runtime"}),
    ("process", {"process"}),
    ("client", {"client"}),  # Jobs embeds the web app and the dev loop (init_app, launch)
    ("top", {"cli", "testing", ""}),  # "": the package's __init__, the public API
)
_LAYER_OF = {part: rank for rank, (_, parts) in enumerate(LAYERS) for part in parts}


def _layer(module: str) -> int | None:
    """The rank of a ``tengo_jobs`` module's layer (``None``: a module no layer names)."""
    parts = module.split(".")
    return _LAYER_OF.get(parts[1] if len(parts) > 1 else "")


def _imports(path: pathlib.Path, modules: set[str]):
    """``(line, imported tengo_jobs module)`` for every import in the file, wherever it sits
    (module level, under ``TYPE_CHECKING``, in a function), relative ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]  # one package up per extra dot
                base = f"{anchor}.{base}" if base else anchor
            # ``from pkg import mod`` imports the submodule; ``from mod import name`` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target == "tengo_jobs" or target.startswith("tengo_jobs."):
                yield node.lineno, target


def test_layers_import_only_downward():
    """leaves → core → store → engine → broker → runtime → client → process → cli/testing:
    every import of a higher layer is listed with its file and line."""
    paths = sorted(ENGINE.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    unplaced = sorted(m for m in modules if _layer(m) is None)
    assert unplaced == [], f"modules in no layer (add them to LAYERS): {unplaced}"
    runtime_imports = {t for _, t in _imports(ENGINE / "runtime.py", modules)}
    assert {"tengo_jobs.broker", "tengo_jobs.engine.executor"} <= runtime_imports  # resolved
    offenders = []
    for path in paths:
        rank = _layer(_module_name(path))
        for line, target in _imports(path, modules):
            if _layer(target) > rank:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {LAYERS[rank][0]} imports "
                                 f"{target} ({LAYERS[_layer(target)][0]})")
    if offenders:
        pytest.fail("upward imports (a layer imports only its own and those below):\n"
                    + "\n".join(offenders), pytrace=False)
