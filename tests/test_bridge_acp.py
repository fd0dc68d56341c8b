"""The ACP bridge: `session/request_permission` requests and answers built with the schema of ACP's own package
(`agent-client-protocol`), answered by the operator through a real `serve` and a real console Session; "always" answers
kept as standing approvals that `approval-console approvals list|revoke` shows and takes back. (No ACP agent runs
offline here: the bridge's function is called with the request an ACP client receives.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acp.schema import PermissionOption, PermissionOptionKind, RequestPermissionRequest, ToolCallUpdate

from console.bridges.acp import request_permission
from console.bridges.queue_client import QueueClient
from console.bridges.standing import StandingApprovals
from console.cli.commands import main
from storage.records import Verdict
from tests.bridge_operator import Operator
from tests.queue_servers import OPERATOR, TestServe, fixed_token

AGENT = "billing-agent"
ALL_KINDS: tuple[PermissionOptionKind, ...] = ("allow_once", "allow_always", "reject_once", "reject_always")


def permission_request(call_id: str, kinds: tuple[PermissionOptionKind, ...] = ALL_KINDS) -> RequestPermissionRequest:
    return RequestPermissionRequest(
        session_id="sess_1",
        tool_call=ToolCallUpdate(
            tool_call_id=call_id, title="Run `make deploy`", kind="execute", raw_input={"command": "make deploy"}
        ),
        options=[PermissionOption(option_id=f"opt-{kind}", name=kind, kind=kind) for kind in kinds],
    )


def chosen(response: Any) -> str:
    outcome = response.outcome
    return "cancelled" if outcome.outcome == "cancelled" else str(outcome.option_id)


@pytest.fixture
def standing(tmp_path: Path) -> Iterator[StandingApprovals]:
    with StandingApprovals(tmp_path / "bridges") as store:
        yield store


async def ask(queue: QueueClient, standing: StandingApprovals, call_id: str, **options: Any) -> Any:
    params = permission_request(call_id, **options)
    return await request_permission(params, queue=queue, standing=standing, agent="zed", deadline_seconds=30)


async def test_approve_and_reject_map_onto_the_once_options(
    queue: QueueClient, standing: StandingApprovals, operator: Operator
) -> None:
    approved = asyncio.create_task(ask(queue, standing, "call_1"))
    item = await operator.decide_next(Verdict.approve)
    assert chosen(await approved) == "opt-allow_once"
    assert item.action is not None and item.action.args == {"tool_input": {"command": "make deploy"}, "always": False}
    rejected = asyncio.create_task(ask(queue, standing, "call_2"))
    await operator.decide_next(Verdict.reject, reason_code="unsafe")
    assert chosen(await rejected) == "opt-reject_once"
    assert standing.standing() == [], "a once answer keeps nothing"


async def test_allow_always_is_a_standing_approval_until_revoked(
    queue: QueueClient,
    standing: StandingApprovals,
    operator: Operator,
    serve: TestServe,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = asyncio.create_task(ask(queue, standing, "call_1"))
    await operator.decide_next(Verdict.edit, edited={"tool_input": {"command": "make deploy"}, "always": True})
    assert chosen(await first) == "opt-allow_always"
    [kept] = standing.standing()
    assert (kept.agent, kept.action, kept.answer, kept.decided_by) == ("zed", "Run `make deploy`", "allow", OPERATOR)

    assert chosen(await ask(queue, standing, "call_2")) == "opt-allow_always", "answered without asking"
    assert len(dict.values(serve._records)) == 1, "no second item was posted"

    data_dir = str(tmp_path / "bridges")
    assert main(["approvals", "list", "--data-dir", data_dir]) == 0
    listed = capsys.readouterr()
    assert f"{kept.id}  allow always  zed: Run `make deploy`" in listed.out and "1 standing answer" in listed.err
    assert main(["approvals", "revoke", str(kept.id), "--data-dir", data_dir]) == 0
    assert main(["approvals", "revoke", str(kept.id), "--data-dir", data_dir]) == 1
    assert "no standing approval number" in capsys.readouterr().err

    again = asyncio.create_task(ask(queue, standing, "call_3"))
    await operator.decide_next(Verdict.approve)
    assert chosen(await again) == "opt-allow_once", "after the revocation the operator is asked again"


async def test_a_reject_whose_comment_says_always_is_a_standing_rejection(
    queue: QueueClient, standing: StandingApprovals, operator: Operator
) -> None:
    first = asyncio.create_task(ask(queue, standing, "call_1"))
    await operator.decide_next(Verdict.reject, reason_code="unsafe", comment="Always ask ops before deploying")
    assert chosen(await first) == "opt-reject_always"
    assert chosen(await ask(queue, standing, "call_2")) == "opt-reject_always"
    assert [s.answer for s in standing.standing()] == ["reject"]


async def test_an_edited_input_is_refused_since_acp_cannot_run_it(
    queue: QueueClient, standing: StandingApprovals, operator: Operator
) -> None:
    call = asyncio.create_task(ask(queue, standing, "call_1"))
    await operator.decide_next(Verdict.edit, edited={"tool_input": {"command": "make deploy-staging"}, "always": True})
    assert chosen(await call) == "opt-reject_once" and standing.standing() == []


async def test_missing_options_fall_back_and_a_denial_never_picks_an_allow(
    queue: QueueClient, standing: StandingApprovals, operator: Operator
) -> None:
    only_once = asyncio.create_task(ask(queue, standing, "call_1", kinds=("allow_once", "reject_once")))
    await operator.decide_next(Verdict.edit, edited={"tool_input": {"command": "make deploy"}, "always": True})
    assert chosen(await only_once) == "opt-allow_once"
    standing.revoke(standing.standing()[0].id)
    no_reject = asyncio.create_task(ask(queue, standing, "call_2", kinds=("allow_once", "allow_always")))
    await operator.decide_next(Verdict.reject, reason_code="unsafe")
    assert chosen(await no_reject) == "cancelled"


async def test_a_queue_that_is_down_rejects(standing: StandingApprovals) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with QueueClient(f"http://127.0.0.1:{port}", fixed_token("agent", AGENT)) as down:
        params = permission_request("call_1")
        response = await request_permission(params, queue=down, standing=standing, agent="zed", deadline_seconds=0.5)
    assert chosen(response) == "opt-reject_once" and standing.standing() == []
