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

from storage.json_diff import MISSING, changed_paths, value_at

from .safe_text import clean, one_line

__all__ = ["MAX_DIFF_LINES", "DiffView", "diff_content"]

MAX_DIFF_LINES: Final = 2_000
_STYLES: Final = {"+": "$text-success", "-": "$text-error", "@": "bold $text-accent"}


def _brief(value: Any) -> str:
    if value is MISSING:
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
        named = [f"{one_line(p, 60)} {_brief(value_at(before, p))} → {_brief(value_at(after, p))}" for p in paths[:12]]
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
