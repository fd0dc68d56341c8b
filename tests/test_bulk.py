"""Safe bulk work: marking items, and approving or rejecting the marked ones, each as its own decision. Pilot against
the demo fleet, real SQLite in a temp dir; what was decided is read back from storage and from the fleet."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.bulk import BulkConfirmScreen
from console.tui.screens.main import MainScreen
from console.tui.screens.reject import RejectScreen
from tests.conftest import SOURCE, eventually, running_app, screen_text

SIZE = (140, 44)


@asynccontextmanager
async def polled(session: Session) -> AsyncIterator[tuple[ApprovalApp, Pilot[None]]]:
    """The app over one poll of the fleet (no background work: polls and sends happen when the test says)."""
    async with running_app(session, SIZE) as (app, pilot):
        await pilot.pause(0.1)
        yield app, pilot


def add(fleet: Fleet, workflow: str, risk: str, **fields: Any) -> str:
    item_id: str = fleet.add_item(kind="approval", workflow=workflow, risk=risk, expires_in=3600, **fields)["id"]
    return item_id


async def filter_to(pilot: Pilot[None], text: str) -> None:
    await pilot.press("slash", *text, "enter")
    await pilot.pause(0.1)


def decisions(session: Session) -> dict[str, dict[str, Any]]:
    """Each recorded decision by item id (at most one per item version), as stored."""
    conn = session.store.db
    rows = conn.execute("SELECT id, item_id, item_digest, verdict, reason_code, comment, sync_state FROM decisions")
    names = ("id", "item_id", "item_digest", "verdict", "reason_code", "comment", "sync_state")
    return {row[1]: dict(zip(names, row, strict=True)) for row in rows.fetchall()}


def audited(session: Session, decision_id: str) -> int:
    row = session.store.db.execute("SELECT count(*) FROM audit WHERE decision_id = ?", (decision_id,)).fetchone()
    return int(row[0])


def labelled(session: Session, decision_id: str) -> int:
    row = session.store.db.execute("SELECT count(*) FROM labels WHERE decision_id = ?", (decision_id,)).fetchone()
    return int(row[0])


def main_of(app: ApprovalApp) -> MainScreen:
    screen = app.main
    assert isinstance(screen, MainScreen)
    return screen


async def test_bulk_approve_skips_high_critical_and_changed_items_and_records_each_of_the_rest(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    low_changed = add(fleet, "nightly", "low")
    low = add(fleet, "nightly", "low")
    medium = add(fleet, "nightly", "medium")
    high = add(fleet, "nightly", "high")
    critical = add(fleet, "nightly", "critical")
    session = make_session()
    async with polled(session) as (app, pilot):
        await filter_to(pilot, "workflow:nightly")
        await pilot.press("asterisk")
        await pilot.pause(0.1)
        assert len(main_of(app).marks) == 5
        assert "5 marked" in screen_text(app)
        marked_digest = {key[1]: main_of(app).marks.digest(key) for key in main_of(app).marks}

        fleet.change_item(low_changed)  # a new version: the agent adds evidence
        await session.poll_once()
        await pilot.pause(0.1)
        assert len(main_of(app).marks) == 5, "a changed item keeps its mark (and the digest seen when marked)"

        await pilot.press("a")
        await pilot.pause(0.1)
        dialog = app.screen
        assert isinstance(dialog, BulkConfirmScreen)
        text = " ".join(str(line.render()) for line in dialog.query(Static))
        assert "Approve 2 items marked" in text and "Skipped, left as they are: 3 items" in text
        assert "changed since you marked it" in text and "high risk" in text and "critical" in text
        await pilot.press("enter")
        await eventually(lambda: len(decisions(session)) == 2, what="two decisions recorded")
        await pilot.pause(0.1)

        recorded = decisions(session)
        assert set(recorded) == {low, medium}
        assert len({d["id"] for d in recorded.values()}) == 2, "each item has a decision of its own"
        for item_id, decision in recorded.items():
            assert decision["verdict"] == "approve"
            assert decision["item_digest"] == marked_digest[item_id], "decided on the version marked"
            assert audited(session, decision["id"]) == 1
            assert labelled(session, decision["id"]) == 1
        for left in (low_changed, high, critical):
            found = session.item(SOURCE, left)
            assert found is not None and found[1] == "pending", left
        notice = " ".join(str(n.message) for n in app._notifications)
        assert "Approved 2 items marked" in notice and "Skipped 3" in notice
        assert "changed since you marked it" in notice and "high risk" in notice and "critical" in notice
        assert len(main_of(app).marks) == 0 and "marked" not in screen_text(app).split("\n")[0]

        await session.sync_once()
        applied = {d["item_id"] for d in fleet.applied_decisions()}
        assert applied == {low, medium}, "the fleet applied exactly the two approved items"


async def test_clearing_45_low_risk_items_takes_a_filter_and_three_keys(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    cleanup = {add(fleet, "cleanup", "low") for _ in range(45)}
    session = make_session()
    async with polled(session) as (app, pilot):
        await filter_to(pilot, "workflow:cleanup")
        assert main_of(app).queue_list.row_count == 45
        await pilot.press("asterisk", "a", "enter")  # the three keys
        await eventually(lambda: len(decisions(session)) == 45, what="45 decisions recorded")
        assert set(decisions(session)) == cleanup
        assert all(d["verdict"] == "approve" for d in decisions(session).values())
        await eventually(lambda: main_of(app).queue_list.row_count == 0, what="the filtered view emptied")
        while await session.sync_once():
            pass
        assert {d["item_id"] for d in fleet.applied_decisions()} == cleanup
        assert fleet.pending(), "items outside the filter stay pending"


async def test_bulk_reject_asks_one_reason_and_rejects_each_marked_item(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    for risk in ("critical", "high", "low"):
        add(fleet, "spam", risk)
    session = make_session()
    async with polled(session) as (app, pilot):
        await filter_to(pilot, "workflow:spam")
        screen = main_of(app)
        await pilot.press("home", "space", "space", "space")  # space marks and moves down
        await pilot.pause(0.1)
        assert len(screen.marks) == 3
        rows = [line for line in screen_text(app).split("\n") if line[1:2] == "●"]
        assert len(rows) == 3, "each marked row shows the mark"
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RejectScreen)
        assert "3 items marked" in screen_text(app)
        await pilot.press("2", *"duplicate run", "enter")
        await eventually(lambda: len(decisions(session)) == 3, what="three rejections")
        stored = list(decisions(session).values())
        assert {d["verdict"] for d in stored} == {"reject"}, "rejecting a critical item in bulk is allowed"
        assert {d["reason_code"] for d in stored} == {session.config.reject_reasons[1]}
        assert {d["comment"] for d in stored} == {"duplicate run"}
        assert all(audited(session, d["id"]) == 1 and labelled(session, d["id"]) == 1 for d in stored)


async def test_marks_vanish_with_their_items_and_esc_star_v_and_shift_arrows_mark(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    ids = [add(fleet, "marks", "low") for _ in range(6)]
    session = make_session()
    async with polled(session) as (app, pilot):
        screen = main_of(app)
        await filter_to(pilot, "workflow:marks")
        await pilot.press("asterisk")
        await pilot.pause(0.1)
        assert len(screen.marks) == 6
        fleet.withdraw(ids[0])
        fleet.decide_elsewhere(ids[1])
        await session.poll_once()
        await eventually(lambda: len(screen.marks) == 4, what="marks of items that left dropped")
        assert "4 marked" in screen_text(app)
        await pilot.press("asterisk")  # all shown are marked already: unmarks them
        await pilot.pause(0.1)
        assert len(screen.marks) == 0
        await pilot.press("home", "v", "j", "j", "v")  # a range of three rows
        await pilot.pause(0.1)
        assert len(screen.marks) == 3
        await pilot.press("escape")  # unmarks; the filter stays
        await pilot.pause(0.1)
        assert len(screen.marks) == 0 and screen.view.filter_text == "workflow:marks"
        await pilot.press("home", "shift+down", "shift+down")
        await pilot.pause(0.1)
        assert len(screen.marks) == 3 and screen.queue_list.cursor == 2
        await pilot.press("escape", "escape")  # first the marks, then the filter
        await pilot.pause(0.1)
        assert len(screen.marks) == 0 and screen.view.filter_text == ""


async def test_one_undo_takes_a_whole_bulk_back(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    for _ in range(3):
        add(fleet, "undo", "low")
    session = make_session(undo_seconds=60)
    async with polled(session) as (app, pilot):
        await filter_to(pilot, "workflow:undo")
        await pilot.press("asterisk", "a", "enter")
        await eventually(lambda: len(decisions(session)) == 3, what="three approvals")
        await pilot.pause(0.1)
        assert "Approved 3 items marked" in screen_text(app)
        await pilot.press("u")
        await eventually(
            lambda: {d["sync_state"] for d in decisions(session).values()} == {"undone"}, what="all three undone"
        )
        await eventually(lambda: main_of(app).queue_list.row_count == 3, what="the three items back in the queue")
        assert not fleet.applied_decisions()
