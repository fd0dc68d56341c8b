"""The main screen as a new operator meets it: empty states, source health, changed items, two consoles on one
queue, the filter's feedback, refused actions and the footer. Pilot against the demo fleet."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.guard import ConfirmHolderScreen, RefusedScreen
from console.tui.screens.main import MainScreen
from console.tui.screens.reject import RejectScreen
from storage.queue import KIND_LABELS, QueueView
from storage.records import Item
from tests.conftest import SOURCE, decide_key, eventually, make_config, screen_text
from widgets.detail import ItemDetail

SIZE = (120, 40)


@asynccontextmanager
async def polled(
    session: Session, size: tuple[int, int] = SIZE, **run: Any
) -> AsyncIterator[tuple[ApprovalApp, Pilot[None]]]:
    """The app over one poll of the fleet (no background work)."""
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=size, **run) as pilot:
        await session.poll_once()
        if session.store.queue.count():
            await eventually(lambda: app.main.shown is not None, what="the top item shown")
        await pilot.pause(0.1)
        yield app, pilot


def shown(app: ApprovalApp) -> Item:
    item = app.main.shown
    assert item is not None
    return item


# ------------------------------------------------------------------------------------------------------ filter


async def test_the_kind_column_shows_what_the_filter_accepts(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    fleet.add_item(kind="escalation")
    fleet.add_item(kind="approval")
    session = make_session()
    async with polled(session) as (app, pilot):
        text = screen_text(app)
        store = session.store
        for kind, label in KIND_LABELS.items():
            expected = store.queue.count(QueueView(filter_text=f"kind:{kind}"))
            assert expected > 0, kind
            assert f" {label} " in text, f"the KIND column shows {label} for {kind}"
            for typed in (label, label.lower(), kind, kind[:3]):
                assert store.queue.count(QueueView(filter_text=f"kind:{typed}")) == expected, typed
        # What the column shows, typed into the filter, keeps exactly the rows that show it.
        await pilot.press("slash", *f"kind:{KIND_LABELS['escalation']}")
        await pilot.pause(0.1)
        rows = store.queue.rows(0, 100, session.queue.view)
        assert rows and all(row.kind == "escalation" for row in rows)


async def test_an_unknown_filter_field_is_named_under_the_filter(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled(session) as (app, pilot):
        await pilot.press("slash", *"foo:bar")
        await pilot.pause(0.1)
        hint = app.main.query_one("#filter-hint", Static)
        assert hint.display
        assert "unknown field foo:" in screen_text(app)
        assert "agent:" in str(hint.render())
        await pilot.press("ctrl+a", "ctrl+k", *"agent:x")  # a known field: the hint goes
        await pilot.pause(0.1)
        assert "unknown field" not in screen_text(app)
        assert not hint.display


# ------------------------------------------------------------------------------------------- empty queue, health


async def test_an_empty_queue_says_whether_the_filter_hides_items(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled(session) as (app, pilot):
        await pilot.press("slash", *"zz-nothing-has-this")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "Queue is empty" not in text
        assert "No item matches the filter" in text and "6 pending items hidden" in text
        assert "esc to clear the filter" in text
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert app.main.shown is not None, "clearing the filter brings the items back"


async def test_an_empty_queue_says_no_source_can_be_read_and_the_bar_says_why(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=(160, 40)) as pilot:
        health = session.poller.health
        await eventually(lambda: health[SOURCE].state == "up", what="the first good poll")
        await eventually(lambda: app.main.shown is not None, what="an item on screen")
        for row in fleet.pending():  # the queue empties, then the only source goes down
            fleet.withdraw(row["id"])
        await eventually(lambda: session.store.queue.count() == 0, what="the empty queue")
        await eventually(lambda: "every source answered with nothing pending" in screen_text(app), what="empty")
        fleet.stop()
        await eventually(lambda: health[SOURCE].state == "down", what="the source down")
        app.main.refresh_status()
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "Nothing to show: no source can be read now: fleet (down)" in text
        assert "Queue is empty" not in text
        status = str(app.main.query_one("#status", Static).render())
        # The short reason, in the bar itself: which one depends on where the stop caught the long-poll.
        reason = health[SOURCE].error
        assert reason and " ".join(reason.split()[:2]) in status, status
        assert "last good poll" in status and "ago" in status, status
        assert "polled" not in status, "a failed poll does not read like a good one"
        assert fleet.url not in status, "the address is in the config; the bar keeps the reason short"


async def test_a_truly_empty_queue_says_so(data_dir: Path) -> None:
    empty = Fleet(seed=3, interval=None, initial=0)
    empty.start()
    try:
        session = Session(make_config(empty), data_dir, token_for=lambda _name: None)
        async with polled(session) as (app, pilot):
            app.main.refresh_status()
            await pilot.pause(0.1)
            text = screen_text(app)
            assert "Queue is empty: every source answered with nothing pending" in text
            assert "No item matches" not in text and "no source can be read" not in text
    finally:
        empty.stop()


# ------------------------------------------------------------------------------------ refused actions, the footer


def footer_line(app: ApprovalApp) -> str:
    return screen_text(app).splitlines()[-1]


async def settled_footer(app: ApprovalApp) -> str:
    """The footer once it has recomposed for the item shown (it rebuilds its keys after each change)."""
    await eventually(lambda: "q Quit" in footer_line(app), what="the footer's keys")
    return footer_line(app)


async def test_keys_typed_after_a_refused_edit_do_not_run_as_commands(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    locked = fleet.add_item(kind="approval", risk="critical", expires_in=60, allowed_decisions=["approve", "reject"])
    session = make_session()
    async with polled(session) as (app, pilot):
        assert shown(app).id == locked["id"]
        view = session.queue.view
        await pilot.press("e")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RefusedScreen)
        assert "does not allow edit" in screen_text(app)
        # What the operator meant for the editor, then what a hurried one would press next.
        await pilot.press(*'{"amount": 5}', "enter", "o", "g", "r", "1", "enter", "a", "u", "p", "q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RefusedScreen), "only esc leaves the refusal"
        assert session.store.outbox.decisions() == []
        assert session.queue.view == view, "o and g did not re-sort or regroup"
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen) and app.main.queue_list.has_focus
        assert shown(app).id == locked["id"]
        await pilot.press("r")  # back on the queue, the keys work as before
        await pilot.pause(0.1)
        assert isinstance(app.screen, RejectScreen)


async def test_the_footer_offers_what_the_item_allows_in_its_words_and_fits_80_columns(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    locked = fleet.add_item(kind="approval", risk="critical", expires_in=60, allowed_decisions=["approve", "reject"])
    escalation = fleet.add_item(kind="escalation", risk="critical", expires_in=90)
    session = make_session()
    async with polled(session, size=(80, 24)) as (app, pilot):
        assert shown(app).id == locked["id"]
        footer = await settled_footer(app)
        for key in ("a Approve", "r Reject", "u Undo", "/ Filter", "? Help", "p Problems", "q Quit"):
            assert key in footer, (key, footer)
        assert "e Edit" not in footer, "this item does not allow edits"
        await pilot.press("j")
        await pilot.pause(0.2)
        assert shown(app).id == escalation["id"]
        await eventually(lambda: "Accept" in footer_line(app), what="the footer for the escalation")
        footer = await settled_footer(app)
        assert "a Accept" in footer and "Approve" not in footer, footer
        for key in ("e Edit", "? Help", "q Quit"):
            assert key in footer, (key, footer)
        # Under a dialog the main footer's keys do not work, so it is not shown.
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RejectScreen)
        assert "Accept" not in footer_line(app) and "q Quit" not in footer_line(app)
        await pilot.press("escape")
        await settled_footer(app)


async def test_the_palette_names_keys_as_they_are_typed(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    async with polled(session) as (app, _pilot):
        commands = {command.title: command.help for command in app.get_system_commands(app.main)}
        assert commands["Help"] == "key ?" and commands["Filter"] == "key /"
        assert not any("question_mark" in text or "slash" in text for text in commands.values())
        assert ("Accept" in commands) != ("Approve" in commands), "one name for `a`, the one that fits the item"


# --------------------------------------------------------------------------------- two consoles on one queue


@pytest.fixture
async def bob(fleet: Fleet, data_dir: Path) -> AsyncIterator[Session]:
    """A second console on the same fleet, run by another operator, with its own data dir."""
    console = Session(make_config(fleet, operator="bob"), data_dir.with_name("bob-data"), token_for=lambda _name: None)
    yield console
    await console.aclose()


def holder(fleet: Fleet, item_id: str) -> str | None:
    value = {row["id"]: row for row in fleet.pending()}[item_id]["claimed_by"]
    return value if isinstance(value, str) else None


async def bob_claims(bob: Session, index: int) -> Item:
    """Bob's console opens the item at `index` of his queue (which claims it, as opening an item does)."""
    await bob.poll_once()
    row = bob.store.queue.rows(index, 1)[0]
    found = bob.store.items.get(row.source, row.id)
    assert found is not None
    assert await bob.claim(found[0]) is None, "bob got the claim"
    return found[0]


async def test_a_console_opens_on_the_first_item_nobody_else_holds(
    fleet: Fleet, make_session: Callable[..., Session], bob: Session
) -> None:
    held = await bob_claims(bob, 0)
    session = make_session()
    async with polled(session) as (app, _pilot):
        top = session.store.queue.rows(0, 1)[0]
        assert (top.id, top.claimed_by) == (held.id, "bob")
        assert shown(app).id != held.id, "not the item bob holds"
        assert shown(app).id == session.store.queue.rows(1, 1)[0].id
        assert "⚑ bob" in screen_text(app), "bob's item stays listed, marked"


async def test_moving_on_after_a_decision_skips_items_others_hold(
    fleet: Fleet, make_session: Callable[..., Session], bob: Session
) -> None:
    session = make_session()
    async with polled(session) as (app, pilot):
        first = shown(app)
        await eventually(lambda: holder(fleet, first.id) == "alice", what="alice's claim")
        held = await bob_claims(bob, 1)  # bob's queue is alice's: his second item is alice's next one
        assert session.store.queue.rows(1, 1)[0].id == held.id
        await session.poll_once()
        await pilot.pause(0.1)
        await decide_key(pilot, "a")
        await pilot.pause(0.2)
        [row] = session.store.outbox.decisions()
        assert row.decision.item_id == first.id
        assert shown(app).id != held.id, "moved past the item bob holds"
        assert shown(app).id == session.store.queue.rows(1, 1)[0].id, "to the next one nobody holds"


async def test_deciding_an_item_someone_else_holds_asks_naming_them(
    fleet: Fleet, make_session: Callable[..., Session], bob: Session
) -> None:
    session = make_session()
    held = await bob_claims(bob, 1)
    async with polled(session) as (app, pilot):
        await pilot.press("j")  # the operator goes to bob's item on purpose: that is allowed
        await pilot.pause(0.2)
        assert shown(app).id == held.id and shown(app).claimed_by == "bob"
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ConfirmHolderScreen) and app.screen.holder == "bob"
        assert "bob holds this item" in screen_text(app)
        await pilot.press("n")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MainScreen) and session.store.outbox.decisions() == []
        await pilot.press("r")
        await pilot.pause(0.1)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RejectScreen), "after yes, the reject dialog as usual"
        await pilot.press("1", "enter")
        await pilot.pause(0.1)
        [row] = session.store.outbox.decisions()
        assert row.decision.item_id == held.id


# ------------------------------------------------------------------------------------------------ changed items


async def test_a_changed_item_shows_what_changed_against_the_version_on_screen(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    args: dict[str, Any] = {"amount": 14222.85, "currency": "EUR", "invoice": "INV-7"}
    action = {"name": "issue_refund", "args": args}
    refund = fleet.add_item(kind="approval", risk="critical", expires_in=60, action=action)
    session = make_session()
    async with polled(session) as (app, pilot):
        assert shown(app).id == refund["id"]
        assert "→" not in screen_text(app)
        fleet.change_item(refund["id"], action={**action, "args": {**args, "amount": 99999.99}})
        await session.poll_once()
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "changed while you were viewing it" in text
        assert "1 change: /action/args/amount 14222.85 → 99999.99" in text, text
        assert re.search(r'- +"amount": 14222\.85,', text) and re.search(
            r'\+ +"amount": 99999\.99,', text
        )  # diff lines
        # A second change is shown against what is now on screen, not the first version.
        fleet.change_item(refund["id"], action={**action, "args": {**args, "amount": 5.0}})
        await session.poll_once()
        await pilot.pause(0.2)
        assert "/action/args/amount 99999.99 → 5.0" in screen_text(app)
        await pilot.press("j")  # another item: the note belonged to the one left
        await pilot.pause(0.2)
        assert "→" not in screen_text(app) and app.main.query_one(ItemDetail).changed_from is None


async def test_two_consoles_opening_at_once_do_not_stay_on_the_same_item(
    fleet: Fleet, make_session: Callable[..., Session], bob: Session
) -> None:
    session = make_session()
    await session.poll_once()  # alice's console has listed the queue: nobody held anything yet
    first, second = session.store.queue.rows(0, 2)
    held = await bob_claims(bob, 0)  # bob's console opens on the same top item and claims it first
    assert held.id == first.id
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        # Alice's console opens on the top item too, tries to claim it, and hears that bob holds it.
        await eventually(lambda: app.main.shown is not None and app.main.shown.id == second.id, what="moved on")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "bob claimed the item that came next" in text and "next one nobody holds" in text
        assert holder(fleet, first.id) == "bob", "bob keeps his item"
        await eventually(lambda: holder(fleet, second.id) == "alice", what="alice's claim on her item")
        await pilot.press("k")  # going to bob's item with a key is the operator's choice: it stays
        await pilot.pause(0.3)
        assert shown(app).id == first.id
