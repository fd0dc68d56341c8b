"""The Airflow source against a real Airflow 3 (tests/airflow_server.py: `airflow standalone` from its own environment,
SQLite, on a free loopback port; one per test session, started by the first test that needs it) running the DAGs of
tests/airflow_dags, each triggered through Airflow's REST API.

Every final state is read back through Airflow itself: the task's HITL detail (who answered, which options, which
params) and the task instance's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from console.engine.config import Config, SourceConfig, load
from console.engine.secrets import Token
from console.engine.session import Session
from console.engine.sources import build_source
from console.engine.sources.airflow import AirflowSource
from console.engine.sources.airflow_payloads import parse_item_id
from console.engine.sources.base import Page, SourceError
from console.tui.app import ApprovalApp
from storage.items import Removal
from storage.records import Item, Outcome, SyncState, Verdict
from tests import factories, test_cli
from tests.airflow_server import USERS, AirflowServer, airflow_server
from tests.conftest import eventually, screen_text
from tests.servers import closed_port_url
from tests.source_polls import polled_until, removal_of

pytestmark = pytest.mark.timeout(900)  # the first test waits for Airflow to start (a minute or more on 2 busy cores)
SOURCE = "dags"
FINAL = {"success", "failed", "skipped", "upstream_failed"}


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """One Airflow per test session (it takes about a minute to start), stopped afterwards."""
    with airflow_server(tmp_path_factory.mktemp("airflow")) as server:
        yield server


def source(server: AirflowServer, user: str = "console", **options: Any) -> AirflowSource:
    config = SourceConfig(name=SOURCE, kind="airflow", url=server.url, poll_interval=0.2, timeout=60, **options)
    return AirflowSource(config, Token(f"{user}:{USERS[user]}", "environment"))


async def listed(adapter: AirflowSource, run_id: str, task: str = "") -> tuple[Item, str | None]:
    """The item of this run's task once a listing shows it (the scheduler starts the task within seconds), and the
    cursor to poll on with."""

    def of_the_run(page: Page) -> list[Item]:
        return [i for i in page.items if i.id.endswith(f":{run_id}") and (not task or f":{task}:" in i.id)]

    return await polled_until(adapter, None, of_the_run, attempts=600, pause=0.5, never=f"{run_id} was never listed")


async def removal(adapter: AirflowSource, cursor: str | None, item_id: str) -> Removal:
    return await removal_of(adapter, cursor, item_id, attempts=120, pause=0.5)


def record(server: AirflowServer, item: Item) -> dict[str, Any]:
    """The task's HITL detail as Airflow's own API has it now."""
    key = parse_item_id(item.id)
    assert key is not None
    dag, run, task, index = key
    with server.api() as api:
        response = api.get(f"/dags/{dag}/dagRuns/{quote(run, safe='')}/taskInstances/{task}/{index}/hitlDetails")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def settled(server: AirflowServer, item: Item) -> None:
    """Wait until the scheduler has heard the parking process exit (tests/airflow_server.py, `parked`)."""
    key = parse_item_id(item.id)
    assert key is not None
    for _ in range(600):
        if server.parked(*key):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the scheduler never saw {item.id} parked")


async def task_state(server: AirflowServer, item: Item) -> str:
    """The task instance's state once it is final (Airflow resumes it after the answer)."""
    for _ in range(240):
        state = str(record(server, item)["task_instance"]["state"])
        if state in FINAL:
            return state
        await asyncio.sleep(0.5)
    raise AssertionError(f"{item.id} never finished")


# ------------------------------------------------------------------------------------------------------- listing
async def test_a_waiting_approval_is_an_item_with_the_engines_own_names(airflow: AirflowServer) -> None:
    run = airflow.trigger("refund_approval")
    adapter = source(airflow)
    try:
        item, cursor = await listed(adapter, run)
        idle = await adapter.fetch(cursor)
    finally:
        await adapter.aclose()
    assert item.id == f"refund_approval:approve_refund:-1:{run}" and item.source == SOURCE
    assert item.kind == "approval" and item.agent == "refund_approval" and item.risk == "medium"
    assert item.context.summary == "Refund 1250 EUR to cus_1042?"
    assert item.action is not None and item.action.name == "approve_refund"
    assert item.action.args == {"chosen_options": ["Approve"], "params_input": {"amount": 1250, "ticket": "INV-2211"}}
    assert item.args_schema is not None
    assert item.args_schema["properties"]["params_input"]["properties"]["amount"] == {"type": "number", "maximum": 5000}
    assert item.allowed_decisions == (Verdict.approve, Verdict.edit, Verdict.reject)
    assert item.on_expiry == "reject" and item.expires_at is None
    assert f"DAG run id: {run}" in item.context.evidence and "task id: approve_refund" in item.context.evidence
    assert item.context.links == [
        f"{airflow.url}/dags/refund_approval/runs/{quote(run, safe='')}/tasks/approve_refund/required_actions"
        "?map_index=-1"
    ]
    assert idle == Page(cursor=cursor), "an idle poll lists nothing again"


async def test_an_idle_poll_reads_no_detail_again(airflow: AirflowServer) -> None:
    run = airflow.trigger("enter_limits")
    seen: list[tuple[str, bytes]] = []

    async def hook(response: httpx.Response) -> None:
        await response.aread()
        seen.append((str(response.request.url), response.content))

    adapter = source(airflow)
    adapter._client.event_hooks["response"].append(hook)
    try:
        _item, cursor = await listed(adapter, run)
        seen.clear()
        idle = await adapter.fetch(cursor)
    finally:
        await adapter.aclose()
    assert idle.items == [] and idle.removed == []
    assert len(seen) == 2 and "limit=0" in seen[0][0] and "created_at_gt=" in seen[1][0]
    assert b"Set the new rate limit" not in b"".join(body for _, body in seen), "no detail is read again"


async def test_dag_id_pattern_lists_only_those_dags(airflow: AirflowServer) -> None:
    picked, other = airflow.trigger("pick_regions"), airflow.trigger("enter_limits")
    everything, narrowed = source(airflow), source(airflow, dag_id_pattern="pick_")
    try:
        await listed(everything, other)  # both are waiting now
        await listed(everything, picked)
        item, _ = await listed(narrowed, picked)
        ids = {i.id for i in (await narrowed.fetch(None)).items}
    finally:
        await everything.aclose()
        await narrowed.aclose()
    assert item.id in ids and all(i.startswith("pick_regions:") for i in ids)


# ------------------------------------------------------------------------------------------------------ deciding
@pytest.mark.parametrize(
    ("verdict", "edited", "chosen", "params"),
    [
        (Verdict.approve, None, ["Approve"], {"amount": 1250, "ticket": "INV-2211"}),
        (Verdict.reject, None, ["Reject"], {}),
        (
            Verdict.edit,
            {"chosen_options": ["Approve"], "params_input": {"amount": 500, "ticket": "INV-2211"}},
            ["Approve"],
            {"amount": 500, "ticket": "INV-2211"},
        ),
    ],
)
async def test_approve_reject_and_edit_reach_airflow(
    airflow: AirflowServer, verdict: Verdict, edited: Any, chosen: list[str], params: dict[str, Any]
) -> None:
    run = airflow.trigger("refund_approval")
    adapter = source(airflow)
    try:
        item, cursor = await listed(adapter, run)
        await settled(airflow, item)
        extra: dict[str, Any] = {"reason_code": "unsafe"} if verdict is Verdict.reject else {}
        answer = await adapter.send_decision(factories.decision(item, verdict, edited=edited, **extra))
        assert (answer.state, answer.outcome) == (SyncState.applied, Outcome.applied.value), answer
        gone = await removal(adapter, cursor, item.id)
    finally:
        await adapter.aclose()
    final = record(airflow, item)
    assert final["response_received"] is True and final["responded_by_user"]["id"] == "console"
    assert final["chosen_options"] == chosen and final["params_input"] == params
    assert await task_state(airflow, item) == "success"
    assert gone.state == "decided" and '"decided_by": "console"' in gone.detail


async def test_named_options_are_chosen_through_an_edit(airflow: AirflowServer) -> None:
    run = airflow.trigger("pick_regions")
    adapter = source(airflow)
    try:
        item, _cursor = await listed(adapter, run)
        await settled(airflow, item)
        assert item.allowed_decisions == (Verdict.approve, Verdict.edit), "no option means reject"
        assert item.action is not None and item.action.args["chosen_options"] == ["eu-west"]
        two = {"chosen_options": ["us-east", "ap-south"], "params_input": {"batch": 20}}
        answer = await adapter.send_decision(factories.decision(item, Verdict.edit, edited=two))
    finally:
        await adapter.aclose()
    assert answer.state is SyncState.applied, answer
    final = record(airflow, item)
    assert final["chosen_options"] == ["us-east", "ap-south"] and final["params_input"] == {"batch": 20}
    assert await task_state(airflow, item) == "success"


async def test_an_answer_off_the_schema_is_refused_here_and_an_option_not_offered_by_airflow(
    airflow: AirflowServer,
) -> None:
    run = airflow.trigger("refund_approval")
    adapter = source(airflow)
    try:
        item, _cursor = await listed(adapter, run)
        too_much = {"chosen_options": ["Approve"], "params_input": {"amount": 9000, "ticket": "INV-2211"}}
        here = await adapter.send_decision(factories.decision(item, Verdict.edit, edited=too_much))
        key = parse_item_id(item.id)
        assert key is not None
        there = await adapter.answer(key, {"chosen_options": ["Maybe"], "params_input": {}})
    finally:
        await adapter.aclose()
    assert (here.state, here.outcome) == (SyncState.conflict, Outcome.invalid.value)
    assert "nothing was sent" in here.detail and "9000" in here.detail
    assert (there.state, there.outcome) == (SyncState.conflict, Outcome.invalid.value), there
    assert "Maybe" in there.detail, "Airflow's own reason"
    assert record(airflow, item)["response_received"] is False, "neither was taken"


async def test_a_second_console_that_answered_first_wins(airflow: AirflowServer) -> None:
    run = airflow.trigger("refund_approval")
    ours, bobs = source(airflow), source(airflow, "bob")
    try:
        item, _ = await listed(ours, run)
        seen_by_bob, _ = await listed(bobs, run)
        bob = await bobs.send_decision(factories.decision(seen_by_bob, Verdict.approve, operator="bob"))
        assert bob.state is SyncState.applied
        key = parse_item_id(item.id)
        assert key is not None
        late = await ours.answer(key, {"chosen_options": ["Reject"], "params_input": {}})  # Airflow's 409
        again = await ours.send_decision(factories.decision(item, Verdict.reject, reason_code="unsafe"))
    finally:
        await ours.aclose()
        await bobs.aclose()
    for answer in (late, again):
        assert (answer.state, answer.outcome) == (SyncState.conflict, Outcome.conflict.value), answer
        assert "bob" in answer.detail and "Approve" in answer.detail
    final = record(airflow, item)
    assert final["responded_by_user"]["id"] == "bob" and final["chosen_options"] == ["Approve"]


async def test_a_request_assigned_to_another_user_is_not_yours(airflow: AirflowServer) -> None:
    run = airflow.trigger("assigned_to_bob")
    ours, bobs = source(airflow), source(airflow, "bob")
    try:
        item, _ = await listed(ours, run)
        assert "assigned to: bob" in item.context.evidence
        refused = await ours.send_decision(factories.decision(item, Verdict.approve))
        waiting = record(airflow, item)["response_received"]
        taken = await bobs.send_decision(factories.decision(item, Verdict.approve, operator="bob"))
    finally:
        await ours.aclose()
        await bobs.aclose()
    assert (refused.state, refused.outcome) == (SyncState.conflict, Outcome.unauthorized.value), refused
    assert refused.detail.startswith("not yours") and not refused.auth_refused
    assert waiting is False
    assert taken.state is SyncState.applied
    assert record(airflow, item)["responded_by_user"]["id"] == "bob"


async def test_a_resend_after_a_crash_is_applied_once(airflow: AirflowServer) -> None:
    run = airflow.trigger("refund_approval")
    adapter = source(airflow)
    try:
        item, _cursor = await listed(adapter, run)
        decision = factories.decision(item, Verdict.approve)
        first = await adapter.send_decision(decision)
        before = record(airflow, item)["responded_at"]
        again = await adapter.send_decision(decision)  # as after a crash before the answer was recorded
    finally:
        await adapter.aclose()
    assert first.state is SyncState.applied and again.state is SyncState.applied, again
    assert record(airflow, item)["responded_at"] == before, "answered once"


async def test_a_request_airflow_timed_out_answers_expired(airflow: AirflowServer) -> None:
    run = airflow.trigger("quick_timeout")
    adapter = source(airflow)
    try:
        item, cursor = await listed(adapter, run)
        assert item.on_expiry == "reject"
        for _ in range(240):  # the scheduler's timeout sweep answers with the defaults
            if record(airflow, item)["response_received"]:
                break
            await asyncio.sleep(0.5)
        answer = await adapter.send_decision(factories.decision(item, Verdict.approve))
        gone = await removal(adapter, cursor, item.id)
    finally:
        await adapter.aclose()
    assert (answer.state, answer.outcome) == (SyncState.conflict, Outcome.expired.value), answer
    assert gone.state == "expired" and "Reject" in gone.detail
    final = record(airflow, item)
    assert final["chosen_options"] == ["Reject"] and final["responded_by_user"] is None


async def test_a_jwt_works_as_the_secret_and_names_the_user(airflow: AirflowServer) -> None:
    run = airflow.trigger("enter_limits")
    config = SourceConfig(name=SOURCE, kind="airflow", url=airflow.url, timeout=60)
    async with AirflowSource(config, Token(airflow.token("console"), "keyring")) as adapter:
        assert adapter.user == "console"
        item, _ = await listed(adapter, run)
        answer = await adapter.send_decision(factories.decision(item, Verdict.approve))
    assert answer.state is SyncState.applied
    assert record(airflow, item)["params_input"] == {"limit": 100}


async def test_a_refused_login_and_a_missing_engine_are_told_apart(airflow: AirflowServer) -> None:
    config = SourceConfig(name=SOURCE, kind="airflow", url=airflow.url, timeout=60)
    async with AirflowSource(config, Token("console:not-the-password", "environment")) as wrong:
        with pytest.raises(SourceError) as refused:
            await wrong.fetch(None)
    assert refused.value.auth and "sources token dags" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    async with AirflowSource(SourceConfig(name=SOURCE, kind="airflow", url=closed_port_url()), None) as down:
        with pytest.raises(SourceError, match="cannot reach"):
            await down.fetch(None)


# ---------------------------------------------------------------------------------------------------- the console
async def test_the_console_shows_the_task_and_approves_it(airflow: AirflowServer, tmp_path: Path) -> None:
    run = airflow.trigger("refund_approval")
    configured = SourceConfig(name=SOURCE, kind="airflow", url=airflow.url, timeout=60)
    login = Token(f"console:{USERS['console']}", "environment")
    session = Session(
        Config(operator="alice", sources=(configured,), undo_seconds=0.0), tmp_path / "data", token_for=lambda _n: login
    )
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(
            lambda: any(row.id.endswith(run) for row in session.store.queue.rows(0, 50)), timeout=300, what="the task"
        )
        rows = session.store.queue.rows(0, 50)
        index = next(n for n, row in enumerate(rows) if row.id.endswith(run))
        await pilot.press("home", *["down"] * index)
        await pilot.pause(0.6)  # past the settle guard after moving
        shown = app.main.shown
        assert shown is not None and shown.id.endswith(run)
        await eventually(
            lambda: f"approve_refund:-1:{run}" in screen_text(app), what="the engine's names in the detail"
        )
        await settled(airflow, shown)
        await pilot.press("a")
        await eventually(lambda: session.store.outbox.waiting_count() == 0, timeout=60, what="the decision applied")
        states = [row.sync_state for row in session.store.outbox.decisions()]
    await session.aclose()
    assert states == [SyncState.applied]
    final = record(airflow, shown)
    assert final["chosen_options"] == ["Approve"] and final["responded_by_user"]["id"] == "console"
    assert await task_state(airflow, shown) == "success"


# ---------------------------------------------------------------------------------------------------- configuring
def test_sources_add_kind_airflow_writes_an_airflow_source(tmp_path: Any, airflow: AirflowServer) -> None:
    cli = test_cli.Cli(tmp_path / "home")
    added = cli("sources", "add", "dags", airflow.url, "--kind", "airflow", "--no-token")
    assert added.returncode == 0, added.stderr
    configured = load(cli.config).sources[-1]
    assert (configured.name, configured.kind, configured.url) == ("dags", "airflow", airflow.url)
    assert isinstance(build_source(configured, None), AirflowSource)
