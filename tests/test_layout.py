"""The layout that uses the terminal, against the demo fleet: collapsing groups and moving past them, groups with the
most urgent first, and the detail beside the queue on a wide terminal and below it on a narrow one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from textual.pilot import Pilot

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.queue import Grouping, GroupOrder, QueueView
from tests.conftest import eventually, running_app, screen_text
from widgets.detail import ItemDetail

NARROW = (120, 40)
WIDE = (180, 40)


@asynccontextmanager
async def grouped_by_agent(
    fleet: Fleet, session: Session, size: tuple[int, int] = NARROW
) -> AsyncIterator[tuple[ApprovalApp, Pilot[None]]]:
    """The app over one poll of a fleet whose items come from several agents, grouped by agent."""
    for agent in ("billing-agent", "crm-agent", "support-agent"):
        fleet.add_item(agent=agent)
        fleet.add_item(agent=agent)
    async with running_app(session, size) as (app, pilot):
        await pilot.press("g", "g")
        assert session.queue.view.grouping is Grouping.agent
        await pilot.press("home")
        await pilot.pause(0.1)
        yield app, pilot


async def test_a_collapsed_group_is_its_header_and_the_cursor_moves_past_it(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with grouped_by_agent(fleet, session) as (app, pilot):
        queue = app.main.queue_list
        items = queue.item_count
        first = queue.current_group
        assert first is not None and not first.collapsed and first.size >= 2
        await pilot.press("c")
        await eventually(lambda: session.queue.view.collapsed == {first.label}, what="the group collapsed")
        header = queue.header
        assert header is not None and header.label == first.label and header.collapsed
        assert queue.highlighted is None and app.main.shown is None
        assert queue.row_count == items - first.size and queue.item_count == items
        text = screen_text(app)
        assert f"▸ {first.label}  ({first.size})" in text
        assert f"{first.label}: {first.size} items, collapsed" in text, "the detail says what the header holds"
        assert f"QUEUE {items} items" in text, "the queue bar still counts every item"
        # A decision key on a header decides nothing.
        await pilot.press("a")
        await pilot.pause(0.1)
        assert session.store.db.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0
        # j moves past the collapsed group onto the next group's first row, k comes back to the header.
        await pilot.press("j")
        await eventually(lambda: app.main.shown is not None, what="the next group's first item shown")
        row = queue.highlighted
        assert row is not None and row.agent != first.label
        assert app.main.shown is not None and app.main.shown.id == row.id
        assert row == session.store.queue.rows(0, 1, session.queue.view)[0]
        await pilot.press("k")
        await pilot.pause(0.1)
        assert queue.header == header and app.main.shown is None
        # → expands it, the cursor on its first row; ← on any of its rows collapses it again.
        await pilot.press("right")
        await eventually(lambda: not session.queue.view.collapsed, what="the group expanded")
        assert queue.row_count == items and queue.header is None
        assert queue.highlighted is not None and queue.highlighted.agent == first.label
        await pilot.press("j", "left")
        await eventually(lambda: session.queue.view.collapsed == {first.label}, what="collapsed again")
        assert queue.header is not None and queue.header.label == first.label
        # Grouping anew starts with every group open.
        await pilot.press("g")
        assert session.queue.view.collapsed == frozenset()


async def test_groups_can_come_with_the_most_urgent_first(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    fleet.add_item(agent="zeta-ops-agent", risk="critical", expires_in=60)  # last by name, first by urgency
    session = make_session()
    async with grouped_by_agent(fleet, session) as (app, pilot):
        queue = app.main.queue_list
        by_name = [g.label for g in session.store.queue.groups(session.queue.view)]
        assert by_name == sorted(by_name) and by_name[0] != "zeta-ops-agent"
        await pilot.press("G")
        assert session.queue.view.group_order is GroupOrder.urgency
        await pilot.press("home")
        await pilot.pause(0.1)
        most_urgent = session.store.queue.rows(0, 1, QueueView())[0]
        current = queue.current_group
        assert current is not None and current.label == most_urgent.agent == "zeta-ops-agent"
        assert queue.highlighted == most_urgent.model_copy(update={"group": "zeta-ops-agent"})
        assert "grouped by agent, most urgent first" in screen_text(app)


async def test_the_detail_goes_beside_the_queue_when_the_terminal_is_wide(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with running_app(session, NARROW) as (app, pilot):
        await pilot.press("j")
        await pilot.pause(0.1)
        shown = app.main.shown
        queue, detail = app.main.queue_list, app.main.query_one(ItemDetail)

        def below() -> bool:
            return detail.region.y >= queue.region.bottom and detail.region.width == queue.region.width

        def beside() -> bool:
            return detail.region.x >= queue.region.right and detail.region.height > queue.region.height

        assert below() and not app.main.has_class("-wide")
        await pilot.resize_terminal(*WIDE)
        await eventually(beside, what="the detail beside the queue")
        assert app.main.has_class("-wide")
        assert queue.region.width >= 80 and detail.region.width >= 80
        assert app.main.shown == shown, "resizing keeps the item shown"
        assert shown is not None and shown.headline in screen_text(app)
        await pilot.resize_terminal(*NARROW)
        await eventually(below, what="the detail below the queue again")
        assert app.main.shown == shown
