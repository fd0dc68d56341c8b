"""The OpenAI Agents SDK bridge (extra `approval-console[openai-agents]`): run an agent whose tools have
`needs_approval`, and let the operator decide each interruption through the queue.

    async with QueueClient(url, token) as queue:
        result = await run_with_approvals(agent, "refund INV-2211", queue=queue, state_path=Path("run.json"))

Each interruption in `result.interruptions` becomes an item; the operator's approve lets the tool run
(`state.approve`), a reject, an expiry, a queue that is down or no decision by the deadline rejects it
(`state.reject`, with the reason as the message the model reads), and the run resumes. Before waiting, the run's state
(`RunState.to_json()`) is written to `state_path`: a process that restarts calls `run_with_approvals` again with the
same path, the run resumes from that state, and the same request ids find the same items (decided meanwhile or not).
The file is removed once the run ends. Edits are not offered (the SDK runs the model's own arguments): the items allow
approve and reject only.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents import Agent, Runner, RunResult, RunState, ToolApprovalItem

from console.bridges.queue_client import QueueClient, Request


async def run_with_approvals(
    agent: Agent[Any],
    input: str | list[Any] | None,
    *,
    queue: QueueClient,
    state_path: Path,
    deadline_seconds: float = 300.0,
    **run_options: Any,
) -> RunResult:
    """Run `agent` to its end, asking the operator at each interruption. `input` is ignored when `state_path` holds a
    run to resume. `run_options` go to `Runner.run` (run_config, max_turns, context...)."""
    saved = await asyncio.to_thread(_load, state_path)
    if saved is not None:
        state: RunState[Any, Agent[Any]] = await RunState.from_json(agent, saved["run_state"])
        interruptions = state.get_interruptions()
    else:
        if input is None:
            raise ValueError(f"no run to resume in {state_path} and no input to start one")
        saved = {"run_id": f"oai-{uuid.uuid4()}", "expires": {}}
        result = await Runner.run(agent, input, **run_options)
        if not result.interruptions:
            return result
        state, interruptions = result.to_state(), result.interruptions
    while True:
        expires: dict[str, str] = saved["expires"]
        for item in interruptions:
            expires.setdefault(_call_id(item), _iso(datetime.now(UTC) + timedelta(seconds=deadline_seconds)))
        saved["run_state"] = state.to_json()
        await asyncio.to_thread(_save, state_path, saved)  # written before waiting: a restart resumes from it
        # All of a turn's interruptions are asked at once: the operator sees them together.
        await asyncio.gather(
            *(_decide(state, item, queue, saved["run_id"], expires, deadline_seconds) for item in interruptions)
        )
        result = await Runner.run(agent, state, **run_options)
        if not result.interruptions:
            await asyncio.to_thread(state_path.unlink, missing_ok=True)
            return result
        state, interruptions = result.to_state(), result.interruptions


async def _decide(
    state: RunState[Any, Agent[Any]],
    item: ToolApprovalItem,
    queue: QueueClient,
    run_id: str,
    expires: dict[str, str],
    deadline_seconds: float,
) -> None:
    call_id = _call_id(item)
    request = Request(
        request_id=f"{run_id}:{call_id}",
        action=item.tool_name or "tool",
        args=_arguments(item),
        summary=f"the agent {item.agent.name} asks to run {item.tool_name}",
        policy="the tool needs approval before it runs",
        workflow=item.agent.name,
        allowed_decisions=("approve", "reject"),
    )
    expires_at = datetime.fromisoformat(expires[call_id])
    remaining = max(0.0, (expires_at - datetime.now(UTC)).total_seconds())
    wait = min(deadline_seconds, remaining)
    # A stopped run keeps its item: the run resumes from its saved state and asks again under the same request id.
    outcome = await queue.ask(request, deadline_seconds=wait, expires_at=expires_at, withdraw_if_cancelled=False)
    if outcome.allowed and outcome.verdict == "approve":
        state.approve(item)
    else:
        state.reject(item, rejection_message=f"approval-console: {outcome.reason}")


def _call_id(item: ToolApprovalItem) -> str:
    raw = item.raw_item
    found = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
    return str(found or getattr(raw, "id", None) or item.tool_name)


def _arguments(item: ToolApprovalItem) -> dict[str, Any]:
    """The call's arguments as the operator reads them: a JSON object, else the raw text kept under `arguments`."""
    text = item.arguments
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"arguments": text}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return saved if isinstance(saved, dict) else None


def _save(path: Path, saved: dict[str, Any]) -> None:
    """Written whole or not at all: a temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", encoding="utf-8") as out:
        json.dump(saved, out)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)
