"""`approval-console serve`: tokens and roles, the agent's endpoints (post, wait for the outcome, withdraw), restarts,
and a real console (its session, then the app under Pilot) deciding an item an agent waits on. The protocol itself is
checked by the suite serve shares with the demo fleet (tests/test_fleet.py, tests/test_fleet_protocol.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.cli.commands import main
from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from console.servers.serve.store import DB_NAME, DataDirInUse
from console.servers.serve.tokens import CONFIG_NAME, token_hash
from console.tui.app import ApprovalApp
from storage.records import SyncState, Verdict, item_digest
from tests.conftest import decide_key, eventually, first_shown
from tests.queue_servers import OPERATOR, ServeProcess, TestServe, fixed_token
from tests.test_fleet import decide, listing, refund

AGENT = "billing-agent"


def as_agent(server: TestServe, agent: str = AGENT) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, timeout=40, headers={"Authorization": f"Bearer {fixed_token('agent', agent)}"}
    )


def as_operator(server: TestServe, operator: str = OPERATOR) -> httpx.Client:
    headers = {"Authorization": f"Bearer {fixed_token('operator', operator)}"}
    return httpx.Client(base_url=server.url, timeout=10, headers=headers)


def request_item(**overrides: Any) -> dict[str, Any]:
    """What an agent posts: an item without the fields the server fills in."""
    return {
        "kind": "approval",
        "workflow": "refunds",
        "context": {"summary": "Customer reports a double charge.", "evidence": [], "links": []},
        "confidence": 0.8,
        "risk": "high",
        "policy": "refunds over 500 EUR need a human",
        "expires_at": None,
        "on_expiry": "reject",
        "allowed_decisions": ["approve", "reject", "edit"],
        **{k: v for k, v in refund().items() if k != "agent"},  # the token says which agent posts
        **overrides,
    }


def post(client: httpx.Client, request_id: str, **overrides: Any) -> httpx.Response:
    return client.post("/v1/items", json=request_item(**overrides), headers={"Idempotency-Key": request_id})


# -- tokens and roles ----------------------------------------------------------------------------------------------


def test_an_agent_sees_and_withdraws_only_its_own_items_and_never_decides(serve: TestServe) -> None:
    with as_agent(serve) as billing, as_agent(serve, "other-agent") as other, as_operator(serve) as alice:
        mine = post(billing, "req-1").json()
        theirs = post(other, "req-1").json()  # the same request id, another agent: another item
        assert mine["id"] != theirs["id"] and (mine["agent"], theirs["agent"]) == (AGENT, "other-agent")
        assert other.get(f"/v1/items/{mine['id']}/outcome").status_code == 404
        assert other.post(f"/v1/items/{mine['id']}/withdraw").status_code == 404
        assert billing.get("/v1/items").status_code == 403, "an agent does not list the queue"
        assert decide(billing, mine).status_code == 403, "an agent does not decide"
        assert billing.post(f"/v1/items/{mine['id']}/claim").status_code == 403
        refused = post(billing, "req-2", agent="other-agent")
        assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "/agent"
        assert billing.get(f"/v1/items/{mine['id']}/outcome").json()["state"] == "pending"
        assert {i["id"] for i in listing(alice)["items"]} == {mine["id"], theirs["id"]}


def test_an_operator_cannot_post_items_and_decides_under_its_own_name(serve: TestServe) -> None:
    with as_agent(serve) as billing, as_operator(serve, "bob") as bob:
        refused = post(bob, "req-1")
        assert refused.status_code == 403 and refused.json()["outcome"] == "unauthorized"
        assert bob.get(f"/v1/items/{'x'}/outcome").status_code == 403
        item = post(billing, "req-1").json()
        assert decide(bob, item, operator="mallory").json()["outcome"] == "applied"  # the body's name is ignored
        assert billing.get(f"/v1/items/{item['id']}/outcome").json()["decided_by"] == "bob"
    assert serve.applied_decisions()[0]["operator"] == "bob"


def test_a_wrong_or_missing_token_gets_401_and_the_log_holds_no_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "serve"
    assert main(["serve", "token", "add", "--operator", "alice", "--data-dir", str(data)]) == 0
    alice_token = capsys.readouterr().out.strip()
    assert alice_token.startswith("acs_") and len(alice_token) > 40
    token_file = (data / CONFIG_NAME).read_text()
    assert alice_token not in token_file and token_hash(alice_token) in token_file
    assert main(["serve", "token", "add", "--operator", "alice", "--data-dir", str(data)]) == 2, "one token a name"
    assert "already has a token for operator 'alice'" in capsys.readouterr().err
    server = ServeProcess(data)
    url = server.start()
    wrong = "acs_" + "w" * 43
    try:
        answers = [
            httpx.get(f"{url}/v1/items"),
            httpx.get(f"{url}/v1/items", headers={"Authorization": f"Bearer {wrong}"}),
            httpx.post(f"{url}/v1/items/x/decision", headers={"Authorization": f"Basic {wrong}"}, json={}),
            httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {alice_token}x"}),
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 401]
        assert all(a.json()["outcome"] == "unauthorized" for a in answers)
        assert httpx.get(f"{url}/v1/items", headers={"Authorization": f"Bearer {alice_token}"}).status_code == 200
        assert main(["serve", "--data-dir", str(data), "--port", "0"]) == 1, "one serve per data directory"
        refused = capsys.readouterr().err
        assert refused.count("\n") == 1 and "another serve is running on" in refused
    finally:
        err = server.stop()
    log = (data / "serve.log").read_text()
    assert log.count("answered 401") == 4, log
    for secret in (wrong, alice_token, token_hash(alice_token), "w" * 20):
        assert secret not in log and secret not in err


# -- the agent's endpoints -----------------------------------------------------------------------------------------


def test_the_same_request_id_returns_the_same_item_even_after_a_restart(tmp_path: Path) -> None:
    server = TestServe(tmp_path / "serve")
    server.start()
    with as_agent(server) as billing:
        first = post(billing, "req-42")
        again = post(billing, "req-42")
        other = post(billing, "req-42", policy="another body")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    server.close()
    server = TestServe(tmp_path / "serve")
    server.start()
    try:
        with as_agent(server) as billing:
            after = post(billing, "req-42")
        assert after.status_code == 201 and after.content == first.content
        assert [i["id"] for i in server.pending()] == [first.json()["id"]]
    finally:
        server.close()


def test_waiting_returns_the_decision_with_the_edit_reason_and_operator(serve: TestServe) -> None:
    with as_agent(serve) as billing, as_operator(serve) as alice:
        item = post(billing, "req-1").json()
        waited: list[dict[str, Any]] = []
        waiter = threading.Thread(
            target=lambda: waited.append(billing.get(f"/v1/items/{item['id']}/outcome", params={"wait": 30}).json())
        )
        waiter.start()
        edited = {**item["action"]["args"], "amount": 500.0}
        key = str(uuid.uuid4())
        answer = decide(alice, item, "edit", key, edited=edited, edited_digest=item_digest(edited), comment="half")
        assert answer.json()["outcome"] == "applied"
        waiter.join(timeout=35)
    [outcome] = waited
    assert outcome["state"] == "decided" and outcome["verdict"] == "edit" and outcome["edited"] == edited
    assert (outcome["decided_by"], outcome["decision_id"], outcome["comment"]) == (OPERATOR, key, "half")


def test_waiting_ends_at_the_deadline_with_on_expiry(serve: TestServe) -> None:
    with as_agent(serve) as billing:
        item = post(billing, "req-1", expires_at="2020-01-01T00:00:00Z", on_expiry="escalate").json()
        outcome = billing.get(f"/v1/items/{item['id']}/outcome", params={"wait": 30}).json()
        assert (outcome["state"], outcome["on_expiry"]) == ("expired", "escalate")
        pending = post(billing, "req-2").json()
        early = billing.get(f"/v1/items/{pending['id']}/outcome", params={"wait": 0.2}).json()
        assert early["state"] == "pending" and early["digest"] == pending["digest"]


def test_an_agent_withdraws_a_pending_item_but_not_a_decided_one(serve: TestServe) -> None:
    with as_agent(serve) as billing, as_operator(serve) as alice:
        first, second = post(billing, "req-1").json(), post(billing, "req-2").json()
        cursor = listing(alice)["cursor"]
        withdrawn = billing.post(f"/v1/items/{first['id']}/withdraw")
        assert (withdrawn.status_code, withdrawn.json()["state"]) == (200, "withdrawn")
        assert billing.post(f"/v1/items/{first['id']}/withdraw").status_code == 200, "withdrawing again is a no-op"
        assert decide(alice, first).json()["outcome"] == "withdrawn"
        assert decide(alice, second).json()["outcome"] == "applied"
        late = billing.post(f"/v1/items/{second['id']}/withdraw")
        assert (late.status_code, late.json()["state"], late.json()["verdict"]) == (409, "decided", "approve")
        assert [r["state"] for r in listing(alice, cursor)["removed"]] == ["withdrawn", "decided"]


# -- durability ----------------------------------------------------------------------------------------------------


def test_a_restart_keeps_items_decisions_cursors_and_answers(tmp_path: Path) -> None:
    server = TestServe(tmp_path / "serve", seed=3, initial=5)
    server.start()
    with as_operator(server) as alice:
        page = listing(alice)
        first = page["items"][0]
        key = str(uuid.uuid4())
        applied = decide(alice, first, key=key)
    server.close()
    held = TestServe(tmp_path / "serve")
    try:
        with pytest.raises(DataDirInUse):  # one serve per data directory; the first holds it until closed
            TestServe(tmp_path / "serve")
    finally:
        held.close()
    server = TestServe(tmp_path / "serve")
    server.start()
    try:
        with as_operator(server) as alice:
            replay = decide(alice, first, key=key)
            assert (replay.status_code, replay.content) == (applied.status_code, applied.content)
            changes = listing(alice, page["cursor"])  # a cursor of the previous run still counts
            assert [r["id"] for r in changes["removed"]] == [first["id"]] and changes["items"] == []
            assert len(listing(alice)["items"]) == 4
        assert [d["decision_id"] for d in server.applied_decisions()] == [key]
    finally:
        server.close()
    with sqlite3.connect(tmp_path / "serve" / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM decisions").fetchone() == (1,)


def test_memory_keeps_the_latest_removals_and_the_database_answers_for_older_ones(tmp_path: Path) -> None:
    server = TestServe(tmp_path / "serve", seed=2, initial=8, remember_removals=3)
    server.start()
    try:
        with as_operator(server) as alice:
            start = listing(alice)
            items = start["items"]
            keys = [str(uuid.uuid4()) for _ in items[:6]]
            answers = [decide(alice, item, key=key) for item, key in zip(items, keys, strict=False)]
            assert [a.json()["outcome"] for a in answers] == ["applied"] * 6
            assert dict.__len__(server._records) == 2 + 3, "the pending items and the latest three removals"
            replay = decide(alice, items[0], key=keys[0])
            assert (replay.status_code, replay.content) == (answers[0].status_code, answers[0].content)
            late = decide(alice, items[0], "reject", reason_code="other").json()
            assert (late["outcome"], late["decided_by"]) == ("conflict", OPERATOR)
            assert alice.get("/v1/items", params={"cursor": start["cursor"]}).status_code == 410, "older than memory"
        with as_agent(server, items[0]["agent"]) as agent:
            outcome = agent.get(f"/v1/items/{items[0]['id']}/outcome").json()
            assert (outcome["state"], outcome["decision_id"]) == ("decided", keys[0])
    finally:
        server.close()
    server = TestServe(tmp_path / "serve", remember_removals=3)
    try:
        assert dict.__len__(server._records) == 5 and len(server.pending()) == 2
        old = server._records.get(items[0]["id"])  # not in memory: read from the database
        assert old is not None and old.state == "decided"
    finally:
        server.close()


# -- the console against serve -------------------------------------------------------------------------------------


async def test_a_console_session_decides_what_an_agent_waits_for(serve: TestServe, tmp_path: Path) -> None:
    """A real Session (poller, storage, sync engine) with an operator token; the agent long-polls the outcome."""
    with as_agent(serve) as billing:
        item = post(billing, "req-1").json()
    operator_token = Token(fixed_token("operator", OPERATOR), "environment")
    config = Config(operator="someone-else", sources=(SourceConfig(name="serve", url=serve.url, long_poll=0.0),))
    session = Session(config, tmp_path / "console", token_for=lambda _name: operator_token)
    waited: list[dict[str, Any]] = []

    def wait() -> None:
        with as_agent(serve) as agent:
            waited.append(agent.get(f"/v1/items/{item['id']}/outcome", params={"wait": 30}).json())

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        await session.poll_once()
        found = session.store.items.get("serve", item["id"])
        assert found is not None and found[1] == "pending"
        decision = session.decide(found[0], Verdict.reject, reason_code="duplicate", comment="already refunded")
        while session.store.outbox.waiting_count():
            await session.sync_once()
            await asyncio.sleep(0.01)
    finally:
        await session.aclose()
        await asyncio.to_thread(waiter.join, 35)
    [outcome] = waited
    assert (outcome["state"], outcome["verdict"], outcome["reason_code"]) == ("decided", "reject", "duplicate")
    assert outcome["decision_id"] == decision.id and outcome["decided_by"] == OPERATOR  # the token's name


async def test_the_operator_approves_in_the_app_and_the_waiting_agent_hears_it(
    serve: TestServe, tmp_path: Path
) -> None:
    """The real app under Pilot polls serve (the native source, long-poll on, an operator token); the operator presses
    approve; the agent's long-poll answers with that decision."""
    with as_agent(serve) as billing:
        item = post(billing, "req-1", risk="medium").json()
    operator_token = Token(fixed_token("operator", OPERATOR), "environment")
    source = SourceConfig(name="serve", url=serve.url, poll_interval=0.2, long_poll=2.0)
    session = Session(
        Config(operator=OPERATOR, sources=(source,), undo_seconds=0),
        tmp_path / "console",
        token_for=lambda _n: operator_token,
    )
    waited: list[dict[str, Any]] = []

    def wait() -> None:
        with as_agent(serve) as agent:
            waited.append(agent.get(f"/v1/items/{item['id']}/outcome", params={"wait": 30}).json())

    waiter = threading.Thread(target=wait)
    waiter.start()
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        shown = await first_shown(app, pilot, count=1)
        assert shown.id == item["id"]
        await decide_key(pilot, "a")
        await eventually(lambda: not waiter.is_alive(), timeout=20, what="the agent's wait answered")
        await eventually(lambda: session.store.outbox.waiting_count() == 0, what="the outcome recorded")
        [row] = session.store.outbox.decisions()
    [outcome] = waited
    assert (outcome["state"], outcome["verdict"], outcome["decided_by"]) == ("decided", "approve", OPERATOR)
    assert outcome["decision_id"] == row.decision.id and row.sync_state is SyncState.applied
