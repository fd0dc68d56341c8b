"""Labels stored by an older version, raised to the current one by a migration (storage/schema.py)."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from storage.labels import (
    EXPIRED,
    LABEL_VERSION,
    Label,
    add_version_2_columns,
    decision_outcome,
    item_inputs,
    record_json,
)
from storage.records import Item


def upgrade_labels_table(db: sqlite_utils.Database) -> None:
    """Version 2 of labels (migration v6): an `outcome` column, and every stored record raised to version 2.

    What the console still holds is filled in: the outcome from the decision's sync state; inputs and reasoning from
    the cached item when it is still that version. What it cannot know (a trace: version 1 never kept one) stays null
    and is named in the record's `unknown`.
    """
    add_version_2_columns(db)
    rows = db.execute(
        "SELECT l.label_id, l.record, d.sync_state, d.outcome, i.payload FROM labels l"
        " LEFT JOIN decisions d ON d.id = l.decision_id"
        " LEFT JOIN items i ON i.source = l.source AND i.id = l.item_id AND i.digest = l.item_digest"
    ).fetchall()
    for label_id, record, sync_state, answer, payload in rows:
        label = Label.model_validate_json(record)
        if label.label_version >= 2:
            continue
        update: dict[str, Any] = {"label_version": LABEL_VERSION, "trace": None}
        if label.verdict == EXPIRED:
            update["outcome"] = "expired"
        else:
            update["outcome"] = decision_outcome(sync_state or "", answer)
        unknown = ["trace"]
        if payload is not None:
            item = Item.model_validate_json(payload)
            update["inputs"] = item_inputs(item)
            update["reasoning"] = item.context.reasoning or None
            update["trace"] = item.trace
            unknown = [] if item.trace is not None else ["trace"]
        else:
            unknown += ["inputs", "reasoning"]
        update["unknown"] = unknown
        upgraded = label.model_copy(update=update)
        db.execute(
            "UPDATE labels SET record = ?, outcome = ? WHERE label_id = ?",
            (record_json(upgraded.model_dump(mode="json")), upgraded.outcome, label_id),
        )
    # Labels settled before version 2 enter the settle log in the order they were decided.
    db.execute(
        "INSERT INTO labels_settled(label_id) SELECT label_id FROM labels"
        " WHERE outcome IS NOT NULL AND outcome != 'pending' ORDER BY decided_at, label_id"
    )
