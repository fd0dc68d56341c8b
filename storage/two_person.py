"""Two-person items, here: an approval the source recorded as one of several (sync state `partial`) has no final
outcome of its own. Its label settles when the item leaves the source's queue, from what the removal says: applied
when the approval was among those that completed it, conflict_lost when someone rejected it (or an edit replaced what
was approved), timed_out when the deadline passed first, refused when the agent took the item back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from storage import labels
from storage.labels import LabelOutcome


def settle_partial_approvals(conn: sqlite3.Connection, source: str, item_id: str, state: str, detail: str) -> int:
    """The item left the queue (`state`, and the listing's removal `detail` as JSON): settle the labels of this
    console's approvals that were recorded as partial, and say in each decision's detail how it ended. Returns how
    many were settled."""
    rows = conn.execute(
        # Few decisions are partial (the outbox index finds them); each one's label by its decision id.
        "SELECT d.id, d.operator FROM decisions d JOIN labels l ON l.decision_id = d.id"
        " WHERE d.source = ? AND d.item_id = ? AND d.sync_state = 'partial' AND l.outcome = 'pending'",
        (source, item_id),
    ).fetchall()
    if not rows:
        return 0
    removal = _removal(detail)
    for decision_id, operator in rows:
        outcome, words = _ending(state, removal, operator)
        labels.settle_label(conn, decision_id, outcome)
        conn.execute(
            "UPDATE decisions SET detail = ?, updated_at = ? WHERE id = ?", (words[:2000], time.time(), decision_id)
        )
    return len(rows)


def _removal(detail: str) -> dict[str, Any]:
    try:
        value = json.loads(detail) if detail else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ending(state: str, removal: dict[str, Any], operator: str) -> tuple[LabelOutcome, str]:
    """The label outcome of `operator`'s partial approval, and the decision's detail in words."""
    if state == "expired":
        return "timed_out", "the deadline passed before another operator approved it"
    if state != "decided":
        return "refused", f"the item was {state} before another operator approved it"
    by = removal.get("decided_by") if isinstance(removal.get("decided_by"), str) else "another operator"
    verdict = removal.get("verdict")
    recorded = removal.get("approvals")
    approvers = [a.get("operator") for a in recorded if isinstance(a, dict)] if isinstance(recorded, list) else None
    if verdict in ("approve", "edit") and (approvers is None or operator in approvers):
        return "applied", f"completed by {by}: applied"
    if verdict == "reject":
        return "conflict_lost", f"rejected by {by} after your approval"
    return "conflict_lost", f"decided by {by} ({verdict}) without your approval counting"
