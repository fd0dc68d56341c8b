"""Prefect payload translation without a server: paused flow runs into items, decisions into run inputs.

The rows and inputs below have the shape `prefect server` 3.9 answers (see tests/test_prefect.py for the real thing);
hostile and malformed ones are quarantined with a reason, and agent text is kept as given.
"""

from __future__ import annotations

import base64
import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from console.engine.sources.base import Rejected
from console.engine.sources.prefect_payloads import (
    InvalidDecision,
    PausedRun,
    answered_by_us,
    authorization,
    deadline_passed,
    input_value,
    item_payload,
    label_artifact,
    labels_held,
    parse_item_id,
    paused_run,
    run_input,
    run_items,
    ui_base,
)
from storage.labels import build_label
from storage.records import Decision, Item, Verdict

RUN_ID = "b06b2feb-fa8f-4895-9f51-f4f5751895e5"
ROW: dict[str, Any] = {
    "id": RUN_ID,
    "name": "little-marmot",
    "flow_id": "f1cef5e6-1419-428e-bd91-c4a2dcbd6bbc",
    "tags": ["risk:high", "agent:billing-agent", "confidence:0.82", "team-a"],
    "created": "2026-12-01T02:26:22.838580Z",
    "state_type": "PAUSED",
    "state": {
        "id": "01a22f6c-b490-77d8-a678-b24343a2d7d2",
        "type": "PAUSED",
        "name": "Paused",
        "timestamp": "2026-12-01T02:26:22.992917Z",
        "message": None,
        "state_details": {
            "pause_timeout": "2026-12-01T02:36:22.982010Z",
            "pause_key": "1",
            "run_input_keyset": {
                "description": "paused-1-description",
                "response": "paused-1-response",
                "schema": "paused-1-schema",
            },
        },
    },
}
SCHEMA: dict[str, Any] = {
    "additionalProperties": False,
    "properties": {
        "customer_id": {"default": "cus_1", "title": "Customer Id", "type": "string"},
        "amount": {"default": 1250.0, "title": "Amount", "type": "number"},
        "approved": {"default": False, "title": "Approved", "type": "boolean"},
        "reason": {"default": "", "title": "Reason", "type": "string"},
        "reviewer": {"default": "", "title": "Reviewer", "type": "string"},
        "decision_id": {"default": "", "title": "Decision Id", "type": "string"},
    },
    "required": ["customer_id", "amount"],
    "title": "Refund",
    "type": "object",
}
UI = "http://127.0.0.1:4200"
CAP = 1_048_576


def run(row: dict[str, Any] | None = None) -> PausedRun:
    parsed = paused_run(ROW if row is None else row)
    assert isinstance(parsed, PausedRun), parsed
    return parsed


def item(schema: Any = None, description: Any = "Refund **1250** EUR?", row: dict[str, Any] | None = None) -> Item:
    payload = item_payload("pf", run(row), "refunds", SCHEMA if schema is None else schema, description, UI)
    items, rejected = run_items("pf", [payload], CAP)
    assert not rejected, rejected
    return items[0]


def quarantined(schema: Any = None, description: Any = "", row: dict[str, Any] | None = None) -> Rejected:
    payload = item_payload("pf", run(row), "refunds", SCHEMA if schema is None else schema, description, UI)
    items, rejected = run_items("pf", [payload], CAP)
    assert not items
    return rejected[0]


def decision(verdict: Verdict, **fields: Any) -> Decision:
    return Decision(
        id=str(uuid.uuid4()),
        source="pf",
        item_id=f"{RUN_ID}:paused-1-response",
        item_digest="sha256:" + "0" * 64,
        verdict=verdict,
        operator="alice",
        decided_at=datetime.now(UTC),
        **fields,
    )


def with_tags(*tags: str) -> dict[str, Any]:
    row = copy.deepcopy(ROW)
    row["tags"] = list(tags)
    return row


def test_a_paused_run_is_an_item_with_the_conventions_tags() -> None:
    shown = item()
    assert shown.id == f"{RUN_ID}:paused-1-response"
    assert (shown.kind, shown.agent, shown.workflow, shown.risk, shown.confidence) == (
        "approval",
        "billing-agent",
        "refunds",
        "high",
        0.82,
    )
    assert shown.action is not None and shown.action.name == "Refund"
    assert shown.action.args == {"customer_id": "cus_1", "amount": 1250.0}
    assert shown.action.args_schema is not None
    assert set(shown.action.args_schema["properties"]) == {"customer_id", "amount"}
    assert shown.allowed_decisions == (Verdict.approve, Verdict.reject, Verdict.edit)
    assert shown.expires_at == datetime(2026, 12, 1, 2, 36, 22, 982010, tzinfo=UTC)
    assert shown.context.links == [f"{UI}/runs/flow-run/{RUN_ID}"]
    assert shown.context.summary == "Refund **1250** EUR?"  # markup stays literal text
    assert f"flow run: little-marmot ({RUN_ID})" in shown.context.evidence


def test_without_tags_the_defaults_apply() -> None:
    shown = item(row=with_tags())
    assert (shown.agent, shown.risk, shown.confidence, shown.kind) == ("refunds", "medium", None, "approval")


def test_an_escalation_tag_makes_the_values_the_output() -> None:
    shown = item(row=with_tags("kind:escalation", "action:check refund"))
    assert shown.kind == "escalation" and shown.output == {"customer_id": "cus_1", "amount": 1250.0}
    assert shown.action is not None and shown.action.name == "check refund" and shown.action.args == {}


def test_the_digest_does_not_depend_on_the_order_prefect_lists_tags_in() -> None:
    assert item(row=with_tags("a", "risk:low")).digest == item(row=with_tags("risk:low", "a")).digest
    assert item(row=with_tags("risk:low")).digest != item(row=with_tags("risk:high")).digest


def test_reject_is_offered_only_when_the_input_has_an_approved_field() -> None:
    schema = copy.deepcopy(SCHEMA)
    del schema["properties"]["approved"]
    assert item(schema).allowed_decisions == (Verdict.approve, Verdict.edit)
    with pytest.raises(InvalidDecision, match="approved"):
        run_input(decision(Verdict.reject, reason_code="unsafe"), schema)


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        (("risk:extreme",), "risk"),
        (("confidence:high",), "confidence"),
        (("confidence:1.5",), "confidence"),
        (("confidence:nan",), "confidence"),
        (("agent:" + "x" * 300,), "agent"),
    ],
)
def test_bad_convention_tags_quarantine_the_item_with_a_reason(tags: tuple[str, ...], reason: str) -> None:
    assert reason in quarantined(row=with_tags(*tags)).reason


def test_hostile_and_malformed_inputs_are_quarantined_never_raised() -> None:
    assert "not a JSON object" in quarantined(schema=["not", "a", "schema"]).reason
    assert "summary" in quarantined(description="x" * 70_000).reason
    deep: Any = {"default": 1}
    for _ in range(80):
        deep = {"type": "object", "properties": {"a": deep}}
    assert quarantined(schema={"type": "object", "properties": {"a": {"default": deep}}}).reason
    huge = {**SCHEMA, "properties": {**SCHEMA["properties"], "blob": {"default": "x" * CAP}}}
    assert "over this source's cap" in quarantined(schema=huge).reason
    shown = item(description="\x1b[31mred\x1b[0m [bold]x[/bold]")
    assert shown.context.summary == "\x1b[31mred\x1b[0m [bold]x[/bold]"  # kept literally; widgets escape it on screen
    assert item(description=None).context.summary == ""


@pytest.mark.parametrize(
    "row",
    [
        None,
        [],
        {"id": 5},
        {"id": RUN_ID, "state": "PAUSED"},
        {"id": RUN_ID, "state": {"type": "RUNNING", "state_details": {}}},
        {"id": RUN_ID, "state": {"type": "PAUSED", "state_details": {"run_input_keyset": None}}},
        {"id": RUN_ID, "state": {"type": "PAUSED", "state_details": {"run_input_keyset": {"schema": 1}}}},
    ],
)
def test_rows_that_are_not_pauses_for_input_are_refused_with_a_reason(row: Any) -> None:
    refused = paused_run(row)
    assert isinstance(refused, Rejected) and refused.reason


def test_approve_reject_and_edit_make_run_inputs() -> None:
    approved = decision(Verdict.approve, comment="checked")
    assert run_input(approved, SCHEMA) == {
        "customer_id": "cus_1",
        "amount": 1250.0,
        "approved": True,
        "reason": "checked",
        "reviewer": "alice",
        "decision_id": approved.id,
    }
    rejected = run_input(decision(Verdict.reject, reason_code="unsafe", comment="no"), SCHEMA)
    assert rejected["approved"] is False and rejected["reason"] == "unsafe: no" and rejected["amount"] == 1250.0
    edited = run_input(decision(Verdict.edit, edited={"amount": 50, "approved": False, "decision_id": "x"}), SCHEMA)
    assert edited["amount"] == 50 and edited["approved"] is True  # control fields are the console's, not the edit's
    assert edited["decision_id"] != "x"
    with pytest.raises(InvalidDecision):
        run_input(decision(Verdict.edit, edited=[1, 2]), SCHEMA)


def test_a_stored_answer_is_ours_by_decision_id_or_else_by_being_exactly_our_input() -> None:
    ours = decision(Verdict.approve)
    sent = run_input(ours, SCHEMA)
    assert answered_by_us(sent, ours.id, None)
    assert not answered_by_us({**sent, "decision_id": "another"}, ours.id, sent)
    plain = {"customer_id": "cus_1", "amount": 1250.0}
    assert answered_by_us(plain, ours.id, plain) and not answered_by_us(plain, ours.id, {**plain, "amount": 1})
    assert not answered_by_us("yes", ours.id, None)


def test_a_label_is_an_artifact_whose_agent_text_cannot_leave_its_code_block() -> None:
    shown = item()
    rejected = decision(Verdict.reject, reason_code="unsafe", comment="```\n# Injected").model_copy(
        update={"item_digest": shown.digest}
    )
    label = build_label(shown, rejected, None)
    artifact = label_artifact(RUN_ID, label)
    assert artifact["flow_run_id"] == RUN_ID and artifact["metadata_"] == {"approval_console_label_id": label.label_id}
    lines = artifact["data"].splitlines()
    assert lines[0] == "```json" and lines[-1] == "```"
    assert all(not line.lstrip().startswith("```") for line in lines[1:-1])  # nothing inside can close the block
    assert "# Injected" not in lines
    assert labels_held([artifact, {"metadata_": None}, "junk"]) == {label.label_id}


def test_ids_links_tokens_and_deadlines() -> None:
    assert parse_item_id(f"{RUN_ID}:paused-1-response") == (RUN_ID, "paused-1-response")
    assert parse_item_id("no-colon") is None and parse_item_id(":x") is None
    assert ui_base("http://127.0.0.1:4200/api") == "http://127.0.0.1:4200"
    assert ui_base("https://api.prefect.cloud/api/accounts/A/workspaces/W") == (
        "https://app.prefect.cloud/account/A/workspace/W"
    )
    assert authorization("pnu_key") == "Bearer pnu_key"
    assert authorization("admin:pass") == "Basic " + base64.b64encode(b"admin:pass").decode()
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert deadline_passed("2026-12-01T02:59:59Z", now) and not deadline_passed("2026-12-01T03:00:01Z", now)
    assert not deadline_passed("soon", now) and not deadline_passed(None, now)
    assert input_value({"key": "k", "value": '{"a": 1}'}) == {"a": 1} and input_value({"a": 1}) == {"a": 1}
