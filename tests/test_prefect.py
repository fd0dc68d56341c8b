"""The Prefect source against a real Prefect 3 server (`prefect server start`, SQLite) on a free loopback port.

One server for the whole session (it takes about 18 s to start, longer on a busy machine); real flows
(tests/engines/prefect_flow.py, run with the engine env's Python) pause for input. Each test tags its flow runs with
its own tag and lists only those, so tests share the server without seeing each other's runs. Every outcome is checked
through Prefect's own API: the flow run's final state and the answer Prefect stored.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.engine.config import Config, SourceConfig, load
from console.engine.session import Session
from console.engine.sources import build_source
from console.engine.sources.base import Page, SourceError
from console.engine.sources.prefect import PrefectSource
from console.tui.app import ApprovalApp
from storage.labels import build_label
from storage.records import Decision, Item, Outcome, SyncState, Verdict
from tests.conftest import decide_key, eventually, screen_text
from tests.engine_process import stop
from tests.engines.prefect_server import prefect_server, start_flows
from tests.test_cli import Cli

SOURCE = "pf"
pytestmark = pytest.mark.timeout(600)  # flows start in seconds, minutes on a busy machine; outcomes, not speed


@pytest.fixture(scope="session")
def prefect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prefect_server(tmp_path_factory.mktemp("prefect")) as url:
        yield url


@pytest.fixture
async def api(prefect_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prefect_url, timeout=60) as client:
        yield client


@pytest.fixture
def tag() -> str:
    """A tag only this test's flow runs carry."""
    return "case-" + uuid.uuid4().hex[:12]


@pytest.fixture
def flows(prefect_url: str, tmp_path: Path, tag: str) -> Iterator[Any]:
    """Start flows that pause for input; every flow process is stopped when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(count: int = 1, timeout: int = 600, **options: Any) -> subprocess.Popen[bytes]:
        process = start_flows(prefect_url, tmp_path, tag, count, timeout, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        stop(process)


def pf_config(url: str, tag: str) -> SourceConfig:
    return SourceConfig(name=SOURCE, url=url, kind="prefect", poll_interval=0.2, tags=(tag,))


async def listed(source: PrefectSource, count: int, timeout: float = 300) -> tuple[Page, list[Item]]:
    """Poll until `count` items are pending (the flows take seconds to start and pause)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    items: dict[str, Item] = {}
    quarantined: list[str] = []
    cursor = None
    while True:
        page = await source.fetch(cursor)
        cursor = page.cursor
        items.update((item.id, item) for item in page.items)
        quarantined += [r.reason for r in page.rejected]
        for removal in page.removed:
            items.pop(removal.item_id, None)
        if len(items) >= count:
            return page, sorted(items.values(), key=_customer)
        assert loop.time() < deadline, f"only {len(items)} of {count} paused flow runs were listed; {quarantined}"
        await asyncio.sleep(0.5)


def _customer(item: Item) -> str:
    values = item.output if item.kind == "escalation" else item.action.args if item.action else {}
    return str(values.get("customer_id", "")) if isinstance(values, dict) else ""


def decision(item: Item, verdict: Verdict, **fields: Any) -> Decision:
    return Decision(
        id=str(uuid.uuid4()),
        source=SOURCE,
        item_id=item.id,
        item_digest=item.digest,
        verdict=verdict,
        operator=fields.pop("operator", "alice"),
        decided_at=datetime.now(UTC),
        **fields,
    )


def flow_run_id(item: Item) -> str:
    return item.id.split(":", 1)[0]


async def final_state(api: httpx.AsyncClient, item: Item, timeout: float = 120) -> dict[str, Any]:
    """The flow run's state once it has finished (the flow process picks up the answer within seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = (await api.get(f"/flow_runs/{flow_run_id(item)}")).json()
        if run["state_type"] in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
            return dict(run["state"])
        assert loop.time() < deadline, f"the flow run is still {run['state_type']}"
        await asyncio.sleep(0.3)


async def stored_answer(api: httpx.AsyncClient, item: Item) -> Any:
    response_key = item.id.split(":", 1)[1]
    response = await api.get(f"/flow_runs/{flow_run_id(item)}/input/{response_key}")
    return response.json() if response.status_code == 200 else None


async def resumes(api: httpx.AsyncClient, item: Item) -> int:
    """How many times Prefect moved the flow run from paused to running: one per accepted resume."""
    states = (await api.get("/flow_run_states/", params={"flow_run_id": flow_run_id(item)})).json()
    kinds = [s["type"] for s in sorted(states, key=lambda s: s["timestamp"])]
    return sum(1 for before, after in itertools.pairwise(kinds) if (before, after) == ("PAUSED", "RUNNING"))


async def test_paused_flow_runs_become_items_and_an_idle_poll_reads_no_input(
    prefect_url: str, tag: str, flows: Any
) -> None:
    flows(count=2)
    source = build_source(pf_config(prefect_url, tag), None)
    assert isinstance(source, PrefectSource)
    try:
        page, items = await listed(source, 2)
        item = items[0]
        assert item.kind == "approval" and item.agent == "billing-agent" and item.workflow == "refunds"
        assert item.risk == "high" and item.confidence == 0.82 and item.on_expiry == "fail"
        assert item.action is not None and item.action.name == "Refund"
        assert item.action.args == {"customer_id": "cus_0", "amount": 100.0, "currency": "EUR"}
        schema = item.action.args_schema or {}
        assert set(schema["properties"]) == {"customer_id", "amount", "currency"}  # control fields are not edited
        assert item.allowed_decisions == (Verdict.approve, Verdict.reject, Verdict.edit)
        assert item.context.summary == "Refund 100.0 EUR to cus_0: a double charge on INV-2211."
        assert item.expires_at is not None and item.expires_at > item.created_at
        root = prefect_url.removesuffix("/api")
        assert item.context.links == [f"{root}/runs/flow-run/{flow_run_id(item)}"]
        assert any(flow_run_id(item) in line and line.startswith("flow run: ") for line in item.context.evidence)

        reads: list[str] = []
        source._client.event_hooks["request"].append(lambda request: _record(reads, request))
        cursor = page.cursor
        for _ in range(60):  # events the server records a little late make one more listing; then polls are idle
            reads.clear()
            idle = await source.fetch(cursor)
            cursor = idle.cursor
            assert idle.items == [] and idle.removed == []
            if reads == ["/flow_runs/count", "/events/filter"]:
                break
            assert not any("/input/" in path for path in reads), reads  # a known pause's input is never re-read
            await asyncio.sleep(0.5)
        assert reads == ["/flow_runs/count", "/events/filter"], reads  # no listing, no input read
    finally:
        await source.aclose()


async def _record(reads: list[str], request: httpx.Request) -> None:
    reads.append(request.url.path.removeprefix("/api"))


async def test_approve_reject_and_edit_reach_the_flow(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient
) -> None:
    flows(count=3)
    async with PrefectSource(pf_config(prefect_url, tag), None) as source:
        page, (approve, reject, edit) = await listed(source, 3)
        approved = decision(approve, Verdict.approve, comment="double charge confirmed")
        answers = [
            await source.send_decision(approved),
            await source.send_decision(decision(reject, Verdict.reject, reason_code="unsafe", comment="no refunds")),
            await source.send_decision(decision(edit, Verdict.edit, edited={"amount": 50.0, "currency": "USD"})),
        ]
        assert [a.outcome for a in answers] == ["applied"] * 3, answers

        assert (await final_state(api, approve))["type"] == "COMPLETED"
        stored = await stored_answer(api, approve)
        assert stored["approved"] is True and stored["decision_id"] == approved.id and stored["reviewer"] == "alice"
        assert stored["amount"] == 100.0 and stored["reason"] == "double charge confirmed"

        rejected = await final_state(api, reject)
        assert rejected["type"] == "FAILED" and "rejected: unsafe: no refunds" in rejected["message"]

        assert (await final_state(api, edit))["type"] == "COMPLETED"
        edited = await stored_answer(api, edit)
        assert edited["amount"] == 50.0 and edited["currency"] == "USD" and edited["customer_id"] == "cus_2"

        after = await source.fetch(page.cursor)
        assert {r.item_id for r in after.removed} == {approve.id, reject.id, edit.id}


async def test_input_the_schema_refuses_is_invalid_and_the_run_stays_paused(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient
) -> None:
    flows(count=1)
    async with PrefectSource(pf_config(prefect_url, tag), None) as source:
        _, (item,) = await listed(source, 1)
        answer = await source.send_decision(decision(item, Verdict.edit, edited={"amount": "lots"}))
        assert answer.state is SyncState.conflict and answer.outcome == Outcome.invalid.value
        assert "Prefect refused the input" in answer.detail and "'lots' is not of type 'number'" in answer.detail
        run = (await api.get(f"/flow_runs/{flow_run_id(item)}")).json()
        assert run["state_type"] == "PAUSED" and await stored_answer(api, item) is None

        assert (await source.send_decision(decision(item, Verdict.approve))).outcome == "applied"
        assert (await final_state(api, item))["type"] == "COMPLETED"


async def test_a_second_console_that_answers_later_gets_a_conflict(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient
) -> None:
    flows(count=1)
    first = PrefectSource(pf_config(prefect_url, tag), None)
    second = PrefectSource(pf_config(prefect_url, tag), None)
    try:
        _, (item,) = await listed(first, 1)
        _, (seen_by_second,) = await listed(second, 1)
        won = decision(item, Verdict.approve, operator="alice")
        assert (await first.send_decision(won)).outcome == "applied"
        late = decision(seen_by_second, Verdict.reject, reason_code="unsafe", operator="bob")
        lost = await second.send_decision(late)
        assert lost.state is SyncState.conflict and lost.outcome == Outcome.conflict.value
        assert "answered elsewhere by alice" in lost.detail
        assert (await final_state(api, item))["type"] == "COMPLETED"
        assert (await stored_answer(api, item))["decision_id"] == won.id
        assert await resumes(api, item) == 1
    finally:
        await first.aclose()
        await second.aclose()


class LostReply(httpx.AsyncBaseTransport):
    """The real transport, except that the reply to a resume is lost after the server acted on it (a crash)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/resume"):
            await response.aread()
            raise httpx.ReadError("connection lost before the reply", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_resend_after_a_crash_is_applied_without_a_second_resume(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient
) -> None:
    flows(count=1)
    config = pf_config(prefect_url, tag)
    async with PrefectSource(config, None, httpx.AsyncClient(base_url=prefect_url, transport=LostReply())) as crashing:
        _, (item,) = await listed(crashing, 1)
        sent = decision(item, Verdict.edit, edited={"amount": 75.0})
        lost = await crashing.send_decision(sent)
        assert lost.state is None and lost.outcome == "unreachable"  # not final: the outbox sends it again
    assert (await final_state(api, item))["type"] == "COMPLETED"
    restarted = PrefectSource(config, None)  # a new process: no memory of what was sent
    try:
        again = await restarted.send_decision(sent)
        assert again.state is SyncState.applied and again.outcome == "applied", again
        assert "answered earlier" in again.detail
        assert await resumes(api, item) == 1
        assert (await stored_answer(api, item))["amount"] == 75.0
    finally:
        await restarted.aclose()


async def test_a_pause_that_timed_out_is_expired(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient
) -> None:
    """Both ways a pause ends unanswered: the flow fails it at its deadline, or (its process gone) Prefect refuses
    the late resume and fails the run then."""
    alive = flows(count=1, timeout=20)
    async with PrefectSource(pf_config(prefect_url, tag), None) as source:
        _, (item,) = await listed(source, 1)
        ended = await final_state(api, item)
        assert ended["type"] == "FAILED" and "never resumed" in ended["message"]
        answer = await source.send_decision(decision(item, Verdict.approve))
        assert answer.state is SyncState.conflict and answer.outcome == Outcome.expired.value, answer
        assert alive.wait(timeout=60) == 0

        orphan = flows(count=1, timeout=20)
        _, (late,) = await listed(source, 1)
        stop(orphan)  # the flow's process is gone; the run stays paused past its deadline at the server
        assert late.expires_at is not None
        await asyncio.sleep(max(0.0, (late.expires_at - datetime.now(UTC)).total_seconds()) + 1)
        refused = await source.send_decision(decision(late, Verdict.approve))
        assert refused.outcome == Outcome.expired.value and "timed out" in refused.detail, refused
        assert (await final_state(api, late))["type"] == "FAILED"
        assert await resumes(api, late) == 0


async def test_a_deleted_flow_run_is_gone(prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient) -> None:
    flows(count=1)
    async with PrefectSource(pf_config(prefect_url, tag), None) as source:
        page, (item,) = await listed(source, 1)
        assert (await api.delete(f"/flow_runs/{flow_run_id(item)}")).status_code == 204
        after = await source.fetch(page.cursor)
        assert [r.item_id for r in after.removed] == [item.id]
        answer = await source.send_decision(decision(item, Verdict.approve))
        assert answer.state is SyncState.conflict and answer.outcome == Outcome.not_found.value


async def test_the_console_shows_the_flow_run_approves_it_and_its_label_reaches_the_run(
    prefect_url: str, tag: str, flows: Any, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    flows(count=1)
    config = Config(operator="alice", sources=(pf_config(prefect_url, tag),), undo_seconds=0.0)
    session = Session(config, tmp_path / "data", token_for=lambda _name: None)
    app = ApprovalApp(session)
    async with app.run_test(size=(160, 100)) as pilot:  # tall enough for the detail's evidence and links
        await eventually(lambda: session.store.queue.count() == 1, timeout=300, what="the paused flow run listed")
        await eventually(lambda: app.main.shown is not None, what="the item shown")
        shown = app.main.shown
        assert shown is not None
        run = (await api.get(f"/flow_runs/{flow_run_id(shown)}")).json()
        await eventually(lambda: run["name"] in screen_text(app), what="the flow run's name in the detail")
        assert f"/runs/flow-run/{run['id']}" in screen_text(app)
        await pilot.pause(0.6)  # past the settle guard
        await decide_key(pilot, "a")
        await eventually(lambda: session.store.outbox.waiting_count() == 0, timeout=60, what="the approval applied")
        assert [row.sync_state for row in session.store.outbox.decisions()] == [SyncState.applied]
        (applied,) = session.store.outbox.decisions()
        # The label lands on the flow run as an artifact (its Artifacts tab), where the flow's owners look.
        held: list[Any] = []
        for _ in range(200):
            held = await artifacts(api, shown)
            if held:
                break
            await pilot.pause(0.1)
        assert len(held) == 1 and held[0]["metadata_"] == {"approval_console_label_id": applied.decision.id}
        assert '"verdict": "approve"' in held[0]["data"] and '"operator": "alice"' in held[0]["data"]
    await session.aclose()
    assert (await final_state(api, shown))["type"] == "COMPLETED"
    assert (await stored_answer(api, shown))["reviewer"] == "alice"
    label = build_label(shown, applied.decision, None)
    again = PrefectSource(pf_config(prefect_url, tag), None)  # a resend, from a console that lost its memory
    try:
        answer = await again.send_labels([label, label.model_copy(update={"item_id": "not-prefect"})])
        assert answer.sent == {label.label_id} and len(await artifacts(api, shown)) == 1  # not stored twice
        await api.delete(f"/flow_runs/{flow_run_id(shown)}")
        gone = await again.send_labels([label])
        assert gone.refused == {label.label_id: "the flow run no longer exists"}
    finally:
        await again.aclose()


async def artifacts(api: httpx.AsyncClient, item: Item) -> list[Any]:
    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id(item)]}}}
    found: list[Any] = (await api.post("/artifacts/filter", json=body)).json()
    return found


async def test_an_escalation_by_tag_offers_its_values_as_the_output(prefect_url: str, tag: str, flows: Any) -> None:
    flows(count=1, escalation=True)
    async with PrefectSource(pf_config(prefect_url, tag), None) as source:
        _, (item,) = await listed(source, 1)
        assert item.kind == "escalation" and item.agent == "refunds" and item.risk == "medium"
        assert item.output == {"customer_id": "cus_0", "amount": 100.0, "currency": "EUR"}
        assert item.action is not None and item.action.args == {}
        assert (await source.send_decision(decision(item, Verdict.edit, edited={"amount": 1.0}))).outcome == "applied"


def test_sources_add_writes_a_prefect_source(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    added = cli("sources", "add", "flows", "http://127.0.0.1:4200/api", "--kind", "prefect", "--no-token")
    assert added.returncode == 0, added.stderr
    (source,) = load(cli.config).sources
    assert (source.name, source.kind, source.url) == ("flows", "prefect", "http://127.0.0.1:4200/api")


async def test_a_server_that_is_down_is_a_source_error_not_a_crash() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    async with PrefectSource(pf_config(url, "any"), None) as source:
        with pytest.raises(SourceError, match="cannot reach"):
            await source.fetch(None)
        item_id = "b06b2feb-fa8f-4895-9f51-f4f5751895e5:paused-1-response"
        sent = Decision(
            id=str(uuid.uuid4()),
            source=SOURCE,
            item_id=item_id,
            item_digest="sha256:" + "0" * 64,
            verdict=Verdict.approve,
            operator="alice",
            decided_at=datetime.now(UTC),
        )
        answer = await source.send_decision(sent)
        assert answer.state is None and answer.outcome == "unreachable"  # kept, sent again later
