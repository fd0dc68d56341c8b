"""The schema, as a list of migrations: MIGRATIONS[n] takes a database from version n to n + 1.

A migration is never edited once it has shipped; a change to the schema is a new migration appended at the end.
Each runs in its own transaction together with the `PRAGMA user_version` that records it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from storage import audit

# The queue's default order, most urgent first; the partial index below serves it.
URGENCY_ORDER = "risk_order, expires_sort, created_at, source, id"


def _v1(db: sqlite_utils.Database) -> None:
    """Items cache, decisions outbox, quarantine, cursors, audit trail."""
    db.table("items").create(
        {
            "source": str,
            "id": str,
            "state": str,  # pending | decided | removed
            "removed_reason": str,
            "kind": str,
            "agent": str,
            "workflow": str,
            "action_name": str,
            "risk": str,
            "risk_order": int,  # 0 = critical: ascending order is most urgent first
            "confidence": float,
            "created_at": float,
            "expires_at": float,
            "expires_sort": float,
            "digest": str,
            "payload": str,
            "snapshot": int,
            "first_seen_at": float,
            "updated_at": float,
        },
        pk=("source", "id"),
        not_null={"state", "kind", "agent", "action_name", "risk", "digest", "payload"},
    )
    db.execute(
        f"CREATE INDEX items_urgency ON items({URGENCY_ORDER}, kind, agent, action_name, risk, confidence, expires_at)"
        " WHERE state = 'pending'"
    )
    db.table("decisions").create(
        {
            "id": str,
            "source": str,
            "item_id": str,
            "item_digest": str,
            "verdict": str,
            "edited": str,
            "edited_digest": str,
            "reason_code": str,
            "comment": str,
            "operator": str,
            "decided_at": str,
            "sync_state": str,
            "attempts": int,
            "next_attempt_at": float,
            "outcome": str,
            "detail": str,
            "response": str,
            "updated_at": float,
            "seen": int,  # the operator has been shown the final outcome
        },
        pk="id",
        not_null={"source", "item_id", "item_digest", "verdict", "operator", "decided_at", "sync_state"},
    )
    # One decision per item version: a double key press or a replayed write cannot create a second one.
    db.execute("CREATE UNIQUE INDEX decisions_one_per_version ON decisions(source, item_id, item_digest)")
    db.execute("CREATE INDEX decisions_outbox ON decisions(sync_state, next_attempt_at)")
    db.table("quarantine").create(
        {"source": str, "item_id": str, "reason": str, "excerpt": str, "seen_at": float, "times": int},
        pk=("source", "item_id"),
    )
    db.table("cursors").create({"source": str, "cursor": str, "snapshot": int}, pk="source")
    audit.create_table(db.conn)


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1,)
SCHEMA_VERSION = len(MIGRATIONS)
