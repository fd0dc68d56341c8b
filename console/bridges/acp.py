"""ACP (Agent Client Protocol): a client's `session/request_permission` answered by the operator through the queue.

The options an ACP agent offers map onto decisions:

| the operator's decision                             | the option chosen | kept                        |
|-----------------------------------------------------|-------------------|-----------------------------|
| approve                                             | allow_once        |                             |
| edit, with `always` set to true                     | allow_always      | a standing approval         |
| reject                                              | reject_once       |                             |
| reject, with a comment that starts with "always"    | reject_always     | a standing rejection        |
| no decision by the deadline, queue down, an error   | reject_once, else cancelled                     |

A standing answer (console/bridges/standing.py) answers the same agent's same tool call title without asking, until
the operator revokes it (`approval-console approvals revoke N`). ACP cannot run edited input, so an edit that changes
`tool_input` is refused (the action is not taken) with that reason. A kind the agent does not offer falls back to its
"once" twin; with no option to allow, the request is cancelled, which the agent takes as a denial.
"""

from __future__ import annotations

from typing import Any

from acp.schema import (
    AllowedOutcome,
    DeniedOutcome,
    PermissionOption,
    PermissionOptionKind,
    RequestPermissionRequest,
    RequestPermissionResponse,
)

from console.bridges.queue_client import Outcome, QueueClient, Request
from console.bridges.standing import Answer, StandingApprovals

ALWAYS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tool_input", "always"],
    "properties": {"always": {"type": "boolean"}},
}


def chosen_kind(outcome: Outcome, original_input: Any) -> PermissionOptionKind:
    """The option kind for an operator's outcome (ACP's answer carries no message: the reason stays in the queue)."""
    if not outcome.allowed:
        if outcome.verdict == "reject" and outcome.comment.lower().startswith("always"):
            return "reject_always"
        return "reject_once"
    if outcome.verdict != "edit":
        return "allow_once"
    if outcome.args.get("tool_input") != original_input:
        return "reject_once"  # an edited input: ACP cannot run it instead of the agent's own
    return "allow_always" if outcome.args.get("always") is True else "allow_once"


def pick(options: list[PermissionOption], kind: PermissionOptionKind) -> PermissionOption | None:
    """The option of `kind`, else its "once" twin for an "always" kind; never an allow for a reject."""
    for wanted in (kind, kind.replace("always", "once")):
        for option in options:
            if option.kind == wanted:
                return option
    return None


def response_for(options: list[PermissionOption], kind: PermissionOptionKind) -> RequestPermissionResponse:
    option = pick(options, kind)
    if option is None:
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
    return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=option.option_id))


async def request_permission(
    params: RequestPermissionRequest,
    *,
    queue: QueueClient,
    standing: StandingApprovals,
    agent: str,
    deadline_seconds: float,
) -> RequestPermissionResponse:
    """Answer an ACP permission request: from a standing answer, else from the operator's decision."""
    call = params.tool_call
    action = call.title or call.kind or "tool call"
    kept = standing.lookup(agent, action)
    if kept is not None:
        return response_for(params.options, "allow_always" if kept.answer == "allow" else "reject_always")
    request = Request(
        request_id=f"acp-{params.session_id}-{call.tool_call_id}",
        action=action,
        args={"tool_input": call.raw_input, "always": False},
        summary=f"{agent} asks to run: {action}",
        policy="set `always` to true in an edit to allow this from now on",
        workflow="acp",
        evidence=(f"tool kind: {call.kind or 'unknown'}",),
        args_schema=ALWAYS_SCHEMA,
    )
    outcome = await queue.ask(request, deadline_seconds=deadline_seconds)
    kind = chosen_kind(outcome, call.raw_input)
    if kind in ("allow_always", "reject_always"):
        answer: Answer = "allow" if kind == "allow_always" else "reject"
        standing.record(agent, action, answer, decided_by=outcome.operator, item_id=outcome.item_id)
    return response_for(params.options, kind)
