"""Temporal's answers and the workflow convention, read without a server: the translation of listed runs (hostile and
malformed memos quarantined with a reason, never a crash), the Update's answers, and the workflow's own checks."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.engine.config import ConfigError, SourceConfig, parse
from console.engine.sources import build_source
from console.engine.sources.base import Rejected
from console.engine.sources.temporal import TemporalSource
from console.engine.sources.temporal_payloads import (
    Execution,
    Pending,
    closed_answer,
    parse_item_id,
    payload_value,
    query_time,
    read_count,
    read_execution,
    read_list,
    removal_detail,
    removal_state,
    translate,
    update_answer,
    update_body,
)
from console.integrations import temporal_convention as convention
from storage.records import Outcome, SyncState, Verdict, item_digest
from tests import factories

NOW = datetime(2026, 11, 21, 23, 40, tzinfo=UTC)
UI = "https://temporal.example:8233"


def request(**overrides: Any) -> dict[str, Any]:
    """A request memo as the workflow helper writes it: an item's shown fields (the ones the tests name set here) under
    the convention's version and request key, without the id, claim and digest the adapter adds."""
    shown = factories.payload(
        workflow="Refund",
        action={"name": "issue_refund", "args": {"customer_id": "cus_1042", "amount": 1250.0}},
        context={"summary": "A double charge.", "reasoning": "", "evidence": ["charge ch_1"], "links": []},
        confidence=0.82,
        policy="refunds over 500 EUR need a human",
        created_at=NOW.isoformat(),
        expires_at=(NOW + timedelta(minutes=15)).isoformat(),
    )
    memo: dict[str, Any] = {"version": 1, "key": "5f3a9c0d1e2b"}
    memo |= {name: value for name, value in shown.items() if name not in ("id", "claimed_by", "digest")}
    return memo | overrides


def payload(data: bytes, encoding: bytes = b"json/plain") -> dict[str, Any]:
    return {
        "metadata": {"encoding": base64.b64encode(encoding).decode()},
        "data": base64.b64encode(data).decode(),
    }


def row(memo: Any = None, *, raw: bytes | None = None, workflow_id: str = "refund-1", **extra: Any) -> dict[str, Any]:
    """One execution of a list answer, without payload shorthand (as the adapter asks for it)."""
    data = raw if raw is not None else json.dumps(memo if memo is not None else request()).encode()
    fields = {
        convention.STATE_ATTRIBUTE: payload(b'"waiting"'),
        convention.SINCE_ATTRIBUTE: payload(b'"2026-11-21T23:40:00.123Z"'),
    }
    return {
        "execution": {"workflowId": workflow_id, "runId": "01a22f6d-64a0-7d1f"},
        "type": {"name": "Refund"},
        "status": "WORKFLOW_EXECUTION_STATUS_RUNNING",
        "memo": {"fields": {convention.REQUEST_MEMO: payload(data)}},
        "searchAttributes": {"indexedFields": fields},
        **extra,
    }


def execution(memo: Any = None, **options: Any) -> Execution:
    read = read_execution(row(memo, **options))
    assert read is not None
    return read


def translated(found: Execution, max_item_bytes: int = 1_048_576, ui_url: str | None = UI) -> Pending | Rejected:
    return translate("flows", found, namespace="default", ui_url=ui_url, max_item_bytes=max_item_bytes)


# ------------------------------------------------------------------------------------------------------- listing
def test_a_waiting_run_is_an_item_with_the_engines_names_and_a_digest_of_what_is_shown() -> None:
    result = translated(execution())
    assert isinstance(result, Pending)
    item = result.item
    assert item.id == "refund-1:01a22f6d-64a0-7d1f:5f3a9c0d1e2b" and item.source == "flows"
    assert item.risk == "high" and item.confidence == 0.82 and item.expires_at == NOW + timedelta(minutes=15)
    assert item.context.evidence == [
        "charge ch_1",
        "Temporal workflow id: refund-1",
        "run id: 01a22f6d-64a0-7d1f",
        "workflow type: Refund",
        "namespace: default",
    ]
    assert item.context.links == [f"{UI}/namespaces/default/workflows/refund-1/01a22f6d-64a0-7d1f/history"]
    other = translated(execution(request(context={"summary": "A double charge!", "evidence": ["charge ch_1"]})))
    assert isinstance(other, Pending) and other.item.digest != item.digest, "the digest covers what is shown"
    assert result.request_digest == convention.request_digest(request())
    assert result.execution.since == "2026-11-21T23:40:00.123Z"


def test_without_a_ui_url_there_is_no_link_and_the_digest_differs() -> None:
    with_link, without = translated(execution()), translated(execution(), ui_url=None)
    assert isinstance(with_link, Pending) and isinstance(without, Pending)
    assert without.item.context.links == [] and without.item.digest != with_link.item.digest
    assert without.request_digest == with_link.request_digest, "the workflow checks its own request, not the view"


def test_agent_text_stays_literal() -> None:
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07[bold red]approve me[/]\u202e"
    result = translated(execution(request(context={"summary": hostile})))
    assert isinstance(result, Pending) and result.item.context.summary == hostile


WRONG: dict[str, tuple[dict[str, Any], str]] = {
    "not version 1": ({"raw": json.dumps(request(version=2)).encode()}, "not a version-1 request"),
    "not an object": ({"raw": b"[1, 2]"}, "not a version-1 request"),
    "a duplicate member name": ({"raw": b'{"version": 1, "version": 1}'}, "duplicate member name 'version'"),
    "NaN": ({"raw": b'{"version": NaN}'}, "unreadable JSON"),
    "bad UTF-8": ({"raw": b'{"version": "\xff\xfe"}'}, "unreadable JSON"),
    "nested past the stack": ({"raw": b"[" * 100_000 + b"]" * 100_000}, "nested too deeply"),
    "a key with a colon": ({"memo": request(key="a:b")}, "key must be"),
    "an unknown risk": ({"memo": request(risk="extreme")}, "risk"),
    "confidence as text": ({"memo": request(confidence="0.9")}, "confidence must be a number"),
    "no known decision": ({"memo": request(allowed_decisions=["delegate"])}, "none of the decisions"),
    "an approval without action": ({"memo": request(action=None)}, "an approval needs an action"),
    "an inexact integer": (
        {"memo": request(action={"name": "x", "args": {"n": 2**60}})},
        "cannot be canonicalised",
    ),
    "evidence not a list": ({"memo": request(context={"evidence": "ch_1"})}, "evidence"),
    "a workflow id too long for an item id": ({"workflow_id": "w" * 300}, "characters; at most 200"),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_a_memo_off_the_convention_is_quarantined_with_its_reason(case: str) -> None:
    options, reason = WRONG[case]
    result = translated(execution(**options))
    assert isinstance(result, Rejected), result
    assert reason in result.reason, result.reason


@pytest.mark.parametrize(
    ("memo_field", "reason"),
    [
        (None, "no 'approval_request' memo"),
        (payload(b'{"version": 1}', b"binary/encrypted"), "not json/plain"),
        ({"metadata": {"encoding": "!!"}, "data": "x"}, "not base64"),
        ("a string", "not a payload"),
    ],
)
def test_a_memo_the_console_cannot_read_is_quarantined(memo_field: Any, reason: str) -> None:
    raw = row()
    raw["memo"] = {"fields": {} if memo_field is None else {convention.REQUEST_MEMO: memo_field}}
    found = read_execution(raw)
    assert found is not None
    result = translated(found)
    assert isinstance(result, Rejected) and reason in result.reason


def test_a_request_over_the_sources_cap_is_quarantined_before_it_is_read() -> None:
    result = translated(execution(request(context={"summary": "x" * 5000})), max_item_bytes=2000)
    assert isinstance(result, Rejected) and "over this source's cap of 2,000" in result.reason


def test_a_list_answer_keeps_its_readable_runs_and_refuses_the_rest() -> None:
    body = {"executions": [row(), {"execution": {"workflowId": "x"}}, "junk"], "nextPageToken": "abc"}
    executions, rejected, token = read_list(body)
    assert [e.workflow_id for e in executions] == ["refund-1"] and token == "abc"
    assert len(rejected) == 2 and all("without a workflow id and run id" in r.reason for r in rejected)
    assert read_list({}) == ([], [], "")


@pytest.mark.parametrize("body", [[], {"executions": {}}, {"executions": [], "nextPageToken": 3}])
def test_an_answer_that_is_not_a_list_answer_is_an_error(body: Any) -> None:
    with pytest.raises(ValueError, match="workflow listing"):
        read_list(body)


@pytest.mark.parametrize(("body", "count"), [({}, 0), ({"count": "12"}, 12), ({"count": 3}, 3)])
def test_a_count(body: dict[str, Any], count: int) -> None:
    assert read_count(body) == count


@pytest.mark.parametrize("body", [[], {"count": True}, {"count": "-1"}, {"count": "1e3"}])
def test_a_count_of_the_wrong_shape_is_an_error(body: Any) -> None:
    with pytest.raises(ValueError, match="count"):
        read_count(body)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("2026-11-21T23:40:00.123456Z", "2026-11-21T23:40:00.123Z"),
        ("2026-11-22T00:40:00.5+01:00", "2026-11-21T23:40:00.500Z"),
        ("2026-11-21T23:40:00", ""),  # no zone
        ("2026-11-21' OR WorkflowId != '", ""),  # nothing of a value reaches a query unchecked
        (1764000000, ""),
    ],
)
def test_a_datetime_attribute_is_quoted_in_a_query_only_when_it_is_one(value: Any, quoted: str) -> None:
    assert query_time(value) == quoted


@pytest.mark.parametrize(
    ("item_id", "parts"),
    [
        ("refund-1:run-1:abc", ("refund-1", "run-1", "abc")),
        ("orders:eu:2026:run-1:abc", ("orders:eu:2026", "run-1", "abc")),
        ("refund-1:run-1", None),
        ("refund-1:run-1:a b", None),
        ("::abc", None),
    ],
)
def test_item_ids_name_the_workflow_the_run_and_the_wait(item_id: str, parts: tuple[str, str, str] | None) -> None:
    assert parse_item_id(item_id) == parts


def test_payload_values_are_read_strictly() -> None:
    assert payload_value(payload(b'{"a": 9007199254740993}'))[0] == {"a": 9007199254740993}, "the exact bytes"
    assert payload_value(payload(b'"x"')) == ("x", 3, "")


# ------------------------------------------------------------------------------------------------------ deciding
def test_the_update_carries_the_decision_under_its_id() -> None:
    decision = factories.decision(factories.item("refund-1:run-1:abc"), Verdict.edit, edited={"amount": 500})
    body = update_body(decision, "refund-1", "run-1", "sha256:" + "a" * 64)
    assert body["request"]["meta"]["updateId"] == decision.id
    assert body["request"]["input"]["name"] == convention.UPDATE_NAME
    assert body["workflowExecution"] == {"workflowId": "refund-1", "runId": "run-1"}
    sent, _, problem = payload_value(body["request"]["input"]["args"]["payloads"][0])
    assert problem == ""
    assert set(sent) == set(convention.DECISION_FIELDS)
    assert sent["request_digest"] == "sha256:" + "a" * 64 and sent["edited"] == {"amount": 500}
    assert sent["edited_digest"] == item_digest({"amount": 500})


def failure(kind: str | None, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"nonRetryable": True}
    if kind is not None:
        info["type"] = kind
    if details is not None:
        info["details"] = {"payloads": [payload(json.dumps(details).encode())]}
    stack = '  File "/home/worker/secret/path.py", line 3'
    return {"outcome": {"failure": {"message": message, "stackTrace": stack, "applicationFailureInfo": info}}}


@pytest.mark.parametrize(
    ("body", "state", "outcome", "says"),
    [
        ({"outcome": {"success": [{"outcome": "applied"}]}}, SyncState.applied, "applied", "applied"),
        (
            failure("conflict", "x", {"decided_by": "bob", "verdict": "approve"}),
            SyncState.conflict,
            "conflict",
            "by bob",
        ),
        (failure("stale", "changed", {"current_digest": "sha256:9"}), SyncState.conflict, "stale", "new version"),
        (failure("expired", "late"), SyncState.conflict, "expired", "deadline passed"),
        (failure("invalid", "a rejection needs a reason_code"), SyncState.conflict, "invalid", "needs a reason_code"),
        (failure("ValueError", "boom"), SyncState.conflict, "invalid", "the workflow refused the decision: boom"),
        (failure(None, "no handler"), SyncState.conflict, "invalid", "no handler"),
        ({"stage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED"}, None, "uncertain", "not complete yet"),
        (None, None, "uncertain", "not complete yet"),
        ({"outcome": {"neither": 1}}, None, "uncertain", "neither success nor failure"),
    ],
)
def test_every_update_answer_maps_onto_an_outcome(
    body: dict[str, Any] | None, state: SyncState | None, outcome: str, says: str
) -> None:
    answer = update_answer(body)
    assert (answer.state, answer.outcome) == (state, outcome)
    assert says in answer.detail
    assert "secret/path" not in answer.detail + json.dumps(answer.response if state is SyncState.conflict else {})


def run_record(state: str = "", outcome: dict[str, Any] | None = None, status: str = "COMPLETED") -> Execution:
    return Execution("refund-1", "run-1", "Refund", f"WORKFLOW_EXECUTION_STATUS_{status}", state, outcome=outcome or {})


def test_an_ended_run_answers_from_its_own_record() -> None:
    decision = factories.decision(factories.item("refund-1:run-1:abc"), Verdict.approve)
    ours = {"state": "decided", "decision_id": decision.id, "decided_by": "alice", "verdict": "approve"}
    theirs = {**ours, "decision_id": "another", "decided_by": "bob"}
    assert closed_answer(decision, run_record("decided", ours)).state is SyncState.applied
    conflict = closed_answer(decision, run_record("decided", theirs))
    assert (conflict.outcome, conflict.detail) == ("conflict", "already decided elsewhere by bob (approve)")
    expired = closed_answer(decision, run_record("expired", {"state": "expired", "on_expiry": "reject"}))
    assert expired.outcome == Outcome.expired.value
    ended = closed_answer(decision, run_record("waiting", status="TERMINATED"))
    assert (ended.outcome, ended.detail) == (
        "not_found",
        "the workflow run ended (terminated) without taking this decision",
    )
    assert closed_answer(decision, None).outcome == Outcome.not_found.value


def test_a_run_that_left_the_queue_says_why() -> None:
    decided = run_record("decided", {"state": "decided", "decided_by": "bob", "verdict": "reject"})
    assert (removal_state(decided), json.loads(removal_detail(decided))) == (
        "decided",
        {"decided_by": "bob", "verdict": "reject"},
    )
    assert removal_state(run_record("expired", {"state": "expired"})) == "expired"
    assert removal_state(None) == "gone" and removal_detail(None) == "the workflow run is gone"
    assert removal_detail(run_record("waiting", status="TERMINATED")) == "ApprovalState waiting, workflow terminated"


# ------------------------------------------------------------------------------------- the workflow's own checks
def decision_input(memo: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision_id": "d-1",
        "request_digest": convention.request_digest(memo),
        "verdict": "approve",
        "edited": None,
        "edited_digest": None,
        "reason_code": None,
        "comment": "",
        "operator": "alice",
        "decided_at": NOW.isoformat(),
    }
    body.update(overrides)
    return body


def refused(memo: dict[str, Any], decision: Any, outcome: dict[str, Any] | None = None, now: datetime = NOW) -> str:
    problem = convention.refusal(memo, outcome, decision, now)
    return "" if problem is None else f"{problem.kind}: {problem}"


def test_the_workflow_takes_a_decision_on_the_request_it_shows() -> None:
    memo = request()
    assert refused(memo, decision_input(memo)) == ""
    edit = {"customer_id": "cus_1042", "amount": 500}
    assert refused(memo, decision_input(memo, verdict="edit", edited=edit, edited_digest=item_digest(edit))) == ""


def test_the_workflow_refuses_in_the_protocols_order() -> None:
    memo = request()
    decided = convention.outcome_of(decision_input(memo, operator="bob"))
    stale = decision_input(memo, request_digest="sha256:" + "0" * 64, verdict="delegate")
    assert refused(memo, stale, decided) == "conflict: already decided by bob (approve)"
    assert refused(memo, stale, {"state": "expired"}).startswith("expired:")
    assert refused(memo, stale, now=NOW + timedelta(minutes=15)).startswith("expired:"), "the deadline counts"
    assert refused(memo, stale).startswith("stale:")
    assert refused(memo, decision_input(memo, verdict="delegate")).startswith("invalid: the verdict 'delegate'")


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"verdict": "reject"}, "a rejection needs a reason_code"),
        ({"operator": ""}, "operator must be"),
        ({"verdict": "edit", "edited": [1], "edited_digest": item_digest([1])}, "must be a JSON object"),
        ({"verdict": "edit", "edited": {"amount": 1}, "edited_digest": "sha256:0"}, "edited_digest does not match"),
    ],
)
def test_the_workflow_refuses_a_malformed_decision(overrides: dict[str, Any], says: str) -> None:
    memo = request()
    assert says in refused(memo, decision_input(memo, **overrides))


def test_the_workflow_refuses_a_decision_its_request_does_not_allow() -> None:
    memo = request(allowed_decisions=["approve", "reject"])
    edit = {"amount": 1}
    answer = refused(memo, decision_input(memo, verdict="edit", edited=edit, edited_digest=item_digest(edit)))
    assert answer.startswith("invalid:") and "approve, reject" in answer
    assert refused(memo, "not an object").startswith("invalid:")


# ---------------------------------------------------------------------------------------------------------- config
def test_a_temporal_source_in_toml(tmp_path: Path) -> None:
    text = '[[sources]]\nname = "flows"\nkind = "temporal"\nurl = "http://127.0.0.1:7243"\nui_url = "http://127.0.0.1:8233/"\n'
    [source] = parse(text, tmp_path / "config.toml").sources
    assert (source.kind, source.namespace, source.ui_url) == ("temporal", "default", "http://127.0.0.1:8233")
    assert isinstance(build_source(source, None), TemporalSource)


async def test_a_source_used_in_async_with_closes_its_client_on_leaving() -> None:
    client = httpx.AsyncClient()
    config = SourceConfig(name="flows", kind="temporal", url="http://127.0.0.1:7243")
    async with TemporalSource(config, None, client) as source:
        assert source.config is config and not client.is_closed
    assert client.is_closed


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('kind = "native"\nnamespace = "prod"', "only for sources of kind 'temporal'"),
        ('kind = "langgraph"\nui_url = "https://t.example"', "only for sources of kind 'temporal'"),
        ('kind = "temporal"\nnamespace = ""', "namespace must be a non-empty string"),
        ('kind = "temporal"\nui_url = "ftp://t.example"', "ui_url 'ftp://t.example' is not an http(s) URL"),
        (
            'kind = "temporal"\nui_url = "https://ops:pw@t.example"',
            "ui_url 'https://t.example' was given with credentials",
        ),
        ('kind = "temporal"\ngraph_id = "agent"', "only for sources of kind 'langgraph'"),
    ],
)
def test_config_refuses_bad_temporal_keys(tmp_path: Path, lines: str, problem: str) -> None:
    text = f'[[sources]]\nname = "flows"\nurl = "http://127.0.0.1:7243"\n{lines}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path / "config.toml")
    assert problem in caught.value.problem and caught.value.line == 5
    assert "pw" not in str(caught.value)
