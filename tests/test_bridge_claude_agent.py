"""The Claude Agent SDK bridge: its `can_use_tool` callback against a real `serve`, the operator deciding through a real
console Session. Claude (the CLI the SDK drives) cannot run offline, so the callback is called directly with the SDK's
own types, and the SDK's own control-protocol handler (`Query._handle_control_request`, over a transport that records
what it would send to the CLI) turns its answers into the wire messages Claude Code reads."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, ToolPermissionContext, Transport
from claude_agent_sdk._internal.query import Query

from console.bridges.claude_agent import ask_operator
from console.bridges.queue_client import QueueClient
from storage.records import Verdict
from tests.bridge_operator import Operator
from tests.queue_servers import OPERATOR, TestServe, fixed_token

AGENT = "billing-agent"
BASH = {"command": "git push --force origin main"}


class RecordingTransport(Transport):
    """What the SDK would write to the Claude CLI's stdin, kept; nothing is read."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def connect(self) -> None:
        return None

    async def write(self, data: str) -> None:
        self.sent.append(json.loads(data))

    async def read_messages(self) -> AsyncIterator[dict[str, Any]]:
        return
        yield {}

    async def close(self) -> None:
        return None

    def is_ready(self) -> bool:
        return True

    async def end_input(self) -> None:
        return None


async def control_answer(queue: QueueClient, operator: Operator, verdict: Verdict, **decision: Any) -> dict[str, Any]:
    """The SDK's own handler asks the callback (as the Claude CLI's `can_use_tool` request would make it), the operator
    decides; the control response the SDK writes back to the CLI."""
    transport = RecordingTransport()
    query = Query(transport, is_streaming_mode=True, can_use_tool=ask_operator(queue, deadline_seconds=30))
    request = {
        "type": "control_request",
        "request_id": "req_1",
        "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": BASH, "tool_use_id": "toolu_sdk"},
    }
    handling = asyncio.create_task(query._handle_control_request(request))  # type: ignore[arg-type]
    await operator.decide_next(verdict, **decision)
    await handling
    [sent] = transport.sent
    assert sent["type"] == "control_response" and sent["response"]["subtype"] == "success"
    answer: dict[str, Any] = sent["response"]["response"]
    return answer


async def test_an_approval_allows_with_claudes_own_input(queue: QueueClient, operator: Operator) -> None:
    ask = ask_operator(queue, deadline_seconds=30)
    call = asyncio.create_task(ask("Bash", BASH, ToolPermissionContext(tool_use_id="toolu_1")))
    item = await operator.next_pending()
    assert not call.done() and item.action is not None and (item.action.name, item.action.args) == ("Bash", BASH)
    await operator.decide(item, Verdict.approve)
    assert await call == PermissionResultAllow()
    assert await control_answer(queue, operator, Verdict.approve) == {"behavior": "allow", "updatedInput": BASH}


async def test_an_edit_allows_with_the_operators_input(queue: QueueClient, operator: Operator) -> None:
    safer = {"command": "git push origin main"}
    ask = ask_operator(queue, deadline_seconds=30)
    call = asyncio.create_task(ask("Bash", BASH, ToolPermissionContext(tool_use_id="toolu_2")))
    await operator.decide_next(Verdict.edit, edited=safer)
    assert await call == PermissionResultAllow(updated_input=safer)
    answer = await control_answer(queue, operator, Verdict.edit, edited=safer)
    assert answer == {"behavior": "allow", "updatedInput": safer}


async def test_a_reject_denies_with_the_operators_reason(queue: QueueClient, operator: Operator) -> None:
    ask = ask_operator(queue, deadline_seconds=30)
    call = asyncio.create_task(ask("Bash", BASH, ToolPermissionContext(tool_use_id="toolu_3")))
    await operator.decide_next(Verdict.reject, reason_code="unsafe", comment="never force-push main")
    reason = f"approval-console: rejected by the operator {OPERATOR}: unsafe (never force-push main)"
    assert await call == PermissionResultDeny(message=reason)
    answer = await control_answer(
        queue, operator, Verdict.reject, reason_code="unsafe", comment="never force-push main"
    )
    assert answer == {"behavior": "deny", "message": reason}


async def test_a_queue_that_is_down_denies_after_the_deadline() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with QueueClient(f"http://127.0.0.1:{port}", fixed_token("agent", AGENT)) as down:
        result = await ask_operator(down, deadline_seconds=0.5)("Bash", BASH, ToolPermissionContext(tool_use_id="t"))
    assert isinstance(result, PermissionResultDeny) and "could not be reached before the deadline" in result.message


async def test_a_cancelled_call_withdraws_its_item(queue: QueueClient, operator: Operator, serve: TestServe) -> None:
    """Claude abandons a permission request (the SDK cancels the callback): the operator is not left deciding it."""
    call = asyncio.create_task(ask_operator(queue, deadline_seconds=30)("Bash", BASH, ToolPermissionContext("t")))
    item = await operator.next_pending()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    headers = {"Authorization": f"Bearer {fixed_token('agent', AGENT)}"}
    async with httpx.AsyncClient(base_url=serve.url, headers=headers) as agent:
        state = (await agent.get(f"/v1/items/{item.id}/outcome")).json()
    assert state["state"] == "withdrawn"
