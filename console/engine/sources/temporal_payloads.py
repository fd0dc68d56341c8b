"""Temporal's HTTP answers, read: pure functions, no HTTP (the transport is temporal.py beside it).

A workflow waiting for a human follows the convention of console.integrations.temporal_convention (PROTOCOL.md,
"Temporal workflows"): its `approval_request` memo holds the request, its `ApprovalState` search attribute says
`waiting`, and its `approval_decision` Update takes the decision.

Listing answers are read without payload shorthand (`Accept: application/json+no-payload-shorthand`): every memo and
search attribute comes as a payload, `{"metadata": {"encoding": <base64>}, "data": <base64>}`, so each memo is the
exact bytes its worker wrote, decoded here one at a time with the strict JSON reader (duplicate member names, NaN and
deep nesting refused per item, never for the page) and checked against the item rules: a hostile or malformed memo is
quarantined with its reason.

Items. One per waiting workflow run: id `WORKFLOW_ID:RUN_ID:KEY` (the key tells one wait of a run from the next), the
request's fields as the item's, and the engine's own names in the context (workflow id, run id, type, namespace; a link
to the Temporal UI when the source has `ui_url`). The console's digest covers all of that; the request's own digest
(over the memo as stored) is what the workflow checks, so a decision binds to both.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from console.engine.sources.base import DecisionAnswer, Rejected, excerpt, read_rows, validate_items
from console.engine.sources.listing import loads
from console.engine.sources.native_payloads import describe_outcome
from console.integrations import temporal_convention as convention
from storage.records import Decision, Item, Outcome, SyncState, item_digest, shown_part

NO_SHORTHAND = "application/json+no-payload-shorthand"
JSON_PLAIN = "json/plain"
RUNNING = "WORKFLOW_EXECUTION_STATUS_RUNNING"
WAITING_QUERY = f"{convention.STATE_ATTRIBUTE} = '{convention.WAITING}' AND ExecutionStatus = 'Running'"
_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")
# The validator's refusals, by ApplicationError type: each is the console outcome of the same name.
_REFUSALS = {
    convention.CONFLICT: Outcome.conflict,
    convention.STALE: Outcome.stale,
    convention.EXPIRED: Outcome.expired,
    convention.INVALID: Outcome.invalid,
}


@dataclass(frozen=True)
class Execution:
    """One workflow run as the list or describe answer shows it, its payloads decoded (or why they could not be)."""

    workflow_id: str
    run_id: str
    workflow_type: str = ""
    status: str = ""
    state: str = ""  # ApprovalState
    since: str = ""  # ApprovalSince, normalised for a query ("" when absent or unreadable)
    request: Any = None
    request_bytes: int = 0
    problem: str = ""  # why the request memo could not be read
    outcome: dict[str, Any] = field(default_factory=dict)  # the approval_outcome memo, when it holds an object


@dataclass(frozen=True)
class Pending:
    """A waiting run translated: the item the operator sees and the request digest the workflow checks."""

    item: Item
    execution: Execution
    request_digest: str


# ------------------------------------------------------------------ reading
def payload_value(raw: Any) -> tuple[Any, int, str]:
    """A payload's JSON value, its size in bytes, and why it cannot be read ("" when it can)."""
    if not isinstance(raw, dict):
        return None, 0, "not a payload"
    metadata = raw.get("metadata")
    encoding = _b64(metadata.get("encoding")) if isinstance(metadata, dict) else None
    data = _b64(raw.get("data", ""))
    if encoding is None or data is None:
        return None, 0, "a payload that is not base64"
    if encoding != JSON_PLAIN.encode():
        shown = encoding.decode("utf-8", "replace")[:40]
        return (
            None,
            len(data),
            f"a payload encoded as {shown!r}, not json/plain (a payload codec hides it from the console)",
        )
    try:
        return loads(data.decode("utf-8")), len(data), ""
    except RecursionError:
        return None, len(data), "JSON nested too deeply to read"
    except ValueError as exc:  # bad UTF-8, bad JSON, a duplicate member name, NaN
        return None, len(data), f"unreadable JSON: {str(exc)[:120]}"


def read_execution(raw: Any) -> Execution | None:
    """An execution of a list answer (or `workflowExecutionInfo` of a describe answer); None without its ids."""
    if not isinstance(raw, dict):
        return None
    ids = raw.get("execution")
    workflow_id = ids.get("workflowId") if isinstance(ids, dict) else None
    run_id = ids.get("runId") if isinstance(ids, dict) else None
    if not isinstance(workflow_id, str) or not isinstance(run_id, str) or not workflow_id or not run_id:
        return None
    kind = raw.get("type")
    name = kind.get("name") if isinstance(kind, dict) else None
    memo = _fields(raw.get("memo"))
    attributes = _fields(raw.get("searchAttributes"), "indexedFields")
    request, size, problem = payload_value(memo.get(convention.REQUEST_MEMO))
    if convention.REQUEST_MEMO not in memo:
        problem = f"no {convention.REQUEST_MEMO!r} memo"
    outcome, _, _ = payload_value(memo.get(convention.OUTCOME_MEMO))
    state, _, _ = payload_value(attributes.get(convention.STATE_ATTRIBUTE))
    since, _, _ = payload_value(attributes.get(convention.SINCE_ATTRIBUTE))
    return Execution(
        workflow_id,
        run_id,
        name if isinstance(name, str) else "",
        str(raw.get("status", "")),
        state if isinstance(state, str) else "",
        query_time(since),
        request,
        size,
        problem,
        outcome if isinstance(outcome, dict) else {},
    )


def read_list(body: Any) -> tuple[list[Execution], list[Rejected], str]:
    """A list answer: its executions, the ones without ids (rejected), and the next page token ("" at the end).

    Raises ValueError when the answer is not a list answer at all.
    """
    if not isinstance(body, dict):
        raise ValueError("answered a workflow listing with something that is not a JSON object")
    rows = body.get("executions", [])
    token = body.get("nextPageToken", "")
    if not isinstance(rows, list) or not isinstance(token, str):
        raise ValueError("answered a workflow listing with the wrong shape")
    unread = "a listed execution without a workflow id and run id"
    executions, rejected = read_rows(rows, read_execution, "?execution", unread)
    return executions, rejected, token


def read_count(body: Any) -> int:
    """A count answer (`{"count": "12"}`; proto3 leaves out a zero). Raises ValueError on anything else."""
    if not isinstance(body, dict):
        raise ValueError("answered a workflow count with something that is not a JSON object")
    count = body.get("count", "0")
    if isinstance(count, bool) or not isinstance(count, str | int) or not str(count).isdigit():
        raise ValueError("answered a workflow count with the wrong shape")
    return int(count)


def query_time(value: Any) -> str:
    """A Datetime search attribute as a query may quote it (nothing of the value reaches the query unchecked)."""
    if not isinstance(value, str):
        return ""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return ""
    if when.tzinfo is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # visibility keeps milliseconds


# -------------------------------------------------------------- translation
def item_id(workflow_id: str, run_id: str, key: str) -> str:
    return f"{workflow_id}:{run_id}:{key}"


def parse_item_id(value: str) -> tuple[str, str, str] | None:
    """(workflow id, run id, key) of an item id of this source; None for any other id. Workflow ids may hold ':'."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or not all(parts) or not _KEY.fullmatch(parts[2]):
        return None
    return parts[0], parts[1], parts[2]


def translate(
    source: str, execution: Execution, *, namespace: str, ui_url: str | None, max_item_bytes: int
) -> Pending | Rejected:
    """A waiting run as an item, or why it cannot be one (quarantined with the reason)."""
    request = execution.request
    where = item_id(execution.workflow_id, execution.run_id, "?")
    if execution.problem:
        return Rejected(where, f"the {convention.REQUEST_MEMO} memo: {execution.problem}", excerpt(request))
    if execution.request_bytes > max_item_bytes:
        reason = f"the request is {execution.request_bytes:,} bytes, over this source's cap of {max_item_bytes:,}"
        return Rejected(where, reason + " (max_item_bytes)", "")
    if not isinstance(request, dict) or request.get("version") != convention.VERSION:
        reason = f"the {convention.REQUEST_MEMO} memo is not a version-{convention.VERSION} request (see PROTOCOL.md)"
        return Rejected(where, reason, excerpt(request))
    key = request.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return Rejected(where, "the request's key must be 1-40 letters, digits, '_' or '-'", excerpt(request))
    payload: dict[str, Any] = {"id": item_id(execution.workflow_id, execution.run_id, key)}
    payload.update((name, request[name]) for name in convention.REQUEST_FIELDS if name in request)
    context = request.get("context", {})
    if isinstance(context, dict):
        payload["context"] = _with_names(context, execution, namespace, ui_url)
    try:
        payload["digest"] = item_digest(shown_part(payload))
        digest = convention.request_digest(request)
    except (ValueError, TypeError, RecursionError) as exc:  # rfc8785's errors are ValueErrors
        return Rejected(payload["id"][:200], f"the request cannot be canonicalised: {str(exc)[:160]}", excerpt(request))
    items, rejected = validate_items(source, [payload])
    if rejected:
        return rejected[0]
    return Pending(items[0], execution, digest)


def _with_names(context: dict[str, Any], execution: Execution, namespace: str, ui_url: str | None) -> dict[str, Any]:
    """The request's context plus the engine's own names, so the operator can find the run in Temporal."""
    names = [
        f"Temporal workflow id: {execution.workflow_id}",
        f"run id: {execution.run_id}",
        f"workflow type: {execution.workflow_type or 'unknown'}",
        f"namespace: {namespace}",
    ]
    evidence = context.get("evidence", [])
    links = context.get("links", [])
    shown = dict(context)
    if isinstance(evidence, list):  # anything else stays as it is: the item check refuses it with the reason
        shown["evidence"] = [*evidence, *names]
    if isinstance(links, list) and ui_url:
        path = f"namespaces/{quote(namespace, safe='')}/workflows/{quote(execution.workflow_id, safe='')}"
        shown["links"] = [*links, f"{ui_url}/{path}/{quote(execution.run_id, safe='')}/history"]
    return shown


# ------------------------------------------------------------------ deciding
def update_body(decision: Decision, workflow_id: str, run_id: str, request_digest: str) -> dict[str, Any]:
    """The Update request: the decision id is the update id, so a resend gets the first answer back."""
    body = {
        "decision_id": decision.id,
        "request_digest": request_digest,
        **{k: v for k, v in decision.wire_body().items() if k != "item_digest"},
    }
    return {
        "workflowExecution": {"workflowId": workflow_id, "runId": run_id},
        "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
        "request": {
            "meta": {"updateId": decision.id, "identity": f"approval-console:{decision.operator}"[:200]},
            "input": {"name": convention.UPDATE_NAME, "args": {"payloads": [payload(body)]}},
        },
    }


def update_answer(body: dict[str, Any] | None) -> DecisionAnswer:
    """A 200 answer to the Update: applied, refused by the workflow (with its reason), or not complete yet (retried)."""
    outcome = body.get("outcome") if body is not None else None
    if not isinstance(outcome, dict):
        return DecisionAnswer(
            None, "uncertain", "the update is not complete yet; sending again under the same id", body
        )
    if "success" in outcome:
        return DecisionAnswer(SyncState.applied, Outcome.applied.value, "applied", body)
    failure = failure_of(outcome)
    if failure is None:
        return DecisionAnswer(None, "uncertain", "an update outcome that is neither success nor failure", body)
    kind, message, details = failure
    shown = {"detail": message, **details}  # the stack trace stays out: the worker's paths are not the operator's
    refused = _REFUSALS.get(kind)
    if refused is None:
        detail = f"the workflow refused the decision: {message}"
        return DecisionAnswer(SyncState.conflict, Outcome.invalid.value, detail, shown)
    if refused is Outcome.invalid:
        shown["errors"] = [{"in": "body", "path": "", "message": message}]
    return DecisionAnswer(SyncState.conflict, refused.value, describe_outcome(refused.value, shown), shown)


def failure_of(outcome: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """An Update outcome's refusal: the ApplicationError's type ("" when none), its message, its details object."""
    failure = outcome.get("failure")
    if not isinstance(failure, dict):
        return None
    info = failure.get("applicationFailureInfo")
    kind = info.get("type") if isinstance(info, dict) else None
    return (kind if isinstance(kind, str) else ""), str(failure.get("message", ""))[:300], _failure_details(info)


def closed_answer(decision: Decision, execution: Execution | None) -> DecisionAnswer:
    """What a decision for a run that no longer takes updates (404) ends as, from the run's own record."""
    if execution is None:
        return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "Temporal no longer has this workflow run")
    recorded = execution.outcome
    if recorded.get("decision_id") == decision.id:  # ours, applied before a crash: the resend is answered here
        return DecisionAnswer(SyncState.applied, Outcome.applied.value, "applied", recorded)
    if recorded.get("state") == convention.DECIDED:
        return DecisionAnswer(
            SyncState.conflict, Outcome.conflict.value, describe_outcome("conflict", recorded), recorded
        )
    if recorded.get("state") == convention.EXPIRED or execution.state == convention.EXPIRED:
        return DecisionAnswer(
            SyncState.conflict, Outcome.expired.value, describe_outcome("expired", recorded), recorded
        )
    status = execution.status.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower() or "closed"
    detail = f"the workflow run ended ({status}) without taking this decision"
    return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, detail, {"status": status})


def removal_detail(execution: Execution | None) -> str:
    """Why a run left the queue, for the removal record: decided (by whom), expired, or the run ended."""
    if execution is None:
        return "the workflow run is gone"
    recorded = execution.outcome
    if recorded.get("state") == convention.DECIDED:
        return json.dumps({"decided_by": recorded.get("decided_by"), "verdict": recorded.get("verdict")})
    status = execution.status.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower()
    return f"ApprovalState {execution.state or 'unset'}, workflow {status or 'unknown'}"


def removal_state(execution: Execution | None) -> str:
    if execution is not None and execution.outcome.get("state") in (convention.DECIDED, convention.EXPIRED):
        return str(execution.outcome["state"])
    return "gone"


# ------------------------------------------------------------------ helpers
def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def payload(value: Any) -> dict[str, Any]:
    """A value as a json/plain payload (an Update's argument)."""
    data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return {
        "metadata": {"encoding": base64.b64encode(JSON_PLAIN.encode()).decode()},
        "data": base64.b64encode(data).decode(),
    }


def _fields(raw: Any, name: str = "fields") -> dict[str, Any]:
    inner = raw.get(name) if isinstance(raw, dict) else None
    return inner if isinstance(inner, dict) else {}


def _failure_details(info: Any) -> dict[str, Any]:
    """The refusal's details (the validator's first detail argument) when it is an object, else nothing."""
    details = info.get("details") if isinstance(info, dict) else None
    payloads = details.get("payloads") if isinstance(details, dict) else None
    if not isinstance(payloads, list) or not payloads:
        return {}
    value, _, _ = payload_value(payloads[0])
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) else {}
