"""`approval-console mcp --queue URL`: an MCP server (stdio, the official `mcp` package, extra `approval-console[mcp]`)
whose tools post into the queue and return once an operator decides.

- `request_approval`: any MCP client asks before a risky action; the answer is the decision (verdict, the arguments to
  run, the reason, the operator).
- `permission_prompt`: the contract of Claude Code's `--permission-prompt-tool` (input `tool_name`, `input`,
  `tool_use_id`; the answer a JSON text, `{"behavior": "allow", "updatedInput": {...}}` or
  `{"behavior": "deny", "message": "..."}`), so a headless Claude Code asks the operator before each tool it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Coroutine
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer

from console.bridges.queue_client import Outcome, QueueClient, Request

# Claude Code names the tools mcp__approval__request_approval and mcp__approval__permission_prompt.
SERVER_NAME = "approval"
PROGRESS_EVERY = 10.0  # seconds between progress notifications while a call waits: clients that time out idle calls


def permission_answer(outcome: Outcome, original: dict[str, Any]) -> dict[str, Any]:
    """The permission prompt's answer for an outcome: allow with the input to run (the operator's edit, if any)."""
    if outcome.allowed:
        return {"behavior": "allow", "updatedInput": outcome.args if outcome.verdict == "edit" else original}
    return {"behavior": "deny", "message": f"approval-console: {outcome.reason}"}


async def waiting(ctx: Context[Any, Any], asking: Coroutine[Any, Any, Outcome], every: float, total: float) -> Outcome:
    """Wait for the operator, telling a client that asked for progress every `every` seconds that the call is alive
    (MCP clients that reset their request timeout on progress then wait as long as the deadline)."""
    task = asyncio.ensure_future(asking)
    started = asyncio.get_running_loop().time()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            elapsed = asyncio.get_running_loop().time() - started
            with contextlib.suppress(Exception):  # a client gone or not listening changes nothing about the decision
                await ctx.report_progress(min(elapsed, total), total, "waiting for the operator's decision")
    finally:
        task.cancel()  # a call the client cancelled: its ask stops and withdraws the item (nothing when done)


def build_server(
    queue: QueueClient, *, deadline_seconds: float, workflow: str = "mcp", progress_every: float = PROGRESS_EVERY
) -> MCPServer:
    limit = deadline_seconds  # a tool call may ask for less time, never more
    server = MCPServer(
        SERVER_NAME,
        instructions="Ask a human operator before risky actions; run an action only when the answer allows it.",
    )

    @server.tool(
        description=(
            "Ask the on-call operator to approve an action before running it. Blocks until a decision (or the "
            "deadline: then it is denied). Run the action only if `allowed` is true, with the returned `args` (the "
            "operator may have edited them); otherwise do not run it and tell the user the `reason`."
        )
    )
    async def request_approval(
        action: str,
        args: dict[str, Any],
        summary: str = "",
        risk: Literal["low", "medium", "high", "critical"] = "high",
        deadline_seconds: float | None = None,
        request_id: str | None = None,
        *,
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        wait = deadline_seconds if deadline_seconds is not None and deadline_seconds > 0 else limit
        request = Request(
            request_id=request_id or f"mcp-{uuid.uuid4()}",
            action=action,
            args=args,
            summary=summary,
            risk=risk,
            workflow=workflow,
        )
        wait = min(wait, limit)
        outcome = await waiting(ctx, queue.ask(request, deadline_seconds=wait), progress_every, wait)
        return outcome.as_json()

    @server.tool(
        description="Claude Code's --permission-prompt-tool: asks the on-call operator whether a tool may run.",
    )
    async def permission_prompt(
        tool_name: str, input: dict[str, Any], tool_use_id: str | None = None, *, ctx: Context[Any, Any]
    ) -> str:
        # The argument names are the contract's (`input` included).
        request = Request(
            request_id=tool_use_id or f"mcp-{uuid.uuid4()}",
            action=tool_name,
            args=input,
            summary=f"Claude Code asks to run {tool_name}",
            policy="Claude Code asks before this tool runs",
            workflow=workflow,
        )
        outcome = await waiting(ctx, queue.ask(request, deadline_seconds=limit), progress_every, limit)
        return json.dumps(permission_answer(outcome, input))

    return server


async def serve_stdio(url: str, token: str, *, deadline_seconds: float, progress_every: float = PROGRESS_EVERY) -> None:
    async with QueueClient(url, token) as queue:
        server = build_server(queue, deadline_seconds=deadline_seconds, progress_every=progress_every)
        await server.run_stdio_async()
