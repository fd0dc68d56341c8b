"""How far a two-person item has come (PROTOCOL.md "Two-person items"): "1 of 2 — approved by alice", for the detail's
header and the queue's row. Operator names come from the source: cleaned and shown as plain text, never markup."""

from __future__ import annotations

from datetime import tzinfo

from textual.content import Content

from storage.records import Item

from .safe_text import one_line
from .timefmt import zoned_time

__all__ = ["approvals_content", "approvals_mark"]

_BADGE = "bold reverse $text-warning"
_LABEL = "$foreground-muted"
_CLAIM = "italic $foreground-muted"


def approvals_mark(required: int, done: int) -> str:
    """The queue row's mark: "1 of 2" for a two-person item (required > 1), "" otherwise."""
    return f"{done} of {required}" if required > 1 else ""


def approvals_content(item: Item, operator: str | None, zone: tzinfo | None) -> Content | None:
    """The detail's line for a two-person item: progress, who approved and when, and what the operator may still do;
    None for an ordinary item."""
    if item.approvals_required <= 1:
        return None
    done = len(item.approvals)
    parts: list[Content | tuple[str, str] | str] = [
        (f" {done} of {item.approvals_required} ", _BADGE),
        ("  two-person rule: ", _LABEL),
        (f"{item.approvals_required} different operators must approve", "bold"),
    ]
    for approval in item.approvals:
        verb = "edited and approved" if approval.verdict == "edit" else "approved"
        parts += ["\n", (f"  ✓ {verb} by ", _LABEL), Content(one_line(approval.operator, 100))]
        parts += [(" at ", _LABEL), zoned_time(approval.at, zone)]
    if operator is not None and item.approved_by(operator) is not None:
        parts += ["\n", ("  you approved it: another operator must approve it (a reject still ends it)", _CLAIM)]
    elif done == item.approvals_required - 1:
        parts += ["\n", ("  your approval completes it: the action then runs", _CLAIM)]
    return Content.assemble(*parts)
