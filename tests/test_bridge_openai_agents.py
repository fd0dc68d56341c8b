"""The OpenAI Agents SDK bridge: the real `openai-agents` Runner with a scripted model (a `Model` that answers with a
tool call, then with a final answer once the tool's output is in its input; no network), a tool with
`needs_approval`, a real `serve` on loopback, and the operator deciding through a real console Session. The tool runs
exactly once after an approval, never after a rejection, and a run stopped while it waits resumes from its saved
`RunState` JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, Model, ModelResponse, ModelSettings, RunConfig, Usage, function_tool
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from console.bridges.openai_agents import run_with_approvals
from console.bridges.queue_client import QueueClient
from storage.records import Verdict
from tests.bridge_operator import Operator
from tests.queue_servers import OPERATOR, TestServe, fixed_token

AGENT = "billing-agent"
NO_TRACING = RunConfig(tracing_disabled=True)


class ScriptedModel(Model):
    """First calls of `issue_refund` (one per customer); once tool outputs are in the input, a final answer quoting
    them."""

    def __init__(self, customers: tuple[str, ...] = ("cus_1042",)) -> None:
        self.customers = customers

    async def get_response(self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = [i for i in input if isinstance(i, dict) and i.get("type") == "function_call_output"]
        if not outputs:
            calls = [
                ResponseFunctionToolCall(
                    type="function_call",
                    id=f"fc_{n}",
                    call_id=f"call_refund_{n}",
                    name="issue_refund",
                    arguments=json.dumps({"customer_id": customer, "amount": 1250.0}),
                    status="completed",
                )
                for n, customer in enumerate(self.customers, start=1)
            ]
            return ModelResponse(output=list(calls), usage=Usage(), response_id=None)
        said = " | ".join(str(o["output"]) for o in outputs)
        text = ResponseOutputText(type="output_text", text=f"done: {said}", annotations=[])
        message = ResponseOutputMessage(
            type="message", id="msg_1", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the scripted model does not stream")


def refund_agent(ran: list[dict[str, Any]], customers: tuple[str, ...] = ("cus_1042",)) -> Agent[Any]:
    @function_tool(needs_approval=True)
    def issue_refund(customer_id: str, amount: float) -> str:
        """Refund a customer."""
        ran.append({"customer_id": customer_id, "amount": amount})
        return f"refunded {amount} to {customer_id}"

    model = ScriptedModel(customers)
    return Agent(name="refunds", model=model, tools=[issue_refund], model_settings=ModelSettings())


async def test_the_tool_runs_exactly_once_after_the_operators_approval(
    queue: QueueClient, operator: Operator, tmp_path: Path
) -> None:
    ran: list[dict[str, Any]] = []
    state_path = tmp_path / "run.json"
    run = asyncio.create_task(
        run_with_approvals(
            refund_agent(ran), "refund INV-2211", queue=queue, state_path=state_path, run_config=NO_TRACING
        )
    )
    item = await operator.next_pending()
    assert ran == [] and state_path.exists(), "nothing runs before the decision; the state is saved while it waits"
    assert item.action is not None and item.action.name == "issue_refund"
    assert item.action.args == {"customer_id": "cus_1042", "amount": 1250.0}
    assert set(item.allowed_decisions) == {Verdict.approve, Verdict.reject}, "the SDK cannot run edited arguments"
    await operator.decide(item, Verdict.approve)
    result = await run
    assert ran == [{"customer_id": "cus_1042", "amount": 1250.0}]
    assert result.final_output == "done: refunded 1250.0 to cus_1042"
    assert not state_path.exists(), "the saved state goes once the run ends"


async def test_a_rejected_tool_never_runs_and_the_model_reads_the_reason(
    queue: QueueClient, operator: Operator, tmp_path: Path
) -> None:
    ran: list[dict[str, Any]] = []
    run = asyncio.create_task(
        run_with_approvals(
            refund_agent(ran), "refund", queue=queue, state_path=tmp_path / "run.json", run_config=NO_TRACING
        )
    )
    await operator.decide_next(Verdict.reject, reason_code="duplicate", comment="already refunded")
    result = await run
    assert ran == []
    assert (
        result.final_output
        == f"done: approval-console: rejected by the operator {OPERATOR}: duplicate (already refunded)"
    )


async def test_no_decision_by_the_deadline_rejects_the_tool(queue: QueueClient, tmp_path: Path) -> None:
    ran: list[dict[str, Any]] = []
    result = await run_with_approvals(
        refund_agent(ran),
        "refund",
        queue=queue,
        state_path=tmp_path / "run.json",
        deadline_seconds=0.5,
        run_config=NO_TRACING,
    )
    assert ran == [] and result.final_output == "done: approval-console: no decision before the deadline"


async def test_a_run_stopped_while_it_waits_resumes_from_its_saved_state(
    serve: TestServe, queue: QueueClient, operator: Operator, tmp_path: Path
) -> None:
    """The first process waits and is stopped; the operator approves meanwhile; a second run_with_approvals on the same
    state file resumes from RunState JSON, finds the same item already decided, and runs the tool once."""
    ran: list[dict[str, Any]] = []
    state_path = tmp_path / "run.json"
    first = asyncio.create_task(
        run_with_approvals(refund_agent(ran), "refund", queue=queue, state_path=state_path, run_config=NO_TRACING)
    )
    item = await operator.next_pending()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await operator.decide(item, Verdict.approve)
    saved = json.loads(state_path.read_text())
    assert "call_refund_1" in json.dumps(saved["run_state"]) and ran == [], "the waiting call is in the saved state"

    async with QueueClient(serve.url, fixed_token("agent", AGENT)) as restarted:  # a new process's own client
        result = await run_with_approvals(
            refund_agent(ran), None, queue=restarted, state_path=state_path, run_config=NO_TRACING
        )
    assert ran == [{"customer_id": "cus_1042", "amount": 1250.0}]
    assert result.final_output == "done: refunded 1250.0 to cus_1042"
    assert len(serve.applied_decisions()) == 1 and len(dict.values(serve._records)) == 1, "one item, one decision"


async def test_two_calls_in_one_turn_are_two_items_decided_each_on_its_own(
    queue: QueueClient, operator: Operator, tmp_path: Path
) -> None:
    ran: list[dict[str, Any]] = []
    agent = refund_agent(ran, customers=("cus_1", "cus_2"))
    run = asyncio.create_task(
        run_with_approvals(agent, "refund both", queue=queue, state_path=tmp_path / "run.json", run_config=NO_TRACING)
    )
    first = await operator.next_pending()
    await operator.decide(first, Verdict.approve)
    second = await operator.next_pending()
    await operator.decide(second, Verdict.reject, reason_code="duplicate")
    result = await run
    assert first.action is not None and second.action is not None
    approved = first.action.args["customer_id"]
    assert {approved, second.action.args["customer_id"]} == {"cus_1", "cus_2"}
    assert ran == [{"customer_id": approved, "amount": 1250.0}], "the approved call ran once, the rejected one never"
    assert f"refunded 1250.0 to {approved}" in result.final_output and "rejected by the operator" in result.final_output
