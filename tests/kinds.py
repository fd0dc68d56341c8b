"""Which kind each test is, read from the code it reaches: `unit`, `functional` or `snapshot` (pytest markers).

- snapshot: compares the app against an SVG (the `snap_compare` fixture).
- functional: starts a real server (the demo fleet, a proxy, a hostile or LangGraph server), drives the app with
  Pilot, or runs the CLI or a child process.
- unit: everything else (it starts no server, no Pilot, no CLI or other process of its own): `make unit`, seconds.

A test's kind is found from its source and the source of everything it reaches by name inside tests/ (its fixtures,
the helpers and classes it calls, across tests/ modules), so a new test is sorted without a list to keep up to date.
Unit tests are also guarded while they run (`guard_unit`): one that listens on a socket or starts Pilot fails, naming
what it did, so a wrong sort shows up at once rather than as a slow `make unit`.
"""

from __future__ import annotations

import ast
import functools
import re
import socket
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent

# What a functional test does somewhere in the code it reaches.
FUNCTIONAL = re.compile(
    r"\brun_test\(|\bFleet\(|\w*Serve\(|HTTPServer\b|\w*Server\(|\w*Proxy\(|\bsubprocess\.|\bPopen\(|\bpty\.|\bos\.fork\("
    r"|\bstdio_client\("  # the MCP SDK spawns its server as a child process
)
SNAPSHOT_FIXTURE = "snap_compare"


@functools.cache
def _module(path: Path) -> tuple[dict[str, tuple[str, frozenset[str]]], dict[str, tuple[Path, str]]]:
    """A tests/ module's top-level definitions (name -> source, names it uses) and its imports from tests/."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path))
    defs: dict[str, tuple[str, frozenset[str]]] = {}
    imports: dict[str, tuple[Path, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            used = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            defs[node.name] = (ast.get_source_segment(text, node) or "", used)
        elif isinstance(node, ast.Assign):  # module constants that hold callables, e.g. `decide = partial(...)`
            used = frozenset(n.id for n in ast.walk(node.value) if isinstance(n, ast.Name))
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = (ast.get_source_segment(text, node) or "", used)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
            source = TESTS.joinpath(*node.module.split(".")[1:]).with_suffix(".py")
            if source.is_file():
                for alias in node.names:
                    imports[alias.asname or alias.name] = (source, alias.name)
    return defs, imports


def _reached_source(path: Path, names: set[str]) -> str:
    """The source of every definition in tests/ that `names` (in `path`'s module) reach, transitively."""
    conftest = TESTS / "conftest.py"
    pending = [(path, name) for name in names] + [(conftest, name) for name in names]
    seen: set[tuple[Path, str]] = set()
    parts: list[str] = []
    while pending:
        key = pending.pop()
        if key in seen:
            continue
        seen.add(key)
        module, name = key
        defs, imports = _module(module)
        if name in defs:
            source, used = defs[name]
            parts.append(source)
            pending.extend((module, other) for other in used)
        elif name in imports:
            pending.append(imports[name])
    return "\n".join(parts)


def kind_of(item: pytest.Item) -> str:
    if not isinstance(item, pytest.Function):
        return "unit"
    if SNAPSHOT_FIXTURE in item.fixturenames:
        return "snapshot"
    start = {item.cls.__name__ if item.cls else item.originalname, *item.fixturenames}
    return "functional" if FUNCTIONAL.search(_reached_source(Path(item.path), start)) else "unit"


def mark_kinds(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(kind_of(item))


def guard_unit(monkeypatch: pytest.MonkeyPatch, nodeid: str) -> None:
    """Make a unit test fail if it starts a server or Pilot: then it is functional and `kind_of` missed it."""
    from textual.app import App

    def refuse(what: str) -> Any:
        def refused(*_args: object, **_kwargs: object) -> None:
            pytest.fail(f"{nodeid} is sorted as a unit test but {what}: extend tests/kinds.py FUNCTIONAL")

        return refused

    monkeypatch.setattr(socket.socket, "listen", refuse("listens on a socket (a server)"))
    monkeypatch.setattr(App, "run_test", refuse("drives the app with Pilot"))
