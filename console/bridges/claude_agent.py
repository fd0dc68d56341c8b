"""The Claude Agent SDK bridge (extra `approval-console[claude-agent-sdk]`): a `can_use_tool` callback that asks the
operator through the queue before each tool Claude wants to run.

    async with QueueClient(url, token) as queue:
        options = ClaudeAgentOptions(can_use_tool=ask_operator(queue, deadline_seconds=300))

The operator's approve is `PermissionResultAllow()` (the tool runs with Claude's own input), an edit is
`PermissionResultAllow(updated_input=...)` (it runs with the operator's input), and anything else (a reject, an expiry,
a queue that is down, no decision by the deadline) is `PermissionResultDeny(message=...)` with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from claude_agent_sdk import PermissionResult, PermissionResultAllow, PermissionResultDeny, ToolPermissionContext

from console.bridges.queue_client import Outcome, QueueClient, Request

CanUseTool = Callable[[str, dict[str, Any], ToolPermissionContext], Coroutine[Any, Any, PermissionResult]]


def permission_result(outcome: Outcome) -> PermissionResult:
    if not outcome.allowed:
        return PermissionResultDeny(message=f"approval-console: {outcome.reason}")
    if outcome.verdict == "edit":
        return PermissionResultAllow(updated_input=outcome.args)
    return PermissionResultAllow()


def ask_operator(queue: QueueClient, *, deadline_seconds: float = 300.0, workflow: str = "claude-agent") -> CanUseTool:
    """The `can_use_tool` callback: one item per tool use (its `tool_use_id` is the request id)."""

    async def can_use_tool(
        tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResult:
        request = Request(
            request_id=context.tool_use_id or f"claude-{uuid.uuid4()}",
            action=tool_name,
            args=tool_input,
            summary=f"Claude asks to run {tool_name}",
            policy="Claude asks before this tool runs",
            workflow=workflow,
        )
        return permission_result(await queue.ask(request, deadline_seconds=deadline_seconds))

    return can_use_tool
