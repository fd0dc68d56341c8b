"""Labels stored by an older version, raised to the current one by a migration (storage/schema.py)."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from storage.labels import (
    LABEL_VERSION,
    TIMED_OUT,
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
        label = Label.model_validate(timed_out_names(json.loads(record)))
        if label.label_version >= 2:
            continue
        update: dict[str, Any] = {"label_version": LABEL_VERSION, "trace": None}
        if label.verdict == TIMED_OUT:
            update["outcome"] = TIMED_OUT
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


def timed_out_names(record: dict[str, Any]) -> dict[str, Any]:
    """A label record with the names of schema v8: an expiry's verdict and outcome `expired` are `timed_out`."""
    renamed = dict(record)
    for name in ("verdict", "outcome"):
        if renamed.get(name) == "expired":
            renamed[name] = TIMED_OUT
    return renamed


def rename_expired_to_timed_out(db: sqlite_utils.Database) -> None:
    """Migration v8: `timed_out` is the outcome operators see and labels carry when a deadline passed first; stored
    decisions and labels that said `expired` are rewritten. The audit trail keeps its records as they were written
    (it is hash-chained: a record rewritten would break the chain), so older audit records still say `expired`."""
    db.execute("UPDATE decisions SET outcome = 'timed_out' WHERE outcome = 'expired'")
    rows = db.execute(
        "SELECT label_id, record FROM labels WHERE verdict = 'expired' OR outcome = 'expired'"
        " OR json_extract(record, '$.outcome') = 'expired'"
    ).fetchall()
    for label_id, record in rows:
        renamed = timed_out_names(json.loads(record))
        db.execute(
            "UPDATE labels SET record = ?, verdict = ?, outcome = ? WHERE label_id = ?",
            (record_json(renamed), renamed["verdict"], renamed.get("outcome"), label_id),
        )
