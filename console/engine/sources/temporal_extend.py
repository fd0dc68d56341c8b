"""More time for a Temporal item (PROTOCOL.md, "Temporal workflows", and section 10): the `approval_extend` Update's
request and answers, read. Pure, like temporal_payloads beside it; the transport is TemporalSource.extend.

The workflow decides (its validator refuses with the outcome's name as the ApplicationError type); what a refusal
means to the operator is said once, by the native source's `extend_refused`, for every source.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from console.engine.sources.base import ExtendAnswer
from console.engine.sources.native_payloads import extend_refused
from console.engine.sources.temporal_payloads import Execution, failure_of, payload, payload_value
from console.integrations import temporal_convention as convention
from storage.records import Outcome


def extend_body(workflow_id: str, run_id: str, request_digest: str, seconds: int, operator: str) -> dict[str, Any]:
    """The Update request. A fresh update id each time: a resend after a lost answer meets the new digest and is
    refused as stale, as on a native source, so the deadline never moves twice."""
    ask = {"request_digest": request_digest, "seconds": seconds, "operator": operator}
    return {
        "workflowExecution": {"workflowId": workflow_id, "runId": run_id},
        "waitPolicy": {"lifecycleStage": "UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED"},
        "request": {
            "meta": {"updateId": f"extend-{uuid.uuid4().hex}", "identity": f"approval-console:{operator}"[:200]},
            "input": {"name": convention.EXTEND_UPDATE, "args": {"payloads": [payload(ask)]}},
        },
    }


def extended_execution(body: dict[str, Any] | None, execution: Execution) -> Execution | ExtendAnswer:
    """A 200 answer to the Update: the run with its new request (for the caller to translate, as a listing would),
    or the workflow's refusal as the operator reads it."""
    outcome = body.get("outcome") if body is not None else None
    if not isinstance(outcome, dict):
        return ExtendAnswer(None, "the extension is not complete yet; the next listing shows whether it went through")
    if "success" in outcome:
        success = outcome["success"]
        payloads = success.get("payloads") if isinstance(success, dict) else None
        value, size, problem = payload_value(payloads[0] if isinstance(payloads, list) and payloads else None)
        if problem or not isinstance(value, dict) or value.get("outcome") != convention.EXTENDED:
            return ExtendAnswer(None, "the workflow answered the extension with something this console cannot read")
        request = value.get("request")
        size = len(json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode())
        return dataclasses.replace(execution, request=request, request_bytes=size, problem="")
    failure = failure_of(outcome)
    if failure is None:
        return ExtendAnswer(None, "an update outcome that is neither success nor failure; nothing changed")
    kind, message, _details = failure
    return extend_refused(kind, message) or ExtendAnswer(None, f"the workflow refused more time: {message}")


def closed_extend_answer(execution: Execution | None) -> ExtendAnswer:
    """A run that takes no more updates (ended, or gone): what its own record says happened to the item."""
    if execution is None:
        return _refused(Outcome.not_found, "Temporal no longer has this workflow run")
    recorded = execution.outcome
    if recorded.get("state") == convention.DECIDED:
        return _refused(Outcome.conflict, f"by {recorded.get('decided_by')} ({recorded.get('verdict')})")
    if recorded.get("state") == convention.EXPIRED or execution.state == convention.EXPIRED:
        return _refused(Outcome.expired, "")
    status = execution.status.removeprefix("WORKFLOW_EXECUTION_STATUS_").lower() or "closed"
    return _refused(Outcome.not_found, f"the workflow run ended ({status})")


def _refused(outcome: Outcome, detail: str) -> ExtendAnswer:
    return extend_refused(outcome.value, detail) or ExtendAnswer(None, detail or outcome.value)
