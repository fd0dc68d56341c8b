"""Waiting for a human inside a Temporal workflow, so that the approval console lists the request and decides it.

Install with `pip install 'approval-console[temporal]'`; register the two search attributes once per namespace
(`temporal operator search-attribute create --name ApprovalState --type Keyword` and `--name ApprovalSince --type
Datetime`; on the dev server `--search-attribute ApprovalState=Keyword --search-attribute ApprovalSince=Datetime`).
Then, in a workflow:

    from console.integrations import temporal_workflow as approvals

    decision = await approvals.wait_for_decision(
        approvals.Request("issue_refund", {"amount": 1250}, risk="high"),
        timeout=timedelta(minutes=15),
        max_extend=timedelta(hours=1),  # optional: operators may give it up to an hour more in all (`x`)
    )
    if decision.approved:
        await workflow.execute_activity(issue_refund, decision.args, ...)

`wait_for_decision` follows the convention of console.integrations.temporal_convention: it registers the
`approval_decision` Update (with its validator), puts the request in the `approval_request` memo, sets `ApprovalState`
to `waiting`, and waits until a decision is applied or the timeout passes. A workflow waits for one request at a time;
a later wait in the same run is a new item (its own key), and a decision meant for the earlier one gets `conflict`.
With `max_extend` it also publishes the request's `extend` offer and registers the `approval_extend` Update, which
moves the deadline (the timer restarts at the new one) as a new version of the request.

Edits are checked against the request's `args_schema` by the console before they are sent; the workflow checks the
verdict, the digests and the deadline (a validator must be deterministic and quick, so it runs no schema engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():  # pure and deterministic: loaded once, outside the sandbox
    from console.integrations import temporal_convention as convention
    from storage.records import MAX_EXTEND_SECONDS

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


async def wait_for_decision(
    request: Request,
    *,
    timeout: timedelta | None = None,  # noqa: ASYNC109
    max_extend: timedelta | None = None,
) -> Decision:
    """Ask a human and wait: until a decision is applied, or `timeout` passes (None: no deadline).

    `timeout` is the request's deadline, shown to the operator and enforced by the workflow's own timer; not a
    cancellation scope (hence not asyncio.timeout). `max_extend` (whole seconds, at most a week; needs a `timeout`)
    lets operators move that deadline later by up to that much in all (the console's `x`): only offer what the
    workflow is willing to wait.
    """
    offer = _offer(timeout, max_extend)
    now = _to_millisecond(workflow.now())
    info = workflow.info()
    memo = _memo(request, info.workflow_type, now.isoformat(), (now + timeout).isoformat() if timeout else None)
    if offer is not None:
        memo["extend"] = offer
    state: dict[str, Any] = {"since": now}  # "decision": the applied input; "outcome": what the outcome memo says

    def validator(decision: Any) -> None:
        _raise(convention.refusal(memo, state.get("outcome"), decision, workflow.now()))

    async def handler(decision: Any) -> dict[str, Any]:
        validator(decision)  # again: an update accepted in the same task (a decision, more time) may have run first
        state["decision"] = decision
        state["outcome"] = convention.outcome_of(decision)
        return {"outcome": "applied", "decision_id": decision["decision_id"], "applied_at": workflow.now().isoformat()}

    def extend_validator(ask: Any) -> None:
        _raise(convention.extend_refusal(memo, state.get("outcome"), ask, workflow.now()))

    async def extend_handler(ask: Any) -> dict[str, Any]:
        extend_validator(ask)  # again, for the same reason
        memo.update(convention.extended(memo, ask["seconds"]))
        # A new version: ApprovalSince moves on (strictly later) so a console's incremental poll reads the run again.
        state["since"] = max(_to_millisecond(workflow.now()), state["since"] + timedelta(milliseconds=1))
        workflow.upsert_memo({convention.REQUEST_MEMO: memo})
        workflow.upsert_search_attributes([_SINCE.value_set(state["since"])])
        return {
            "outcome": convention.EXTENDED,
            "expires_at": memo["expires_at"],
            "request_digest": convention.request_digest(memo),
            "extended_by": ask["operator"],
            "request": memo,
        }

    workflow.set_update_handler(convention.UPDATE_NAME, handler, validator=validator)
    workflow.set_update_handler(convention.EXTEND_UPDATE, extend_handler, validator=extend_validator)
    workflow.upsert_memo({convention.REQUEST_MEMO: memo, convention.OUTCOME_MEMO: None})
    workflow.upsert_search_attributes([_STATE.value_set(convention.WAITING), _SINCE.value_set(now)])
    if not await _decided_in_time(memo, state):
        state["outcome"] = {"state": convention.EXPIRED, "on_expiry": request.on_expiry}
        workflow.upsert_memo({convention.OUTCOME_MEMO: state["outcome"]})
        workflow.upsert_search_attributes([_STATE.value_set(convention.EXPIRED)])
        verdict: Literal["approve", "reject"] = "approve" if request.on_expiry == "approve" else "reject"
        return Decision(verdict, dict(request.args), request.output, expired=True)
    workflow.upsert_memo({convention.OUTCOME_MEMO: state["outcome"]})
    workflow.upsert_search_attributes([_STATE.value_set(convention.DECIDED)])
    return _decision(request, state["decision"])


async def _decided_in_time(memo: dict[str, Any], state: dict[str, Any]) -> bool:
    """Wait for the decision until the request's deadline; an extension moves the deadline, so the timer restarts."""
    while True:
        deadline = memo["expires_at"]
        timeout = None if deadline is None else datetime.fromisoformat(deadline) - workflow.now()
        if timeout is not None and timeout <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(
                lambda: "decision" in state or memo["expires_at"] != deadline,  # noqa: B023 (read while waiting)
                timeout=timeout,
            )
        except TimeoutError:
            return False
        if "decision" in state:
            return True


def _offer(timeout: timedelta | None, max_extend: timedelta | None) -> dict[str, int] | None:
    """The request's `extend` offer, or None; a helper called wrongly fails the workflow task (a code bug)."""
    if max_extend is None:
        return None
    seconds = max_extend.total_seconds()
    if timeout is None or seconds != int(seconds) or not 0 < seconds <= MAX_EXTEND_SECONDS:
        raise ValueError(f"max_extend needs a timeout and whole seconds from 1 to {MAX_EXTEND_SECONDS}")
    return {"max_seconds": int(seconds), "used_seconds": 0}


def _to_millisecond(when: datetime) -> datetime:
    return when.replace(microsecond=when.microsecond // 1000 * 1000)  # visibility keeps milliseconds: no rounding up


def _raise(problem: convention.Refusal | None) -> None:
    if problem is not None:
        raise ApplicationError(str(problem), problem.details, type=problem.kind, non_retryable=True)


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
