"""Labels for tests: decisions on factory items, a labels table on a real SQLite file, and a fast bulk generator."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from storage.labels import Label, build_label, create_labels_table, expiry_label, insert_label
from storage.records import Decision, Item, Verdict
from tests import factories

SHOWN = datetime(2026, 11, 21, 23, 1, tzinfo=UTC)
SECRET = "sk-live-canary-7f3a"  # a value redaction must remove from every export


def decision_on(item: Item, verdict: Verdict, *, edited: Any = None, seconds: float = 12.5, **extra: Any) -> Decision:
    """A decision taken `seconds` after the item was first shown (SHOWN)."""
    return factories.decision(item, verdict, edited=edited, decided_at=SHOWN + timedelta(seconds=seconds), **extra)


def open_labels_db(path: Path) -> sqlite3.Connection:
    """A real SQLite file with the labels table, in autocommit mode like the Store's connection."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    db = sqlite_utils.Database(conn)
    if not db["labels"].exists():
        create_labels_table(db)
    return conn


def sample_labels() -> list[Label]:
    """One of each: approve, reject, edit (approval with a nested secret), edit (escalation), expiry; two agents."""
    args = {"customer_id": "cus_1", "amount": 1250.0, "auth": {"API_KEY": SECRET, "scopes": [{"api_key": SECRET}]}}
    refund = factories.item("itm_refund", action={"name": "issue_refund", "args": args})
    reply = factories.item(
        "itm_reply",
        source="support",
        kind="escalation",
        agent="support-agent",
        workflow="replies",
        output="Dear customer, we refunded you twice.",
        confidence=0.41,
        risk="low",
        allowed_decisions=["approve", "reject", "edit"],
    )
    tag = factories.item("itm_tag", source="support", kind="escalation", agent="support-agent", output={"tag": "x"})
    edited_args = {**args, "amount": 625.0, "auth": {"API_KEY": SECRET + "-edited", "scopes": []}}
    return [
        build_label(refund, decision_on(refund, Verdict.approve, seconds=1), SHOWN),
        build_label(
            reply, decision_on(reply, Verdict.reject, seconds=2, reason_code="unsafe", comment="wrong tone"), SHOWN
        ),
        build_label(
            refund,
            decision_on(refund, Verdict.edit, edited=edited_args, seconds=3, reason_code="wrong_amount"),
            SHOWN,
        ),
        build_label(
            reply,
            decision_on(reply, Verdict.edit, edited="Dear customer, we refunded you once.", seconds=4),
            SHOWN,
        ),
        expiry_label(tag, SHOWN + timedelta(seconds=5)),
    ]


def store_labels(conn: sqlite3.Connection, labels: list[Label]) -> None:
    conn.execute("BEGIN")
    for label in labels:
        insert_label(conn, label)
    conn.execute("COMMIT")
