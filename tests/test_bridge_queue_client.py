"""The bridges' queue client reads an item's state (PROTOCOL.md section 9) as the agent's outcome: only an operator's
approve or edit allows; every other state, and anything it cannot read, denies with a one-line reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from console.bridges.mcp_server import permission_answer
from console.bridges.queue_client import Request, outcome_of

ARGS = {"command": "make deploy"}


def decided(verdict: str, **extra: Any) -> dict[str, Any]:
    return {"id": "itm_1", "state": "decided", "decided_by": "alice", "verdict": verdict, **extra}


def test_approve_allows_the_agents_own_args_and_edit_the_operators() -> None:
    approved = outcome_of(decided("approve"), ARGS)
    assert approved is not None and (approved.allowed, approved.args, approved.operator) == (True, ARGS, "alice")
    edited = outcome_of(decided("edit", edited={"command": "make deploy-staging"}, comment="staging\nfirst"), ARGS)
    assert edited is not None and edited.allowed and edited.args == {"command": "make deploy-staging"}
    assert edited.reason == "approved by the operator alice with edited arguments (staging first)", "one line"


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (decided("reject", reason_code="unsafe"), "rejected by the operator alice: unsafe"),
        (decided("edit", edited=["not", "an", "object"]), "cannot apply"),
        (decided("escalate"), "cannot apply"),
        ({"id": "itm_1", "state": "expired", "on_expiry": "approve"}, "no decision before the deadline"),
        ({"id": "itm_1", "state": "withdrawn"}, "withdrawn"),
        ({"id": "itm_1", "state": "superseded", "superseded_by": "itm_2"}, "superseded"),
        ({"id": "itm_1", "state": "approved!"}, "unknown state"),
        ({}, "unknown state"),
    ],
)
def test_every_other_state_denies_with_a_reason(state: dict[str, Any], reason: str) -> None:
    outcome = outcome_of(state, ARGS)
    assert outcome is not None and outcome.allowed is False and reason in outcome.reason
    assert permission_answer(outcome, ARGS) == {"behavior": "deny", "message": f"approval-console: {outcome.reason}"}


def test_pending_is_not_an_outcome_yet() -> None:
    assert outcome_of({"id": "itm_1", "state": "pending", "seq": 4}, ARGS) is None


def test_the_posted_item_carries_the_deadline_and_rejects_on_expiry() -> None:
    request = Request(request_id="r1", action="Bash", args=ARGS, risk="extreme")
    item = request.item(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    assert item["expires_at"] == "2026-12-01T03:00:00.000Z" and item["on_expiry"] == "reject"
    assert item["risk"] == "high", "a risk the protocol does not know is posted as high"
    assert item["action"] == {"name": "Bash", "args": ARGS} and "agent" not in item, "the token names the agent"
