"""Airflow's HITL answers, read without a server: how a detail becomes an item (Airflow's options mapped onto approve,
edit and reject; params as the edit form), hostile and malformed details quarantined with a reason (never a crash,
text kept literal), and how Airflow's answers to a PATCH become the console's outcomes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.engine.config import ConfigError, parse
from console.engine.secrets import Token
from console.engine.sources import build_source
from console.engine.sources.airflow import AirflowSource
from console.engine.sources.airflow_payloads import (
    Detail,
    Pending,
    answer_for,
    answered_answer,
    parse_item_id,
    read_collection,
    read_detail,
    refusal_answer,
    translate,
)
from console.engine.sources.base import Rejected
from storage.records import Outcome, SyncState, Verdict
from tests import factories

UI = "https://airflow.example"
RUN = "manual__2026-11-21T23:40:00.123456+00:00"


def hitl(**overrides: Any) -> dict[str, Any]:
    """A HITL detail as Airflow 3.3's listing shows an ApprovalOperator's (the task instance cut to what is read)."""
    detail: dict[str, Any] = {
        "options": ["Approve", "Reject"],
        "subject": "Refund 1250 EUR to cus_1042?",
        "body": "Two captures of the same amount.",
        "defaults": ["Reject"],
        "multiple": False,
        "params": {
            "amount": {"value": 1250, "description": None, "schema": {"type": "number", "maximum": 5000}},
            "ticket": {"value": "INV-2211", "description": None, "schema": {"type": "string"}},
        },
        "assigned_users": [],
        "created_at": "2026-11-21T23:40:00.123456Z",
        "responded_by_user": None,
        "responded_at": None,
        "chosen_options": None,
        "params_input": {},
        "response_received": False,
        "task_instance": {
            "dag_id": "refund_approval",
            "dag_run_id": RUN,
            "task_id": "approve_refund",
            "map_index": -1,
            "state": "awaiting_input",
            "operator": "ApprovalOperator",
            "dag_display_name": "refund_approval",
        },
    }
    detail.update(overrides)
    return detail


def detail_of(raw: dict[str, Any]) -> Detail:
    detail = read_detail(raw)
    assert detail is not None
    return detail


def item_of(raw: dict[str, Any]) -> Pending:
    result = translate("dags", detail_of(raw), ui_url=UI, max_item_bytes=1_048_576)
    assert isinstance(result, Pending), result
    return result


def refused(raw: dict[str, Any], max_item_bytes: int = 1_048_576) -> Rejected:
    result = translate("dags", detail_of(raw), ui_url=UI, max_item_bytes=max_item_bytes)
    assert isinstance(result, Rejected), result
    return result


# ------------------------------------------------------------------------------------------------------- the item
def test_an_approval_operator_is_an_item_with_the_engines_names() -> None:
    item = item_of(hitl()).item
    assert item.id == f"refund_approval:approve_refund:-1:{RUN}"
    assert parse_item_id(item.id) == ("refund_approval", RUN, "approve_refund", -1)
    assert item.action is not None and item.action.name == "approve_refund"
    assert item.action.args == {"chosen_options": ["Approve"], "params_input": {"amount": 1250, "ticket": "INV-2211"}}
    assert item.allowed_decisions == (Verdict.approve, Verdict.edit, Verdict.reject)
    assert item.on_expiry == "reject" and item.expires_at is None and item.risk == "medium"
    assert item.context.summary == "Refund 1250 EUR to cus_1042?"
    assert "map index: -1" in item.context.evidence and "defaults on timeout: Reject" in item.context.evidence
    run = "manual__2026-11-21T23%3A40%3A00.123456%2B00%3A00"
    page = f"{UI}/dags/refund_approval/runs/{run}/tasks/approve_refund/required_actions?map_index=-1"
    assert item.context.links == [page]
    schema = item.args_schema
    assert schema is not None and schema["properties"]["chosen_options"]["items"] == {"enum": ["Approve"]}
    assert schema["properties"]["params_input"]["required"] == ["amount", "ticket"]


@pytest.mark.parametrize(
    ("options", "defaults", "multiple", "params", "allowed", "proposed"),
    [
        (["Approve", "Reject"], None, False, {}, ("approve", "reject"), ["Approve"]),  # nothing to edit
        (["eu", "us"], ["us"], True, {}, ("approve", "edit"), ["us"]),  # the defaults are the proposal
        (["eu", "us"], None, False, {}, ("edit",), []),  # nothing proposed: the operator picks in the edit form
        (["OK"], ["OK"], False, {"n": {"value": 1, "schema": {}}}, ("approve", "edit"), ["OK"]),  # HITLEntryOperator
        (["Go", "reject"], None, False, {}, ("approve", "reject"), ["Go"]),  # the only other option; any case
    ],
)
def test_options_map_onto_the_consoles_decisions(
    options: list[str],
    defaults: list[str] | None,
    multiple: bool,
    params: dict[str, Any],
    allowed: tuple[str, ...],
    proposed: list[str],
) -> None:
    item = item_of(hitl(options=options, defaults=defaults, multiple=multiple, params=params)).item
    assert tuple(v.value for v in item.allowed_decisions) == allowed
    assert item.action is not None and item.action.args["chosen_options"] == proposed


def test_a_reject_option_alone_offers_reject_alone() -> None:
    assert [v.value for v in item_of(hitl(options=["Reject"], defaults=None)).item.allowed_decisions] == ["reject"]


def test_the_digest_covers_the_options_and_the_params() -> None:
    first = item_of(hitl()).item
    assert item_of(hitl(options=["Approve", "Reject", "Later"])).item.digest != first.digest
    params = hitl()["params"] | {"amount": {"value": 9, "schema": {}}}
    assert item_of(hitl(params=params)).item.digest != first.digest
    assert item_of(hitl()).item.digest == first.digest


# ------------------------------------------------------------------------------------------------- hostile details
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"options": "Approve"}, "options must be a non-empty list"),
        ({"options": []}, "options must be a non-empty list"),
        ({"options": ["a", "a"]}, "the same choice twice"),
        ({"subject": {"x": 1}}, "the subject must be text"),
        ({"body": 3}, "the body must be text or null"),
        ({"defaults": ["Later"]}, "defaults must be a list of the options offered"),
        ({"multiple": "yes"}, "multiple must be true or false"),
        ({"params": ["amount"]}, "params must be an object"),
        ({"params": {"amount": 5}}, "param 'amount' must be an object"),
        ({"created_at": None}, "without created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"params": {"n": {"value": 2**60, "schema": {}}}}, "safe integer"),
    ],
)
def test_a_malformed_detail_is_quarantined_with_the_reason(overrides: dict[str, Any], reason: str) -> None:
    assert reason in refused(hitl(**overrides)).reason


def test_deep_values_and_huge_details_are_quarantined() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    assert "nested" in refused(hitl(params={"n": {"value": deep, "schema": {}}})).reason
    assert "max_item_bytes" in refused(hitl(body="x" * 5000), max_item_bytes=2000).reason


def test_ids_airflow_would_not_make_are_refused() -> None:
    raw = hitl()
    raw["task_instance"] = {**raw["task_instance"], "dag_id": "a:b"}
    assert "DAG or task id" in refused(raw).reason
    assert parse_item_id("refund_approval:approve_refund:x:run") is None
    assert parse_item_id("workflow:run:key") is None


def test_agent_text_stays_literal() -> None:
    hostile = "\x1b]0;pwned\x07[bold red]Approve me[/] <script>"
    item = item_of(hitl(subject=hostile, body=hostile)).item
    assert item.context.summary == hostile and item.context.reasoning == hostile


def test_a_listing_keeps_good_details_and_rejects_nameless_ones() -> None:
    nameless = hitl(task_instance={"dag_id": "x"})
    details, rejected, total = read_collection({"hitl_details": [hitl(), nameless, "nope"], "total_entries": 3})
    assert [d.task_id for d in details] == ["approve_refund"] and total == 3
    assert len(rejected) == 2 and all("without its DAG" in r.reason for r in rejected)
    bodies: list[Any] = [{"hitl_details": {}}, {"hitl_details": [], "total_entries": "3"}, [], None]
    for body in bodies:
        with pytest.raises(ValueError, match="HITL listing"):
            read_collection(body)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=30,
    ),
    st.sampled_from(["options", "subject", "body", "defaults", "multiple", "params", "created_at", "assigned_users"]),
)
def test_any_value_in_any_field_is_an_item_or_a_reason(value: Any, field: str) -> None:
    result = translate("dags", detail_of(hitl(**{field: value})), ui_url=UI, max_item_bytes=1_048_576)
    assert isinstance(result, Pending) or result.reason


# -------------------------------------------------------------------------------------------------------- deciding
def test_each_verdict_sends_its_answer() -> None:
    pending = item_of(hitl())
    item = pending.item
    assert answer_for(factories.decision(item, Verdict.approve), pending) == {
        "chosen_options": ["Approve"],
        "params_input": {"amount": 1250, "ticket": "INV-2211"},
    }
    edited = {"chosen_options": ["Approve"], "params_input": {"amount": 5, "ticket": "T"}}
    assert answer_for(factories.decision(item, Verdict.edit, edited=edited), pending) == edited
    rejected = factories.decision(item, Verdict.reject, reason_code="unsafe")
    assert answer_for(rejected, pending) == {"chosen_options": ["Reject"], "params_input": {}}


def test_an_answer_already_given_is_ours_or_a_conflict_by_whom() -> None:
    answered = detail_of(
        hitl(
            response_received=True,
            responded_by_user={"id": "console", "name": "console"},
            chosen_options=["Approve"],
            responded_at="2026-11-21T23:41:00Z",
        )
    )
    ours = answered_answer(answered, {"chosen_options": ["Approve"]}, "console")
    assert (ours.state, ours.outcome) == (SyncState.applied, Outcome.applied.value)
    other = answered_answer(answered, {"chosen_options": ["Reject"]}, "console")
    assert (other.state, other.outcome) == (SyncState.conflict, Outcome.conflict.value)
    theirs = answered_answer(answered, {"chosen_options": ["Approve"]}, "alice")
    assert theirs.outcome == Outcome.conflict.value and "by console (Approve)" in theirs.detail
    assert theirs.response is not None and theirs.response["decided_by"] == "console"


def test_the_defaults_airflow_took_on_its_timeout_are_expired() -> None:
    timed_out = detail_of(hitl(response_received=True, chosen_options=["Reject"], responded_at="2026-11-21T23:41:00Z"))
    answer = answered_answer(timed_out, {"chosen_options": ["Approve"]}, "console")
    assert (answer.state, answer.outcome) == (SyncState.conflict, Outcome.expired.value)
    assert answer.response == {"on_expiry": "Reject"}


def test_airflows_refusals_become_outcomes() -> None:
    invalid = refusal_answer(400, {"detail": "Invalid options ['Maybe']; allowed options are ['Approve', 'Reject']."})
    assert invalid is not None and (invalid.state, invalid.outcome) == (SyncState.conflict, Outcome.invalid.value)
    assert "['Maybe']" in invalid.detail
    mine = refusal_answer(403, {"detail": "User=alice (id=alice) is not a respondent for the task."})
    assert mine is not None and (mine.state, mine.outcome) == (SyncState.conflict, Outcome.unauthorized.value)
    assert mine.detail.startswith("not yours") and not mine.auth_refused
    assert refusal_answer(403, {"detail": "Forbidden"}) is None, "refused credentials are not final"
    assert refusal_answer(500, None) is None


# -------------------------------------------------------------------------------------------------- credentials
def test_the_secret_is_a_login_or_a_jwt_whose_subject_is_the_user(tmp_path: Path) -> None:
    text = '[[sources]]\nname = "dags"\nkind = "airflow"\nurl = "http://127.0.0.1:8080"\ndag_id_pattern = "refund%"\n'
    [config] = parse(text, tmp_path / "config.toml").sources
    assert config.dag_id_pattern == "refund%"
    login = build_source(config, Token("console:pa:ss", "environment"))
    assert isinstance(login, AirflowSource) and login.user == "console"
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "ops"}).encode()).decode().rstrip("=")
    assert AirflowSource(config, Token(f"h.{claims}.s", "keyring")).user == "ops"
    assert AirflowSource(config, Token("opaque", "keyring")).user == ""


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('kind = "native"\ndag_id_pattern = "x%"', "only for sources of kind 'airflow'"),
        ('kind = "temporal"\ndag_id_pattern = "x%"', "only for sources of kind 'airflow'"),
        ('kind = "airflow"\ndag_id_pattern = ""', "dag_id_pattern must be a non-empty string"),
        ('kind = "airflow"\nnamespace = "prod"', "only for sources of kind 'temporal'"),
    ],
)
def test_config_refuses_airflow_keys_elsewhere(tmp_path: Path, lines: str, problem: str) -> None:
    text = f'[[sources]]\nname = "dags"\nurl = "http://127.0.0.1:8080"\n{lines}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path / "config.toml")
    assert problem in caught.value.problem and caught.value.line == 5
