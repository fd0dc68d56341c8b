"""The MCP bridge: the real `mcp` client SDK spawns `approval-console mcp --queue URL` over stdio, against a real
`serve` on loopback; each tool call blocks until the operator decides through a real console Session (polling serve as
a native source with an operator token). The permission prompt's answers are checked against the shape Claude Code's
`--permission-prompt-tool` documents (`{"behavior": "allow", "updatedInput": {...}}` or
`{"behavior": "deny", "message": "..."}`); Claude Code itself cannot run offline, so the contract is checked here."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent

from console.cli.commands import main
from storage.records import Verdict
from tests.bridge_operator import Operator
from tests.conftest import eventually
from tests.queue_servers import OPERATOR, ROOT, TestServe, fixed_token

AGENT = "billing-agent"


@asynccontextmanager
async def mcp_bridge(
    url: str,
    *,
    deadline: float = 30.0,
    token: str | None = None,
    errlog: TextIO = sys.stderr,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[ClientSession]:
    """`python -m console.cli mcp --queue URL` spawned by the MCP SDK's own stdio client, initialised."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "console.cli", "mcp", "--queue", url, "--deadline", str(deadline), *extra],
        env={"APPROVAL_CONSOLE_TOKEN_QUEUE": token or fixed_token("agent", AGENT), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    [block] = result.content
    assert isinstance(block, TextContent)
    return block.text


def prompt_args(tool_use_id: str, **tool_input: Any) -> dict[str, Any]:
    return {"tool_name": "Bash", "input": tool_input or {"command": "rm -rf build/"}, "tool_use_id": tool_use_id}


async def test_the_bridge_lists_both_tools_with_their_contract(serve: TestServe) -> None:
    async with mcp_bridge(serve.url) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == {"request_approval", "permission_prompt"}
    prompt_schema = tools["permission_prompt"].input_schema
    assert set(prompt_schema["properties"]) == {"tool_name", "input", "tool_use_id"}
    assert set(prompt_schema["required"]) == {"tool_name", "input"}
    assert {"action", "args", "summary", "risk", "deadline_seconds"} <= set(
        tools["request_approval"].input_schema["properties"]
    )


async def test_a_permission_prompt_waits_for_the_operator_and_allows_on_approve(
    serve: TestServe, operator: Operator
) -> None:
    async with mcp_bridge(serve.url) as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", prompt_args("toolu_01")))
        item = await operator.next_pending()
        await asyncio.sleep(0.5)
        assert not call.done(), "the tool call waits for the operator"
        await operator.decide(item, Verdict.approve)
        answer = json.loads(text_of(await call))
    assert item.action is not None and (item.action.name, item.action.args) == ("Bash", {"command": "rm -rf build/"})
    assert item.agent == AGENT
    assert answer == {"behavior": "allow", "updatedInput": {"command": "rm -rf build/"}}


async def test_a_waiting_call_reports_progress_to_a_client_that_asks_for_it(
    serve: TestServe, operator: Operator
) -> None:
    heard: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message))

    async with mcp_bridge(serve.url, deadline=30.0, extra=("--progress-every", "0.1")) as mcp:
        call = asyncio.create_task(
            mcp.call_tool("permission_prompt", prompt_args("toolu_p"), progress_callback=progress)
        )
        item = await operator.next_pending()
        await eventually(lambda: len(heard) >= 2, what="progress while nobody has decided")
        await operator.decide(item, Verdict.approve)
        answer = json.loads(text_of(await call))
    assert answer["behavior"] == "allow"
    assert all(total == 30.0 and message == "waiting for the operator's decision" for _, total, message in heard)
    assert [done for done, _, _ in heard] == sorted(done for done, _, _ in heard)


async def test_a_call_the_client_cancels_withdraws_its_item(serve: TestServe, operator: Operator) -> None:
    async with mcp_bridge(serve.url) as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", prompt_args("toolu_c")))
        item = await operator.next_pending()
        call.cancel()  # the SDK tells the server (notifications/cancelled)
        with pytest.raises(asyncio.CancelledError):
            await call

        def state() -> str:
            with serve._lock:
                rec = serve._records.get(item.id)
            return rec.state if rec is not None else "?"

        await eventually(lambda: state() == "withdrawn", what="the cancelled call's item withdrawn")
    assert serve.pending() == []


async def test_an_edit_comes_back_as_the_updated_input(serve: TestServe, operator: Operator) -> None:
    async with mcp_bridge(serve.url) as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", prompt_args("toolu_02")))
        await operator.decide_next(Verdict.edit, edited={"command": "rm -rf build/cache"})
        answer = json.loads(text_of(await call))
    assert answer == {"behavior": "allow", "updatedInput": {"command": "rm -rf build/cache"}}


async def test_a_reject_is_a_deny_with_the_operators_reason(serve: TestServe, operator: Operator) -> None:
    async with mcp_bridge(serve.url) as mcp:
        call = asyncio.create_task(mcp.call_tool("permission_prompt", prompt_args("toolu_03")))
        await operator.decide_next(Verdict.reject, reason_code="unsafe", comment="not on a Friday")
        answer = json.loads(text_of(await call))
    assert answer["behavior"] == "deny" and set(answer) == {"behavior", "message"}
    assert f"rejected by the operator {OPERATOR}: unsafe (not on a Friday)" in answer["message"]


async def test_request_approval_returns_the_decision_with_edited_args(serve: TestServe, operator: Operator) -> None:
    arguments = {
        "action": "issue_refund",
        "args": {"customer_id": "cus_1042", "amount": 1250.0},
        "summary": "double charge on INV-2211",
        "risk": "critical",
        "deadline_seconds": 60,
        "request_id": "refund-INV-2211",
    }
    async with mcp_bridge(serve.url) as mcp:
        call = asyncio.create_task(mcp.call_tool("request_approval", arguments))
        item = await operator.decide_next(Verdict.edit, edited={"customer_id": "cus_1042", "amount": 500.0})
        result = await call
        # The same request id again (a client that retried): the same item, already decided, at once.
        again = await mcp.call_tool("request_approval", arguments)
    assert item.risk == "critical" and item.context.summary == "double charge on INV-2211"
    decision = result.structured_content
    assert decision == {
        "allowed": True,
        "verdict": "edit",
        "args": {"customer_id": "cus_1042", "amount": 500.0},
        "reason": f"approved by the operator {OPERATOR} with edited arguments",
        "operator": OPERATOR,
        "item_id": item.id,
    }
    assert json.loads(text_of(result)) == decision
    assert again.structured_content == decision


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_queue_that_is_down_is_a_deny_after_the_deadline_never_an_allow() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with mcp_bridge(url, deadline=1.0) as mcp:
        answer = json.loads(text_of(await mcp.call_tool("permission_prompt", prompt_args("toolu_04"))))
        decision = (await mcp.call_tool("request_approval", {"action": "drop_table", "args": {}})).structured_content
    assert answer["behavior"] == "deny" and "could not be reached before the deadline" in answer["message"]
    assert decision is not None and decision["allowed"] is False and decision["verdict"] is None


async def test_no_decision_by_the_deadline_is_a_deny_and_the_item_leaves_the_queue(serve: TestServe) -> None:
    async with mcp_bridge(serve.url, deadline=1.0) as mcp:
        answer = json.loads(text_of(await mcp.call_tool("permission_prompt", prompt_args("toolu_05"))))
    assert answer == {"behavior": "deny", "message": "approval-console: no decision before the deadline"}
    with serve._lock:
        states = [rec.state for rec in dict.values(serve._records) if rec.item["action"]["name"] == "Bash"]
    # Expired at its deadline (the server's clock), or withdrawn by the bridge if that came first: never pending.
    assert len(states) == 1 and states[0] in {"expired", "withdrawn"} and serve.pending() == []


async def test_a_wrong_token_is_a_deny_at_once_with_the_refusal_and_no_token_in_it(
    serve: TestServe, tmp_path: Path
) -> None:
    wrong = "acs_" + "w" * 43
    with (tmp_path / "bridge.err").open("w+") as errlog:
        async with mcp_bridge(serve.url, deadline=30.0, token=wrong, errlog=errlog) as mcp:
            answer = json.loads(text_of(await mcp.call_tool("permission_prompt", prompt_args("toolu_06"))))
        errlog.seek(0)
        stderr = errlog.read()
    assert answer["behavior"] == "deny" and "401 unauthorized" in answer["message"]
    assert wrong not in answer["message"] and wrong not in stderr and "w" * 20 not in stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mcp", "--queue", "ftp://queue"], "is not an http(s) URL"),
        (["mcp", "--queue", "https://agent:secret@queue.example"], "was given with credentials in it"),
        (["mcp", "--queue", "http://queue.example:8800"], "plain http to another machine"),
        (["mcp", "--queue", "http://127.0.0.1:8800", "--token-name", "nowhere"], "APPROVAL_CONSOLE_TOKEN_NOWHERE"),
    ],
)
def test_a_bad_command_line_is_one_line_and_shows_no_secret(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APPROVAL_CONSOLE_TOKEN_NOWHERE", raising=False)
    monkeypatch.setattr("console.engine.secrets._keyring_backend_usable", lambda: False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "secret" not in err


def test_without_the_mcp_extra_the_command_names_it_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPROVAL_CONSOLE_TOKEN_QUEUE", fixed_token("agent", AGENT))
    monkeypatch.delitem(sys.modules, "console.bridges.mcp_server", raising=False)
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # as if the package were not installed
    assert main(["mcp", "--queue", "http://127.0.0.1:8800"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'approval-console[mcp]'" in err and err.count("\n") == 1
