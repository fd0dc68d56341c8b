"""Waiting for a human inside a Temporal workflow, so that the approval console lists the request and decides it.

Install with `pip install 'approval-console[temporal]'`; register the two search attributes once per namespace
(`temporal operator search-attribute create --name ApprovalState --type Keyword` and `--name ApprovalSince --type
Datetime`; on the dev server `--search-attribute ApprovalState=Keyword --search-attribute ApprovalSince=Datetime`).
Then, in a workflow:

    from console.integrations import temporal_workflow as approvals

    decision = await approvals.wait_for_decision(
        approvals.Request("issue_refund", {"amount": 1250}, risk="high"), timeout=timedelta(minutes=15)
    )
    if decision.approved:
        await workflow.execute_activity(issue_refund, decision.args, ...)

`wait_for_decision` follows the convention of console.integrations.temporal_convention: it registers the
`approval_decision` Update (with its validator), puts the request in the `approval_request` memo, sets `ApprovalState`
to `waiting`, and waits until a decision is applied or the timeout passes. A workflow waits for one request at a time;
a later wait in the same run is a new item (its own key), and a decision meant for the earlier one gets `conflict`.

Edits are checked against the request's `args_schema` by the console before they are sent; the workflow checks the
verdict, the digests and the deadline (a validator must be deterministic and quick, so it runs no schema engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():  # pure and deterministic: loaded once, outside the sandbox
    from console.integrations import temporal_convention as convention

_STATE = SearchAttributeKey.for_keyword(convention.STATE_ATTRIBUTE)
_SINCE = SearchAttributeKey.for_datetime(convention.SINCE_ATTRIBUTE)


@dataclass(frozen=True)
class Request:
    """What the operator is asked: PROTOCOL.md's item fields (the console derives id and digest)."""

    action: str | None  # the action's name; None for an escalation without one
    args: dict[str, Any] = field(default_factory=dict)  # exactly what runs if approved
    risk: Literal["low", "medium", "high", "critical"] = "medium"
    kind: Literal["approval", "escalation"] = "approval"
    agent: str = ""  # default: the workflow type
    args_schema: dict[str, Any] | None = None  # JSON Schema an edit must satisfy
    output: Any = None  # an escalation's output in doubt
    summary: str = ""
    reasoning: str = ""
    evidence: Sequence[str] = ()
    links: Sequence[str] = ()
    confidence: float | None = None
    policy: str = ""
    on_expiry: str = "reject"  # what the workflow does at the deadline: reject, approve, or any text
    allowed_decisions: Sequence[Literal["approve", "reject", "edit"]] = ("approve", "reject", "edit")


@dataclass(frozen=True)
class Decision:
    """What came back: a human's decision, or the deadline passing (`expired`, verdict from `on_expiry`)."""

    verdict: Literal["approve", "reject", "edit"]
    args: dict[str, Any]  # what to run: the edited arguments after an edit, the proposed ones otherwise
    output: Any  # an escalation's output: the corrected one after an edit
    expired: bool = False
    reason_code: str | None = None
    comment: str = ""
    operator: str = ""
    decided_at: str = ""
    decision_id: str = ""

    @property
    def approved(self) -> bool:
        return self.verdict in ("approve", "edit")


async def wait_for_decision(request: Request, *, timeout: timedelta | None = None) -> Decision:  # noqa: ASYNC109
    """Ask a human and wait: until a decision is applied, or `timeout` passes (None: no deadline).

    `timeout` is the request's deadline, shown to the operator and enforced by the workflow's own timer; not a
    cancellation scope (hence not asyncio.timeout).
    """
    now = workflow.now()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # visibility keeps milliseconds: no rounding up
    info = workflow.info()
    memo = _memo(request, info.workflow_type, now.isoformat(), (now + timeout).isoformat() if timeout else None)
    state: dict[str, Any] = {}  # "decision": the applied input; "outcome": what the outcome memo says

    def validator(decision: Any) -> None:
        problem = convention.refusal(memo, state.get("outcome"), decision, workflow.now())
        if problem is not None:
            raise ApplicationError(str(problem), problem.details, type=problem.kind, non_retryable=True)

    async def handler(decision: Any) -> dict[str, Any]:
        if "outcome" in state:  # two updates accepted in one task: the first one's handler ran first
            validator(decision)
        state["decision"] = decision
        state["outcome"] = convention.outcome_of(decision)
        return {"outcome": "applied", "decision_id": decision["decision_id"], "applied_at": workflow.now().isoformat()}

    workflow.set_update_handler(convention.UPDATE_NAME, handler, validator=validator)
    workflow.upsert_memo({convention.REQUEST_MEMO: memo, convention.OUTCOME_MEMO: None})
    workflow.upsert_search_attributes([_STATE.value_set(convention.WAITING), _SINCE.value_set(now)])
    try:
        await workflow.wait_condition(lambda: "decision" in state, timeout=timeout)
    except TimeoutError:
        state["outcome"] = {"state": convention.EXPIRED, "on_expiry": request.on_expiry}
        workflow.upsert_memo({convention.OUTCOME_MEMO: state["outcome"]})
        workflow.upsert_search_attributes([_STATE.value_set(convention.EXPIRED)])
        verdict: Literal["approve", "reject"] = "approve" if request.on_expiry == "approve" else "reject"
        return Decision(verdict, dict(request.args), request.output, expired=True)
    workflow.upsert_memo({convention.OUTCOME_MEMO: state["outcome"]})
    workflow.upsert_search_attributes([_STATE.value_set(convention.DECIDED)])
    return _decision(request, state["decision"])


def _memo(request: Request, workflow_type: str, created_at: str, expires_at: str | None) -> dict[str, Any]:
    """The `approval_request` memo: the request with the fields the digest covers, nothing derived."""
    action = None
    if request.action is not None:
        action = {"name": request.action, "args": dict(request.args)}
        if request.args_schema is not None:
            action["args_schema"] = request.args_schema
    context = {
        "summary": request.summary,
        "reasoning": request.reasoning,
        "evidence": list(request.evidence),
        "links": list(request.links),
    }
    return {
        "version": convention.VERSION,
        "key": workflow.uuid4().hex[:12],  # deterministic on replay; tells this wait from a later one in the run
        "kind": request.kind,
        "agent": request.agent or workflow_type,
        "workflow": workflow_type,
        "action": action,
        "output": request.output,
        "context": context,
        "confidence": request.confidence,
        "risk": request.risk,
        "policy": request.policy,
        "created_at": created_at,
        "expires_at": expires_at,
        "on_expiry": request.on_expiry,
        "allowed_decisions": list(request.allowed_decisions),
    }


def _decision(request: Request, applied: dict[str, Any]) -> Decision:
    verdict = applied["verdict"]
    edited = applied.get("edited") if verdict == "edit" else None
    args = edited if edited is not None and request.kind == "approval" else dict(request.args)
    output = edited if verdict == "edit" and request.kind == "escalation" else request.output
    return Decision(
        verdict,
        args,
        output,
        reason_code=applied.get("reason_code"),
        comment=str(applied.get("comment") or ""),
        operator=applied["operator"],
        decided_at=applied["decided_at"],
        decision_id=applied["decision_id"],
    )
