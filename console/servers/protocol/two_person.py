"""The two-person rule (PROTOCOL.md "Two-person items"): an item with `approvals_required: 2` is applied on the
approval of a second, different operator. The first approval is recorded in the item (`approvals`, inside the digest,
so the item is listed again as a new version); the same operator cannot count twice; a reject by anyone ends it; an
edit changes the action, so it restarts the count with the editor's approval of the edited action.

Pure functions over one record's item; the handlers call them with the lock held.
"""

from __future__ import annotations

import copy
from typing import Any

MAX_APPROVALS = 10  # what `approvals_required` may ask for; more is refused when the agent posts the item


def approvals_required(item: dict[str, Any]) -> int:
    """How many distinct operators must approve the item (1: an ordinary item)."""
    value = item.get("approvals_required")
    return value if type(value) is int and 1 <= value <= MAX_APPROVALS else 1


def approvals(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The approvals recorded so far, oldest first."""
    value = item.get("approvals")
    return [a for a in value if isinstance(a, dict)] if isinstance(value, list) else []


def counts_once(item: dict[str, Any], verdict: str) -> bool:
    """True when this verdict on this item is one approval among several (not applied alone)."""
    return verdict != "reject" and approvals_required(item) > 1


def same_operator(item: dict[str, Any], operator: str) -> tuple[int, dict[str, Any]] | None:
    """409 `same_operator` when `operator` already approved the item: one person never counts twice."""
    for approval in approvals(item):
        if approval.get("operator") == operator:
            return 409, {
                "outcome": "same_operator",
                "detail": f"{operator} already approved this item at {approval.get('at')}; another operator must"
                " approve it",
                "approvals": approvals(item),
                "approvals_required": approvals_required(item),
            }
    return None


def completes(item: dict[str, Any], verdict: str) -> bool:
    """True when this approval is the last one needed (an edit never is: it restarts the count)."""
    return verdict == "approve" and len(approvals(item)) + 1 >= approvals_required(item)


def record_approval(item: dict[str, Any], operator: str, verdict: str, edited: Any, at: str) -> dict[str, Any]:
    """The item with this approval added: a new version (its digest is recomputed by the caller). An edit replaces
    what would run (the arguments, or an escalation's output) and drops the approvals of the action it replaced."""
    changed = copy.deepcopy(item)
    changed.pop("digest", None)
    entry = {"operator": operator, "at": at, "verdict": verdict}
    if verdict == "edit":
        if changed.get("kind") == "escalation":
            changed["output"] = copy.deepcopy(edited)
        else:
            changed["action"]["args"] = copy.deepcopy(edited)
        changed["approvals"] = [entry]
    else:
        changed["approvals"] = [*approvals(item), entry]
    return changed


def final_decision(item: dict[str, Any]) -> tuple[str, Any]:
    """What the completed item's outcome says ran: `edit` with the edited value when the count began with an edit."""
    recorded = approvals(item)
    if recorded and recorded[0].get("verdict") == "edit":
        value = item.get("output") if item.get("kind") == "escalation" else item["action"]["args"]
        return "edit", copy.deepcopy(value)
    return "approve", None


def partial_answer(item: dict[str, Any], item_id: str, key: str, digest: str) -> dict[str, Any]:
    """The 202 answer to an approval that is recorded and waits for another operator's."""
    recorded = approvals(item)
    return {
        "outcome": "partial",
        "detail": f"{len(recorded)} of {approvals_required(item)} approvals; another operator must approve it",
        "item_id": item_id,
        "decision_id": key,
        "approvals": recorded,
        "approvals_required": approvals_required(item),
        "digest": digest,
    }
