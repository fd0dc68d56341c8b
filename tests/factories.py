"""Build valid item payloads for storage and adapter tests (the demo fleet builds its own for end-to-end tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from storage.records import Item, item_digest, shown_part


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
