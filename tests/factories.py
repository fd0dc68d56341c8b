"""Build valid item payloads for storage and adapter tests (the demo fleet builds its own for end-to-end tests)."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from storage import schema
from storage.records import Decision, Item, Verdict, item_digest, now_utc, shown_part


def payload(item_id: str = "itm_1", **overrides: Any) -> dict[str, Any]:
    now = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    raw: dict[str, Any] = {
        "id": item_id,
        "kind": "approval",
        "agent": "billing-agent",
        "workflow": "refunds",
        "action": {"name": "issue_refund", "args": {"amount": 1250.0, "customer_id": "cus_1"}, "args_schema": None},
        "output": None,
        "context": {"summary": "double charge", "reasoning": "two captures", "evidence": [], "links": []},
        "confidence": 0.8,
        "risk": "high",
        "policy": "refunds over 500 need a human",
        "created_at": now.isoformat(),
        "expires_at": (now + timedelta(minutes=30)).isoformat(),
        "on_expiry": "reject",
        "allowed_decisions": ["approve", "reject", "edit"],
        "claimed_by": None,
    }
    raw.update(overrides)
    raw["digest"] = item_digest(shown_part(raw))
    return raw


def item(item_id: str = "itm_1", source: str = "billing", **overrides: Any) -> Item:
    return Item.model_validate({**payload(item_id, **overrides), "source": source})


def decision(
    it: Item,
    verdict: Verdict = Verdict.approve,
    *,
    edited: Any = None,
    decided_at: datetime | None = None,
    **extra: Any,
) -> Decision:
    """A decision on exactly this item version; an edit gets its edited digest."""
    return Decision(
        id=str(uuid.uuid4()),
        source=it.source,
        item_id=it.id,
        item_digest=it.digest,
        verdict=verdict,
        edited=edited,
        edited_digest=item_digest(edited) if verdict is Verdict.edit else None,
        operator=extra.pop("operator", "alice"),
        decided_at=decided_at or now_utc(),
        **extra,
    )


def database_at(path: Path, version: int) -> sqlite3.Connection:
    """A console database as a console of schema `version` left it (its migrations up to there), open in autocommit:
    a test fills it with that version's rows, closes it, and opens a Store on it to see the rest of the migrations."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in schema.MIGRATIONS[:version]:
        migration(sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA user_version = {version}")
    return conn
