"""The LangGraph source against a real LangGraph API server (from PyPI, in-memory, offline) on a free loopback port.

The graphs in tests/langgraph_graphs raise each payload family; each test filters threads by its own metadata, so
tests share one server (it takes seconds to start) without seeing each other's threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.engine.config import Config, ConfigError, SourceConfig, parse
from console.engine.session import Session
from console.engine.sources import build_source
from console.engine.sources.base import Page
from console.engine.sources.langgraph import LangGraphSource
from console.tui.app import ApprovalApp
from storage.records import Item, SyncState, Verdict
from tests import factories
from tests.conftest import eventually, screen_text

GRAPHS = Path(__file__).parent / "langgraph_graphs"
SIZE = (120, 40)
SOURCE = "lg"
INBOX_ALL = {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def langgraph_server(workdir: Path) -> Iterator[str]:
    """A real LangGraph API server with the test graphs, in `workdir` (it keeps state in ./.langgraph_api)."""
    workdir.mkdir(parents=True, exist_ok=True)
    graphs = {
        "echo": f"{GRAPHS / 'echo.py'}:graph",
        "parallel": f"{GRAPHS / 'parallel.py'}:graph",
        "agent": f"{GRAPHS / 'agent.py'}:graph",
        "agent_per_call": f"{GRAPHS / 'agent.py'}:per_call_graph",
    }
    (workdir / "langgraph.json").write_text(json.dumps({"dependencies": ["."], "graphs": graphs}))
    port = _free_port()
    env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LANGSMITH_TRACING": "false",
    }
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n-jobs-per-worker", "10"]
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (workdir / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the LangGraph server did not start"
            time.sleep(0.2)  # a subprocess starting: no event loop to wait on here
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def langgraph_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server per test module, in a fresh temp dir, stopped afterwards."""
    with langgraph_server(tmp_path_factory.mktemp("langgraph")) as url:
        yield url


@pytest.fixture
async def api(langgraph_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=langgraph_url, timeout=60) as client:
        yield client


@pytest.fixture
def case() -> str:
    """A metadata value that only this test's threads carry."""
    return uuid.uuid4().hex


def lg_config(url: str, case: str, **options: Any) -> SourceConfig:
    return SourceConfig(
        name=SOURCE, url=url, kind="langgraph", poll_interval=0.2, metadata=(("case", case),), **options
    )


async def interrupted_thread(api: httpx.AsyncClient, case: str, graph: str, graph_input: dict[str, Any]) -> str:
    created = await api.post("/threads", json={"metadata": {"case": case}})
    thread_id = str(created.json()["thread_id"])
    run = await api.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": graph, "input": graph_input})
    assert run.status_code == 200, run.text
    return thread_id


async def settled(api: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    """The thread once every run on it has finished (runs are asynchronous at the server)."""
    runs = (await api.get(f"/threads/{thread_id}/runs")).json()
    for run in runs:
        await api.get(f"/threads/{thread_id}/runs/{run['run_id']}/join")
    thread: dict[str, Any] = (await api.get(f"/threads/{thread_id}")).json()
    return thread


def inbox(action: str, args: dict[str, Any], **config: bool) -> list[dict[str, Any]]:
    return [{"action_request": {"action": action, "args": args}, "config": config, "description": f"Run {action}?"}]


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    content = json.dumps([{"name": name, "args": args} for name, args in calls])
    return {"messages": [{"role": "user", "content": content}]}


async def one_item(
    api: httpx.AsyncClient, url: str, case: str, graph: str, graph_input: dict[str, Any]
) -> tuple[str, LangGraphSource, Item]:
    """A thread interrupted once, and a source that lists it as its only item."""
    thread_id = await interrupted_thread(api, case, graph, graph_input)
    source = LangGraphSource(lg_config(url, case), None)
    [item] = await listed(source)
    return thread_id, source, item


async def listed(source: LangGraphSource) -> list[Item]:
    page = await source.fetch(None)
    assert not page.rejected, page.rejected
    return sorted(page.items, key=lambda i: i.id)


# ------------------------------------------------------------------ families
@pytest.mark.parametrize(
    ("config", "verdict", "expected"),
    [
        (INBOX_ALL, Verdict.approve, {"type": "accept", "args": None}),
        (INBOX_ALL, Verdict.reject, {"type": "response", "args": "Rejected by the operator (unsafe): too wide"}),
        ({"allow_ignore": True}, Verdict.reject, {"type": "ignore", "args": None}),
        (INBOX_ALL, Verdict.edit, {"type": "edit", "args": {"action": "run_command", "args": {"cmd": "ls"}}}),
    ],
)
async def test_agent_inbox_interrupt_answers_per_its_config(
    api: httpx.AsyncClient, langgraph_url: str, case: str, config: dict[str, bool], verdict: Verdict, expected: Any
) -> None:
    thread_id = await interrupted_thread(
        api, case, "echo", {"payload": inbox("run_command", {"cmd": "rm -rf /"}, **config)}
    )
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    [item] = await listed(source)
    assert item.agent == "echo" and item.workflow == "review" and item.action_name == "run_command"
    assert item.context.summary == "Run run_command?"
    assert f"thread: {thread_id}" in item.context.evidence and "node: review" in item.context.evidence
    assert all(item.allows(v) for v in [verdict])
    decision = factories.decision(
        item,
        verdict,
        edited={"cmd": "ls"} if verdict is Verdict.edit else None,
        reason_code="unsafe",
        comment="too wide",
    )
    result = await source.send_decision(decision)
    assert result.state is SyncState.applied, result
    thread = await settled(api, thread_id)
    assert thread["status"] == "idle"
    assert thread["values"]["outcome"] == [expected]
    await source.aclose()


async def test_agent_inbox_offers_only_what_config_allows(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    _, source, item = await one_item(
        api, langgraph_url, case, "echo", {"payload": inbox("pay", {"amount": 5}, allow_accept=True)}
    )
    assert item.allowed_decisions == (Verdict.approve,)  # Agent Inbox would offer ignore here anyway
    await source.aclose()


async def test_middleware_batch_is_one_item_per_action_resumed_together(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    calls = tool_calls(("send_email", {"to": "a@example.com", "subject": "hi"}), ("delete_file", {"path": "/srv/db"}))
    thread_id = await interrupted_thread(api, case, "agent", calls)
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    email, delete = await listed(source)
    assert (email.action_name, delete.action_name) == ("send_email", "delete_file")
    assert email.allowed_decisions == (Verdict.approve, Verdict.reject, Verdict.edit)
    assert delete.allowed_decisions == (Verdict.approve, Verdict.reject)
    assert email.workflow == "HumanInTheLoopMiddleware.after_model"
    edit = factories.decision(email, Verdict.edit, edited={"to": "b@example.com", "subject": "hello"})
    first = await source.send_decision(edit)
    assert first.state is None and first.outcome == "waiting", "held until the other action is decided"
    assert (await api.get(f"/threads/{thread_id}")).json()["status"] == "interrupted"
    second = await source.send_decision(
        factories.decision(delete, Verdict.reject, reason_code="unsafe", comment="prod data")
    )
    assert second.state is SyncState.applied, second
    assert (await source.send_decision(edit)).state is SyncState.applied
    thread = await settled(api, thread_id)
    tools = {m["name"]: m for m in thread["values"]["messages"] if m["type"] == "tool"}
    executed = 'Executed instead: send_email with arguments {"to": "b@example.com", "subject": "hello"}.'
    assert executed in tools["send_email"]["content"], "the edited call ran"
    assert tools["send_email"]["content"].endswith("sent to b@example.com: hello")
    assert tools["delete_file"]["status"] == "error"
    assert "Rejected by the operator (unsafe): prod data" in tools["delete_file"]["content"]
    await source.aclose()


@pytest.mark.parametrize("args_key", ["args", "arguments"])
async def test_middleware_camel_case_and_older_arguments_key(
    api: httpx.AsyncClient, langgraph_url: str, case: str, args_key: str
) -> None:
    payload = {
        "actionRequests": [
            {"name": "deploy", args_key: {"service": "api", "version": "1.2"}, "description": "Deploy?"}
        ],
        "reviewConfigs": [{"actionName": "deploy", "allowedDecisions": ["approve", "edit"]}],
    }
    thread_id, source, item = await one_item(api, langgraph_url, case, "echo", {"payload": payload})
    assert item.editable_value == {"service": "api", "version": "1.2"}, "Agent Inbox shows {} here"
    assert item.allowed_decisions == (Verdict.approve, Verdict.edit)
    result = await source.send_decision(
        factories.decision(item, Verdict.edit, edited={"service": "api", "version": "1.1"})
    )
    assert result.state is SyncState.applied
    thread = await settled(api, thread_id)
    edited = {"name": "deploy", args_key: {"service": "api", "version": "1.1"}}
    assert thread["values"]["outcome"] == {"decisions": [{"type": "edit", "editedAction": edited}]}
    await source.aclose()


async def test_per_call_approval_uses_the_response_schema(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    thread_id = await interrupted_thread(
        api, case, "agent_per_call", tool_calls(("send_email", {"to": "x@example.com", "subject": "q3"}))
    )
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    [item] = await listed(source)
    assert item.allowed_decisions == (Verdict.approve, Verdict.reject, Verdict.edit)
    assert item.args_schema is not None
    bad = await source.send_decision(factories.decision(item, Verdict.edit, edited={"to": "x@example.com"}))
    assert (bad.state, bad.outcome) == (SyncState.conflict, "invalid") and "subject" in bad.detail
    assert (await api.get(f"/threads/{thread_id}")).json()["status"] == "interrupted", "nothing was sent"
    good = await source.send_decision(
        factories.decision(item, Verdict.edit, edited={"to": "y@example.com", "subject": "q3"})
    )
    assert good.state is SyncState.applied
    thread = await settled(api, thread_id)
    [tool] = [m for m in thread["values"]["messages"] if m["type"] == "tool"]
    assert tool["content"].endswith("sent to y@example.com: q3")
    await source.aclose()


async def test_several_interrupts_on_one_thread_resume_by_id(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    thread_id = await interrupted_thread(api, case, "parallel", {})
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    items = await listed(source)
    assert {i.action_name for i in items} == {"pay_invoice", "refund"}
    assert len({i.id.split(":")[1] for i in items}) == 2
    pay = next(i for i in items if i.action_name == "pay_invoice")
    refund = next(i for i in items if i.action_name == "refund")
    assert (await source.send_decision(factories.decision(pay, Verdict.approve))).state is SyncState.applied
    await settled(api, thread_id)
    assert (await api.get(f"/threads/{thread_id}")).json()["status"] == "interrupted", "the refund still waits"
    result = await source.send_decision(factories.decision(refund, Verdict.reject, reason_code="duplicate"))
    assert result.state is SyncState.applied
    thread = await settled(api, thread_id)
    assert thread["values"]["payment"] == {"type": "accept", "args": None}
    assert thread["values"]["refund"] == {"type": "response", "args": "Rejected (duplicate)"}
    await source.aclose()


async def test_unknown_shape_is_an_escalation_answered_by_edit(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    question = {"question": "Which region?", "options": ["eu-west-1", "us-east-1"]}
    thread_id, source, item = await one_item(
        api, langgraph_url, case, "echo", {"payload": question, "response_schema": {"type": "string"}}
    )
    assert item.kind == "escalation" and item.output == question
    assert item.allowed_decisions == (Verdict.edit,)
    refused = await source.send_decision(factories.decision(item, Verdict.edit, edited=42))
    assert refused.outcome == "invalid"
    assert (
        await source.send_decision(factories.decision(item, Verdict.edit, edited="eu-west-1"))
    ).state is SyncState.applied
    assert (await settled(api, thread_id))["values"]["outcome"] == "eu-west-1"
    await source.aclose()


@pytest.mark.parametrize("value", [None, 7, "plain text", [1, "two"], {"action_requests": "not a list"}])
async def test_odd_payloads_never_crash_the_listing(
    api: httpx.AsyncClient, langgraph_url: str, case: str, value: Any
) -> None:
    _, source, item = await one_item(api, langgraph_url, case, "echo", {"payload": value})
    assert item.kind == "escalation" and item.output == value
    await source.aclose()


# ----------------------------------------------------------- failure paths
async def test_resume_on_an_interrupt_answered_elsewhere_is_a_conflict(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    thread_id, source, item = await one_item(
        api, langgraph_url, case, "echo", {"payload": inbox("pay", {"amount": 5}, **INBOX_ALL)}
    )
    interrupt_id = item.id.split(":")[1]
    elsewhere = {"assistant_id": "echo", "command": {"resume": {interrupt_id: [{"type": "ignore", "args": None}]}}}
    assert (await api.post(f"/threads/{thread_id}/runs/wait", json=elsewhere)).status_code == 200
    result = await source.send_decision(factories.decision(item, Verdict.approve))
    assert (result.state, result.outcome) == (SyncState.conflict, "conflict")
    thread = await settled(api, thread_id)
    assert len((await api.get(f"/threads/{thread_id}/runs")).json()) == 2, "no resume was sent"
    assert thread["values"]["outcome"] == [{"type": "ignore", "args": None}]
    await source.aclose()


async def test_disallowed_decision_is_refused_before_sending(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    thread_id, source, item = await one_item(
        api, langgraph_url, case, "echo", {"payload": inbox("pay", {"amount": 5}, allow_accept=True)}
    )
    result = await source.send_decision(factories.decision(item, Verdict.edit, edited={"amount": 6}))
    assert (result.state, result.outcome) == (SyncState.conflict, "invalid")
    thread = (await api.get(f"/threads/{thread_id}")).json()
    assert thread["status"] == "interrupted", "a malformed resume would have destroyed the approval"
    assert len((await api.get(f"/threads/{thread_id}/runs")).json()) == 1
    await source.aclose()


async def test_two_consoles_resuming_at_once_apply_one(api: httpx.AsyncClient, langgraph_url: str, case: str) -> None:
    thread_id = await interrupted_thread(api, case, "echo", {"payload": inbox("pay", {"amount": 5}, **INBOX_ALL)})
    first = LangGraphSource(lg_config(langgraph_url, case), None)
    second = LangGraphSource(lg_config(langgraph_url, case), None)
    [item] = await listed(first)
    [same] = await listed(second)
    approve, reject = (
        factories.decision(item, Verdict.approve),
        factories.decision(same, Verdict.reject, reason_code="other"),
    )
    results = await asyncio.gather(first.send_decision(approve), second.send_decision(reject))
    assert [r.state for r in results].count(SyncState.applied) == 1, results
    loser, decision = (second, reject) if results[0].state is SyncState.applied else (first, approve)
    await settled(api, thread_id)
    final = await loser.send_decision(decision)
    assert (final.state, final.outcome) == (SyncState.conflict, "conflict")
    assert len((await api.get(f"/threads/{thread_id}/runs")).json()) == 2, "exactly one resume ran"
    await first.aclose()
    await second.aclose()


async def test_a_resend_after_a_restart_is_applied_not_resumed_twice(
    api: httpx.AsyncClient, langgraph_url: str, case: str
) -> None:
    thread_id, source, item = await one_item(
        api, langgraph_url, case, "echo", {"payload": inbox("pay", {"amount": 5}, **INBOX_ALL)}
    )
    decision = factories.decision(item, Verdict.approve)
    sent = await source.send_decision(decision)
    assert sent.state is SyncState.applied
    await settled(api, thread_id)
    restarted = LangGraphSource(lg_config(langgraph_url, case), None)  # no memory of the first send
    again = await restarted.send_decision(decision)
    assert again.state is SyncState.applied and again.response == {"run_id": (sent.response or {})["run_id"]}
    assert len((await api.get(f"/threads/{thread_id}/runs")).json()) == 2
    await source.aclose()
    await restarted.aclose()


# ------------------------------------------------------------------ listing
async def test_paging_many_threads_and_idle_polls_read_no_payloads(
    api: httpx.AsyncClient, langgraph_url: str, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("console.engine.sources.langgraph.PAGE_SIZE", 40)
    gate = asyncio.Semaphore(10)

    async def one(n: int) -> str:
        async with gate:
            return await interrupted_thread(api, case, "echo", {"payload": inbox("step", {"n": n}, **INBOX_ALL)})

    threads = await asyncio.gather(*(one(n) for n in range(150)))
    received: list[int] = []

    async def count(response: httpx.Response) -> None:
        received.append(len(await response.aread()))

    client = httpx.AsyncClient(base_url=langgraph_url, event_hooks={"response": [count]}, timeout=30)
    source = LangGraphSource(lg_config(langgraph_url, case), None, client)
    first = await source.fetch(None)
    assert len(first.items) == 150 and not first.rejected
    assert sorted(i.editable_value["n"] for i in first.items) == list(range(150))
    full_bytes, full_requests = sum(received), len(received)
    received.clear()
    idle = await source.fetch(first.cursor)
    assert idle == Page(cursor=first.cursor)
    idle_bytes = sum(received)
    print(f"\n150 threads: first listing {full_bytes} B in {full_requests} requests; idle poll {idle_bytes} B")
    assert len(received) == 2 and idle_bytes * 100 < full_bytes, "a count and a probe of thread ids and times"
    # One thread answered elsewhere, one new: the next poll reports exactly that, reading only the new payload.
    [gone] = [i for i in first.items if i.id.startswith(threads[0])]
    resume = {"assistant_id": "echo", "command": {"resume": [{"type": "ignore", "args": None}]}}
    await api.post(f"/threads/{threads[0]}/runs/wait", json=resume)
    added = await interrupted_thread(api, case, "echo", {"payload": inbox("step", {"n": 150}, **INBOX_ALL)})
    changed = await source.fetch(first.cursor)
    assert [r.item_id for r in changed.removed] == [gone.id]
    assert [i.id.split(":")[0] for i in changed.items] == [added]
    assert await source.fetch("a cursor of an earlier run") == Page(reset=True)
    await source.aclose()


# -------------------------------------------------------------- the console
def lg_session(url: str, case: str, data_dir: Path) -> Session:
    config = Config(operator="alice", sources=(lg_config(url, case),), undo_seconds=0.0)
    return Session(config, data_dir, token_for=lambda _name: None)


async def test_console_approves_and_rejects_agent_inbox_items(
    api: httpx.AsyncClient, langgraph_url: str, case: str, tmp_path: Path
) -> None:
    approve_id = await interrupted_thread(
        api, case, "echo", {"payload": inbox("restart_service", {"name": "api"}, **INBOX_ALL)}
    )
    reject_id = await interrupted_thread(
        api, case, "echo", {"payload": inbox("drop_table", {"table": "orders"}, **INBOX_ALL)}
    )
    session = lg_session(langgraph_url, case, tmp_path / "data")
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: session.store.queue.count() == 2, what="both interrupts in the queue")
        await eventually(lambda: "restart_service" in screen_text(app) and "drop_table" in screen_text(app))
        for thread_id, keys in ((approve_id, ["a"]), (reject_id, ["r", "2", *"prod data", "enter"])):
            rows = session.store.queue.rows(0, 10)
            index = next(n for n, row in enumerate(rows) if row.id.startswith(thread_id))
            await pilot.press("home", *["down"] * index)
            await pilot.pause(0.6)  # past the settle guard after moving
            shown = app.main.shown
            assert shown is not None and shown.id.startswith(thread_id)
            await pilot.press(*keys)
            prefix = thread_id

            def decided(prefix: str = prefix) -> bool:
                return any(r.decision.item_id.startswith(prefix) for r in session.store.outbox.decisions())

            await eventually(decided, what="the decision recorded")
        await eventually(lambda: session.store.outbox.waiting_count() == 0, timeout=30, what="both decisions applied")
        assert {row.sync_state for row in session.store.outbox.decisions()} == {SyncState.applied}
        # Each decision's label lands on its thread's metadata, where the agent's owners look.
        decision_ids = {r.decision.item_id.split(":")[0]: r.decision.id for r in session.store.outbox.decisions()}
        for thread_id in (approve_id, reject_id):
            key = f"approval_console_label:{decision_ids[thread_id]}"
            for _ in range(100):
                metadata = (await api.get(f"/threads/{thread_id}")).json()["metadata"]
                if key in metadata:
                    break
                await pilot.pause(0.1)
            assert metadata[key]["verdict"] == ("approve" if thread_id == approve_id else "reject")
            assert metadata[key]["operator"] == "alice"
    await session.aclose()
    reason = session.config.reject_reasons[1]
    assert (await settled(api, approve_id))["values"]["outcome"] == [{"type": "accept", "args": None}]
    rejected = (await settled(api, reject_id))["values"]["outcome"]
    assert rejected == [{"type": "response", "args": f"Rejected by the operator ({reason}): prod data"}]


async def test_console_edits_a_middleware_tool_call(
    api: httpx.AsyncClient, langgraph_url: str, case: str, tmp_path: Path
) -> None:
    from textual.widgets import TextArea

    thread_id = await interrupted_thread(
        api, case, "agent_per_call", tool_calls(("send_email", {"to": "x@example.com", "subject": "q3"}))
    )
    session = lg_session(langgraph_url, case, tmp_path / "data")
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: session.store.queue.count() == 1)
        await eventually(lambda: app.main.shown is not None)
        await pilot.pause(0.6)
        await pilot.press("e")
        await eventually(lambda: bool(app.screen.query(TextArea)))
        app.screen.query_one(TextArea).text = json.dumps({"to": "cfo@example.com", "subject": "q3"})
        await pilot.press("ctrl+s")
        await eventually(lambda: not getattr(app.screen, "checking", False), what="the schema check")
        await pilot.pause()
        if "Review the change" in screen_text(app):  # the editor shows the diff before it submits
            await pilot.press("ctrl+s")
        await eventually(
            lambda: session.store.outbox.waiting_count() == 0 and bool(session.store.outbox.decisions()), timeout=30
        )
        [row] = session.store.outbox.decisions()
        assert row.sync_state is SyncState.applied and row.decision.verdict is Verdict.edit
    await session.aclose()
    thread = await settled(api, thread_id)
    [tool] = [m for m in thread["values"]["messages"] if m["type"] == "tool"]
    assert tool["content"].endswith("sent to cfo@example.com: q3")


# ------------------------------------------------------------------- config
def test_config_reads_langgraph_selection(tmp_path: Path) -> None:
    text = """
[[sources]]
name = "agents"
kind = "langgraph"
url = "http://127.0.0.1:2024"
graph_id = "agent"
metadata = { team = "billing", tier = 2 }
"""
    [source] = parse(text, tmp_path / "config.toml").sources
    assert (source.kind, source.graph_id, source.metadata) == ("langgraph", "agent", (("team", "billing"), ("tier", 2)))
    assert isinstance(build_source(source, None), LangGraphSource)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('kind = "native"\ngraph_id = "agent"', "only for sources of kind 'langgraph'"),
        ('kind = "langgraph"\nassistant_id = ""', "assistant_id must be a non-empty string"),
        ('kind = "langgraph"\nmetadata = { team = ["a"] }', "metadata must be a table of plain values"),
    ],
)
def test_config_refuses_bad_langgraph_keys(tmp_path: Path, lines: str, problem: str) -> None:
    text = f'[[sources]]\nname = "agents"\nurl = "http://127.0.0.1:2024"\n{lines}\n'
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path / "config.toml")
    assert problem in caught.value.problem and caught.value.line == 5
