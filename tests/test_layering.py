"""The layering rules of design.md section 3, checked on every import statement.

The full rules, indirect imports included, are import-linter contracts in pyproject.toml (`make lint` runs them);
the last test here runs them too, so the test suite alone catches a broken layer.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "storage": {"textual", "httpx", "console", "widgets", "rich"},
    "widgets": {"httpx", "sqlite3", "sqlite_utils", "console"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_forbidden(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = {str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package]) for path in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"{package}/ must not import {sorted(FORBIDDEN[package])}"


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import httpx.client\nfrom console.tui.app import x\nfrom . import y\ndef f():\n    import sqlite3\n"
    )
    assert imported_modules(sample) == {"httpx", "console", "sqlite3"}


def test_the_import_contracts_hold() -> None:
    run = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's packages, not an installed copy's
    args = [*run, "--no-cache", "--no-logo", "pyproject.toml"]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
