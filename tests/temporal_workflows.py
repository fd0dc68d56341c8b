"""Workflows for tests/test_temporal.py: each waits for a human through the console's helper, as a workflow author
would write it. Loaded by the worker's sandbox, so it imports only temporalio and the helper."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

from console.integrations import temporal_workflow as approvals

REFUND_SCHEMA = {
    "type": "object",
    "required": ["customer_id", "amount"],
    "properties": {"amount": {"type": "number", "maximum": 5000}},
}


@workflow.defn(name="Refund")
class Refund:
    """Asks for a refund's approval, then reports what it would run. `linger` keeps it running after the decision
    (so a late decision meets the workflow's validator rather than an ended run); `max_extend` (seconds) offers more
    time."""

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        request = approvals.Request(
            "issue_refund",
            {"customer_id": "cus_1042", "amount": spec.get("amount", 1250.0), "currency": "EUR"},
            risk="high",
            args_schema=REFUND_SCHEMA,
            summary=spec.get("summary", "Customer reports a double charge on invoice INV-2211."),
            confidence=0.82,
            policy="refunds over 500 EUR need a human",
        )
        max_extend = timedelta(seconds=spec["max_extend"]) if "max_extend" in spec else None
        decision = await approvals.wait_for_decision(
            request, timeout=timedelta(seconds=spec.get("timeout", 600)), max_extend=max_extend
        )
        if spec.get("linger"):
            await asyncio.sleep(spec["linger"])  # a durable timer in a workflow
        return {
            "verdict": decision.verdict,
            "approved": decision.approved,
            "args": decision.args,
            "expired": decision.expired,
            "operator": decision.operator,
            "reason_code": decision.reason_code,
            "comment": decision.comment,
            "decision_id": decision.decision_id,
        }


@workflow.defn(name="Hostile")
class Hostile:
    """Says it waits, but its memo does not follow the convention (no version): quarantined, never listed."""

    @workflow.run
    async def run(self, memo: dict[str, Any]) -> None:
        from temporalio.common import SearchAttributeKey

        workflow.upsert_memo({"approval_request": memo})
        workflow.upsert_search_attributes([SearchAttributeKey.for_keyword("ApprovalState").value_set("waiting")])
        await asyncio.sleep(600)
