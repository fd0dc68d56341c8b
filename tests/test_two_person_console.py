"""Two-person items in the console (PROTOCOL.md "Two-person items"), on real parts: the demo fleet on loopback, two
consoles (alice and bob, each with its own SQLite file) and the app under Pilot. Alice's approval is recorded as one of
two and the item comes back showing "1 of 2"; alice cannot approve it again (refused at the key, nothing sent); bob's
approval applies it; alice's label settles once the item leaves the queue."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.history import remedy, sync_text
from storage.db import DecisionRefused
from storage.records import Decision, Item, SyncState, Verdict
from tests.conftest import SOURCE, decide_key, eventually, make_config, running_app, screen_text, started
from tests.test_fleet import refund

SIZE = (140, 40)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    yield from started(Fleet(seed=11, interval=None, initial=0))


def console(fleet: Fleet, data_dir: Path, operator: str) -> Session:
    return Session(make_config(fleet, operator=operator), data_dir / operator, token_for=lambda _name: None)


def two_person_item(fleet: Fleet) -> str:
    added = fleet.add_item(**refund(approvals_required=2, risk="high"))
    return str(added["id"])


def held(session: Session, item_id: str) -> Item | None:
    found = session.store.items.get(SOURCE, item_id)
    return found[0] if found is not None and found[1] == "pending" else None


async def approved_by_alice(alice: Session, item_id: str) -> Decision:
    """Alice's approval of the item, sent: the source records it as one of two."""
    await alice.poll_once()
    first = held(alice, item_id)
    assert first is not None
    mine = alice.decide(first, Verdict.approve)
    await alice.sync_once()
    return mine


def holder(fleet: Fleet, item_id: str) -> object:
    return {row["id"]: row for row in fleet.pending()}[item_id]["claimed_by"]


def label_outcome(session: Session, decision_id: str) -> str | None:
    row = session.store.db.conn.execute("SELECT outcome FROM labels WHERE decision_id = ?", (decision_id,)).fetchone()
    return None if row is None else str(row[0])


def settled(app: ApprovalApp) -> bool:
    """The decision keys no longer wait (after a decision, or a new version of the item shown)."""
    return time.monotonic() >= app.main._settle_until


async def approve_shown(app: ApprovalApp, pilot: Pilot[Any]) -> None:
    await eventually(lambda: settled(app), what="the decision keys")
    await decide_key(pilot, "a")
    await pilot.pause()


async def refused_at_the_key(app: ApprovalApp, pilot: Pilot[Any], fleet: Fleet, item_id: str) -> None:
    """Alice approves again: refused at the key with a notice; nothing recorded, nothing sent."""
    requests = fleet.decision_requests(item_id)
    before = len(app.session.store.outbox.decisions())
    await approve_shown(app, pilot)
    await eventually(lambda: "already approved this item" in screen_text(app), what="the refusal notice")
    assert len(app.session.store.outbox.decisions()) == before
    assert await app.session.sync_once() == 0
    assert fleet.decision_requests(item_id) == requests


async def test_one_of_two_after_alice_then_applied_after_bob(fleet: Fleet, tmp_path: Path) -> None:
    item_id = two_person_item(fleet)

    alice = console(fleet, tmp_path, "alice")
    async with running_app(alice, SIZE, notifications=True, what="the item shown") as (app, pilot):
        # Opening it claims it; the claim is in before she decides (as it is for a person reading the item).
        await eventually(lambda: holder(fleet, item_id) == "alice", what="alice's claim")
        await approve_shown(app, pilot)
        [mine] = alice.store.outbox.decisions()
        assert mine.decision.operator == "alice" and mine.decision.verdict is Verdict.approve
        assert await alice.sync_once() == 1
        [mine] = alice.store.outbox.decisions()
        assert mine.sync_state is SyncState.partial, mine.detail
        assert sync_text(mine) == "recorded: one approval of a two-person item" and remedy(mine) is None
        assert alice.store.outbox.unseen_problem_count() == 0, "not a problem: nothing for alice to do"
        assert fleet.applied_decisions() == [], "recorded at the source, not applied"
        await alice.poll_once()  # the new version: the source lists who approved
        await eventually(lambda: held(alice, item_id) is not None, what="the item back in the queue")
        app.main.queue_changed()
        await eventually(lambda: app.main.shown is not None and app.main.shown.approvals != (), what="1 of 2 shown")
        await eventually(lambda: "approved by alice" in screen_text(app), what="alice's view of 1 of 2")
        text = screen_text(app)
        assert "1 of 2" in text, text
        assert "you approved it: another operator must approve it" in text
        # Having approved, alice does not claim it again (opening or renewing): bob is not warned off by her claim.
        assert holder(fleet, item_id) is None
        again = held(alice, item_id)
        assert again is not None and await alice.claim(again) is None
        assert holder(fleet, item_id) is None

        await refused_at_the_key(app, pilot, fleet, item_id)
        # Her label waits for the item's final outcome: a partial answer is not one.
        assert label_outcome(alice, mine.decision.id) == "pending"

    bob = console(fleet, tmp_path, "bob")
    async with running_app(bob, SIZE, notifications=True, what="the item shown") as (app, pilot):
        shown = app.main.shown
        assert shown is not None and shown.id == item_id
        await eventually(lambda: "your approval completes it" in screen_text(app), what="bob's view of 1 of 2")
        text = screen_text(app)
        assert "1 of 2" in text and "approved by alice" in text, text
        await approve_shown(app, pilot)
        assert await bob.sync_once() == 1
        [his] = bob.store.outbox.decisions()
        assert his.sync_state is SyncState.applied, his.detail
    applied = fleet.applied_decisions()
    assert [(d["item_id"], d["operator"], d["verdict"]) for d in applied] == [(item_id, "bob", "approve")]

    # Alice's console hears the item leave: her approval's label settles as applied (it counted).
    alice = console(fleet, tmp_path, "alice")
    try:
        await alice.poll_once()
        assert held(alice, item_id) is None
        [mine] = alice.store.outbox.decisions()
        assert mine.sync_state is SyncState.partial and "completed by bob" in mine.detail
        assert label_outcome(alice, mine.decision.id) == "applied"
    finally:
        await alice.aclose()


async def test_the_console_refuses_alice_twice_without_sending(fleet: Fleet, tmp_path: Path) -> None:
    item_id = two_person_item(fleet)
    alice = console(fleet, tmp_path, "alice")
    try:
        await alice.poll_once()
        first = held(alice, item_id)
        assert first is not None and first.approvals_required == 2 and first.approval_progress.startswith("0 of 2")
        alice.decide(first, Verdict.approve)
        assert await alice.sync_once() == 1
        await alice.poll_once()
        again = held(alice, item_id)
        assert again is not None and [a.operator for a in again.approvals] == ["alice"]
        requests = fleet.decision_requests(item_id)
        with pytest.raises(DecisionRefused, match="already approved"):
            alice.decide(again, Verdict.approve)
        with pytest.raises(DecisionRefused, match="already approved"):
            alice.decide(again, Verdict.edit, edited={"customer_id": "cus_1042", "amount": 10.0})
        assert len(alice.store.outbox.decisions()) == 1
        assert await alice.sync_once() == 0
        assert fleet.decision_requests(item_id) == requests
        # A reject is still hers to make: one person ends it.
        alice.decide(again, Verdict.reject, reason_code="unsafe")
        assert await alice.sync_once() == 1
        assert [(d["operator"], d["verdict"]) for d in fleet.applied_decisions()] == [("alice", "reject")]
    finally:
        await alice.aclose()


async def test_a_reject_by_bob_settles_alices_label_as_lost(fleet: Fleet, tmp_path: Path) -> None:
    item_id = two_person_item(fleet)
    alice, bob = console(fleet, tmp_path, "alice"), console(fleet, tmp_path, "bob")
    try:
        mine = await approved_by_alice(alice, item_id)
        await bob.poll_once()
        seen_by_bob = held(bob, item_id)
        assert seen_by_bob is not None and seen_by_bob.approval_progress == "1 of 2 — approved by alice"
        bob.decide(seen_by_bob, Verdict.reject, reason_code="unsafe")
        await bob.sync_once()
        await alice.poll_once()
        row = alice.store.db.conn.execute(
            "SELECT d.detail, l.outcome FROM decisions d JOIN labels l ON l.decision_id = d.id WHERE d.id = ?",
            (mine.id,),
        ).fetchone()
        assert row == ("rejected by bob after your approval", "conflict_lost")
    finally:
        await alice.aclose()
        await bob.aclose()


def test_the_demo_fleet_has_two_person_deletions() -> None:
    demo = Fleet(seed=3, interval=None, initial=200, two_person=True)  # never started: generation only
    marked = [i for i in demo.pending() if i.get("approvals_required") == 2]
    assert marked and {i["action"]["name"] for i in marked} == {"delete_account"}
    plain = Fleet(seed=3, interval=None, initial=200)
    assert not [i for i in plain.pending() if "approvals_required" in i]


async def test_an_expiry_after_alices_approval_settles_her_label_as_timed_out(fleet: Fleet, tmp_path: Path) -> None:
    item_id = two_person_item(fleet)
    alice = console(fleet, tmp_path, "alice")
    try:
        mine = await approved_by_alice(alice, item_id)
        await alice.poll_once()
        fleet.expire(item_id)
        await alice.poll_once()
        assert label_outcome(alice, mine.id) == "timed_out"
        # Her approval was the act: no second label saying nobody acted in time.
        count = alice.store.db.conn.execute("SELECT count(*) FROM labels WHERE item_id = ?", (item_id,)).fetchone()
        assert count == (1,)
    finally:
        await alice.aclose()
