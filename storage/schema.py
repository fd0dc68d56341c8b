"""The schema, as a list of migrations: MIGRATIONS[n] takes a database from version n to n + 1.

A migration is never edited once it has shipped; a change to the schema is a new migration appended at the end.
Each runs in its own transaction together with the `PRAGMA user_version` that records it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from storage import audit, feedback, label_upgrade, labels

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


def _v2(db: sqlite_utils.Database) -> None:
    """Undo, claims, and an index for each queue order (written out here: a shipped migration never changes)."""
    # Undo: an undone decision stays (the audit refers to it) but no longer holds its item version, so the operator
    # can decide again.
    db.execute("DROP INDEX decisions_one_per_version")
    db.execute(
        "CREATE UNIQUE INDEX decisions_one_per_version ON decisions(source, item_id, item_digest)"
        " WHERE sync_state != 'undone'"
    )
    # Claims: who holds an item, outside the digest, so it changes without a new version.
    db.execute("ALTER TABLE items ADD COLUMN claimed_by TEXT")
    db.execute("UPDATE items SET claimed_by = json_extract(payload, '$.claimed_by')")
    pending = " WHERE state = 'pending'"
    db.execute("CREATE INDEX items_age ON items(created_at, source, id)" + pending)
    db.execute("CREATE INDEX items_confidence ON items(ifnull(confidence, 2.0), created_at, source, id)" + pending)
    db.execute("CREATE INDEX items_agent ON items(agent, risk_order, expires_sort, created_at, source, id)" + pending)
    db.execute("CREATE INDEX items_source ON items(source, risk_order, expires_sort, created_at, id)" + pending)
    # Grouped views: the group column, then the order within each group.
    db.execute("CREATE INDEX items_source_age ON items(source, created_at, id)" + pending)
    db.execute(
        "CREATE INDEX items_source_confidence ON items(source, ifnull(confidence, 2.0), created_at, id)" + pending
    )
    db.execute(
        "CREATE INDEX items_source_agent ON items(source, agent, risk_order, expires_sort, created_at, id)" + pending
    )
    db.execute("CREATE INDEX items_agent_age ON items(agent, created_at, source, id)" + pending)
    db.execute(
        "CREATE INDEX items_agent_confidence ON items(agent, ifnull(confidence, 2.0), created_at, source, id)" + pending
    )
    # Free-text filter: one folded text per item, so a word is one LIKE over one column, not one per field.
    db.execute("ALTER TABLE items ADD COLUMN search TEXT")
    db.execute(
        "UPDATE items SET search = lower(agent || ' ' || action_name || ' ' || source || ' ' || ifnull(workflow, '')"
        " || ' ' || id || ' ' || kind || ' ' || risk)"
    )
    db.execute("CREATE INDEX items_search ON items(search)" + pending)
    # Alerts: items first seen since the last look, and deadlines about to pass.
    db.execute("CREATE INDEX items_first_seen ON items(first_seen_at)" + pending)
    db.execute("CREATE INDEX items_deadline ON items(expires_sort)" + pending)


def _v3(db: sqlite_utils.Database) -> None:
    """Labels: one per decision or expiry, the unit of feedback, with their own sync outbox."""
    labels.create_labels_table_v3(db)


def _v4(db: sqlite_utils.Database) -> None:
    """Problems stay until the operator acknowledges them: quarantined items get the flag decisions have (`seen`)."""
    db.execute("ALTER TABLE quarantine ADD COLUMN acknowledged INTEGER NOT NULL DEFAULT 0")


def _v5(db: sqlite_utils.Database) -> None:
    """Confidence order: an item without a confidence is the least sure, so it sorts first, not last."""
    pending = " WHERE state = 'pending'"
    for name in ("items_confidence", "items_source_confidence", "items_agent_confidence"):
        db.execute(f"DROP INDEX {name}")
    db.execute("CREATE INDEX items_confidence ON items(ifnull(confidence, -1.0), created_at, source, id)" + pending)
    db.execute(
        "CREATE INDEX items_source_confidence ON items(source, ifnull(confidence, -1.0), created_at, id)" + pending
    )
    db.execute(
        "CREATE INDEX items_agent_confidence ON items(agent, ifnull(confidence, -1.0), created_at, source, id)"
        + pending
    )


def _v6(db: sqlite_utils.Database) -> None:
    """Labels version 2 (trace, inputs, reasoning, outcome); when each item version was first shown (an expiry's label
    says whether the operator had it on screen); and the feedback outbox of the configured sinks."""
    db.execute("ALTER TABLE items ADD COLUMN first_shown_at REAL")
    label_upgrade.upgrade_labels_table(db)
    feedback.create_feedback_table(db)


def _v7(db: sqlite_utils.Database) -> None:
    """Full-text search: a trigram FTS5 index over each item's search text, summary and reasoning, so a word of three
    characters or more is found without reading every row, in the agent's own words too.

    Contentless (the text is in `items`): Items.apply_changes writes it in the transaction that stores each item version
    (storage/items.py); nothing else changes what it holds. Written out in SQL, not through Table.enable_fts: that
    indexes columns of the table, and the summary and reasoning are inside each item's payload.
    """
    db.execute("CREATE VIRTUAL TABLE items_fts USING fts5(search, summary, reasoning, tokenize='trigram', content='')")
    db.execute(
        "INSERT INTO items_fts(rowid, search, summary, reasoning) SELECT rowid, search,"
        " json_extract(payload, '$.context.summary'), json_extract(payload, '$.context.reasoning') FROM items"
    )


def _v8(db: sqlite_utils.Database) -> None:
    """`timed_out`: the name of a deadline that passed before anyone decided (labels) or before a decision arrived
    (decisions), instead of `expired`; never a reject (storage/label_upgrade.py)."""
    label_upgrade.rename_expired_to_timed_out(db)


def _v9(db: sqlite_utils.Database) -> None:
    """Who holds a claim, for `claimed:NAME` (the "Mine" view and its count): the few claimed pending items only."""
    db.execute(
        "CREATE INDEX IF NOT EXISTS items_claimed ON items(claimed_by)"
        " WHERE state = 'pending' AND claimed_by IS NOT NULL"
    )


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9)
SCHEMA_VERSION = len(MIGRATIONS)
