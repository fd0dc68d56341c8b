"""LangGraph's interrupt families translated into items and decisions into resume values: pure, no server."""

from __future__ import annotations

from typing import Any

import pytest

from console.engine.sources.langgraph_payloads import (
    Interrupt,
    InvalidDecision,
    parse_item_id,
    pending_items,
    translate_state,
)
from storage.records import Item, Verdict
from tests.factories import decision

ROW = {
    "thread_id": "thr_1",
    "created_at": "2026-11-21T23:00:00Z",
    "updated_at": "2026-11-21T23:00:00Z",
    "metadata": {"graph_id": "mailer"},
}
INBOX_REQUEST = {
    "action_request": {"action": "send_email", "args": {"to": "bob@example.com"}},
    "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": False},
    "description": "Send the weekly report?",
}


def interrupts(value: Any, row: dict[str, Any] = ROW, **pending: Any) -> list[Interrupt]:
    state = {"tasks": [{"name": "review", "interrupts": [{"id": "int_1"}]}]}
    state["interrupts"] = [{"id": "int_1", "value": value, **pending}]
    return translate_state("graphs", row, state)


def items(value: Any, row: dict[str, Any] = ROW) -> list[Item]:
    found, rejected = pending_items("graphs", interrupts(value, row))
    assert rejected == []
    return found


def answer(interrupt: Interrupt, index: int, verdict: Verdict, **extra: Any) -> Any:
    item = Item.model_validate({**interrupt.requests[index].payload, "source": "graphs"})
    return interrupt.requests[index].answer(decision(item, verdict, **extra))


def test_an_agent_inbox_interrupt_is_one_item_answered_in_its_family() -> None:
    [item] = items([INBOX_REQUEST])
    assert (item.id, item.kind, item.agent, item.workflow) == ("thr_1:int_1", "approval", "mailer", "review")
    assert item.action is not None and (item.action.name, item.action.args) == ("send_email", {"to": "bob@example.com"})
    assert list(item.allowed_decisions) == [Verdict.approve, Verdict.reject, Verdict.edit]
    assert item.context.summary == "Send the weekly report?"
    [interrupt] = interrupts([INBOX_REQUEST])
    assert interrupt.combine([answer(interrupt, 0, Verdict.approve)]) == [{"type": "accept", "args": None}]
    edited = answer(interrupt, 0, Verdict.edit, edited={"to": "carol@example.com"})
    assert edited == {"type": "edit", "args": {"action": "send_email", "args": {"to": "carol@example.com"}}}
    rejected = answer(interrupt, 0, Verdict.reject, reason_code="wrong", comment="not today")
    assert rejected == {"type": "response", "args": "Rejected by the operator (wrong): not today"}


def test_an_agent_inbox_interrupt_refuses_a_verdict_its_config_does_not_allow() -> None:
    only_ignore = {**INBOX_REQUEST, "config": {"allow_ignore": True}}
    [interrupt] = interrupts(only_ignore)  # a bare request, not a list: answered bare
    assert interrupt.combine([answer(interrupt, 0, Verdict.reject)]) == {"type": "ignore", "args": None}
    with pytest.raises(InvalidDecision, match="approve is not allowed"):
        answer(interrupt, 0, Verdict.approve)


@pytest.mark.parametrize("spelling", ["snake", "camel"])
def test_a_batched_middleware_request_is_one_item_per_action_answered_together(spelling: str) -> None:
    requests, configs, allowed, action = (
        ("action_requests", "review_configs", "allowed_decisions", "action_name")
        if spelling == "snake"
        else ("actionRequests", "reviewConfigs", "allowedDecisions", "actionName")
    )
    value = {
        requests: [{"name": "refund", "args": {"amount": 5}}, {"name": "email", "arguments": {"to": "bob"}}],
        configs: [{action: "refund", allowed: ["approve", "reject"]}, {action: "email", allowed: ["edit", "respond"]}],
    }
    first, second = items(value)
    assert (first.id, second.id) == ("thr_1:int_1:0", "thr_1:int_1:1")
    assert (list(first.allowed_decisions), list(second.allowed_decisions)) == (
        [Verdict.approve, Verdict.reject],
        [
            Verdict.reject,
            Verdict.edit,
        ],
    )
    assert "action 2 of 2 in one request" in second.context.evidence[-1]
    [interrupt] = interrupts(value)
    both = [answer(interrupt, 0, Verdict.approve), answer(interrupt, 1, Verdict.edit, edited={"to": "carol"})]
    edited_key = "edited_action" if spelling == "snake" else "editedAction"
    assert interrupt.combine(both) == {
        "decisions": [
            {"type": "approve"},
            {"type": "edit", edited_key: {"name": "email", "arguments": {"to": "carol"}}},
        ]
    }
    assert answer(interrupt, 1, Verdict.reject)["type"] == "respond"
    with pytest.raises(InvalidDecision, match="not among the allowed decisions"):
        answer(interrupt, 1, Verdict.approve)


def test_a_per_call_tool_approval_without_a_schema_takes_the_three_verdicts() -> None:
    value = {"type": "tool_approval", "name": "refund", "args": {"amount": 5}, "description": "Refund?"}
    [item] = items(value)
    assert (item.id, item.policy) == ("thr_1:int_1", "LangChain human-in-the-loop middleware (per call)")
    assert list(item.allowed_decisions) == [Verdict.approve, Verdict.reject, Verdict.edit]
    [interrupt] = interrupts(value)
    assert interrupt.combine([answer(interrupt, 0, Verdict.reject)]) == {
        "type": "reject",
        "message": "Rejected (rejected)",
    }
    with pytest.raises(InvalidDecision, match="must be a JSON object"):
        answer(interrupt, 0, Verdict.edit, edited=[1, 2])


def test_an_unknown_shape_is_an_escalation_answered_only_by_its_edited_value() -> None:
    [item] = items("Which account should I charge?")
    assert (item.kind, item.output, list(item.allowed_decisions)) == (
        "escalation",
        "Which account should I charge?",
        [Verdict.edit],
    )
    [interrupt] = interrupts("Which account should I charge?")
    assert interrupt.combine([answer(interrupt, 0, Verdict.edit, edited="acct_2")]) == "acct_2"
    with pytest.raises(InvalidDecision, match="only be answered by editing"):
        answer(interrupt, 0, Verdict.approve)


@pytest.mark.parametrize(
    "value",
    [
        {"action_requests": [{"name": "refund", "args": {}}], "review_configs": []},  # no config: not decidable
        {"action_requests": [{"name": 5, "args": {}}], "review_configs": []},
        {"type": "tool_approval", "name": "refund", "args": "not an object"},
        [{"action_request": {"action": "send_email"}}],  # an inbox request without args
    ],
    ids=["batch without its config", "batch with a bad name", "tool approval with bad args", "inbox without args"],
)
def test_a_malformed_family_payload_is_shown_raw_as_an_escalation(value: Any) -> None:
    [item] = items(value)
    assert (item.kind, item.output, item.policy) == ("escalation", value, "LangGraph interrupt of an unknown shape")


def test_interrupts_without_an_id_are_skipped_and_the_node_is_unknown_without_a_task() -> None:
    state = {"interrupts": [{"value": "no id"}, {"id": "", "value": "empty id"}, "junk", {"id": "int_2", "value": 1}]}
    [interrupt] = translate_state("graphs", ROW, state)
    assert interrupt.interrupt_id == "int_2"
    assert "node: unknown" in interrupt.requests[0].payload["context"]["evidence"]
    assert translate_state("graphs", ROW, {"interrupts": "not a list"}) == []


def test_a_payload_the_item_checks_refuse_is_quarantined_with_its_reason() -> None:
    bad_row = {**ROW, "thread_id": "thr 1/../x", "created_at": "not a time"}
    found, rejected = pending_items("graphs", interrupts([INBOX_REQUEST], bad_row))
    assert found == []
    [quarantined] = rejected
    assert quarantined.item_id == "thr 1/../x:int_1"
    assert quarantined.reason and "thr 1/../x" in quarantined.excerpt


def test_each_item_digest_covers_what_is_shown() -> None:
    [before] = items([INBOX_REQUEST])
    changed = {**INBOX_REQUEST, "description": "Send the monthly report?"}
    [after] = items([changed])
    assert before.id == after.id and before.digest != after.digest


@pytest.mark.parametrize(
    ("item_id", "parsed"),
    [
        ("thr_1:int_1", ("thr_1", "int_1", 0)),
        ("thr_1:int_1:2", ("thr_1", "int_1", 2)),
        ("thr_1", None),
        ("thr_1::2", None),
        ("thr_1:int_1:x", None),
        ("a:b:1:2", None),
    ],
)
def test_item_ids_parse_back_to_thread_interrupt_and_index(item_id: str, parsed: tuple[str, str, int] | None) -> None:
    assert parse_item_id(item_id) == parsed
