"""What an edit changes: the key paths that differ, then a unified diff of proposed against edited JSON.

The operator confirms an edit on this view, so it shows every change and nothing else; both values come from the
agent (and the operator), so each line is cleaned and rendered as plain text with trusted theme styles.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Final

from textual.content import Content
from textual.widgets import Static

from .safe_text import clean, one_line

__all__ = ["MAX_DIFF_LINES", "DiffView", "changed_paths", "diff_content"]

MAX_DIFF_LINES: Final = 2_000
_MISSING: Final = object()
_STYLES: Final = {"+": "$text-success", "-": "$text-error", "@": "bold $text-accent"}


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """JSON Pointer paths where `after` differs from `before`: changed, added or removed keys and list items."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in [*before, *(k for k in after if k not in before)]:
            child = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            paths += changed_paths(before.get(key, _MISSING), after.get(key, _MISSING), child)
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p for i, (b, a) in enumerate(zip(before, after, strict=True)) for p in changed_paths(b, a, f"{path}/{i}")
        ]
    if before is _MISSING or after is _MISSING or type(before) is not type(after) or before != after:
        return [path or "/"]
    return []


def _at(value: Any, path: str) -> Any:
    """The value at JSON Pointer `path` (as `changed_paths` writes it), or _MISSING."""
    if path in ("", "/"):
        return value
    for token in path.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
    return value


def _brief(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    if isinstance(value, dict | list):
        return "{…}" if isinstance(value, dict) else "[…]"
    return one_line(json.dumps(value, ensure_ascii=False, default=repr), 60)


def _lines(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False, default=repr).splitlines()


def diff_content(before: Any, after: Any, *, values: bool = False, max_lines: int = MAX_DIFF_LINES) -> Content:
    """The changed paths, then the unified diff (capped at `max_lines` lines, the cut announced).

    `values`: each changed path also says what it was and what it is now ("/amount 14222.85 → 99999.99").
    """
    paths = changed_paths(before, after)
    if values:
        named = [f"{one_line(p, 60)} {_brief(_at(before, p))} → {_brief(_at(after, p))}" for p in paths[:12]]
        shown = "; ".join(named)
    else:
        shown = ", ".join(one_line(p, 60) for p in paths[:12])
    shown += f" (+{len(paths) - 12} more)" if len(paths) > 12 else ""
    parts: list[Content | tuple[str, str] | str] = [
        (f"{len(paths)} change{'s' if len(paths) != 1 else ''}: ", "bold"),
        (shown or "none", "bold $text-warning"),
        "\n",
    ]
    diff = list(difflib.unified_diff(_lines(before), _lines(after), "proposed", "edited", lineterm="", n=2))
    for line in diff[2 : max_lines + 2]:  # [2:]: the ---/+++ file header says nothing here
        parts += [(clean(line, multiline=False), _STYLES.get(line[:1], "$foreground-muted")), "\n"]
    if len(diff) - 2 > max_lines:
        parts.append((f"… {len(diff) - 2 - max_lines:,} more diff lines not shown", "bold $text-warning"))
    return Content.assemble(*parts)


class DiffView(Static):
    """A diff of two JSON values; `show(before, after)` replaces it."""

    DEFAULT_CSS = """
    DiffView {
        height: auto;
        background: $boost;
        padding: 0 1;
    }
    """

    def show(self, before: Any, after: Any, *, values: bool = False, max_lines: int = MAX_DIFF_LINES) -> None:
        self.update(diff_content(before, after, values=values, max_lines=max_lines))
