"""Saved views as tabs, and the filter's history: Pilot against the demo fleet. Number keys switch the view (its
order, grouping and filter); the tabs' counts follow the queue as items are decided; the filter typed refines the
view; up and down in the filter walk the filters kept this session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input

from console.engine import filter_history
from console.engine.config import ViewConfig
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.queue import Grouping, QueueView, SortOrder
from tests.conftest import decide_key, eventually, make_config, running_app, screen_text
from widgets.view_tabs import ViewTab, ViewTabs

SIZE = (120, 40)


def counts(app: ApprovalApp) -> list[int | None]:
    return [tab.count for tab in app.main.view_tabs]


def expected_counts(app: ApprovalApp) -> list[int]:
    """Each saved view's count as the whole queue's filter finds it: what the tabs must show."""
    return [app.session.store.queue.count(saved.view) for saved in app.main.saved_views]


async def tabs_follow(app: ApprovalApp, what: str) -> list[int]:
    await eventually(lambda: counts(app) == expected_counts(app), what=what)
    return expected_counts(app)


def seed(fleet: Fleet) -> None:
    for risk in ("critical", "high", "high", "low"):
        fleet.add_item(kind="approval", risk=risk)
    for risk in ("medium", "high"):
        fleet.add_item(kind="escalation", risk=risk)


@pytest.fixture
def session(fleet: Fleet, make_session: Callable[..., Session]) -> Session:
    """A session over the seeded fleet: what most of these tests start from."""
    seed(fleet)
    return make_session()


async def test_number_keys_switch_views_and_the_counts_follow_decisions(session: Session) -> None:
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        main = app.main
        assert [s.name for s in main.saved_views] == ["All", "Critical+high", "Mine", "Escalations"]
        before = await tabs_follow(app, "the first counts")
        assert before[0] == session.store.queue.count() and 0 < before[1] < before[0] and before[3] > 0
        text = screen_text(app)
        assert f"1 All {before[0]}" in text and f"2 Critical+high {before[1]}" in text

        await pilot.press("2")
        await pilot.pause()
        assert main.active_view == 1 and session.queue.view == main.saved_views[1].view
        assert main.queue_list.row_count == before[1]
        rows = session.store.queue.rows(0, 100, session.queue.view)
        assert rows and {row.risk.value for row in rows} <= {"critical", "high"}

        await pilot.press("4")
        await pilot.pause()
        assert main.active_view == 3 and main.queue_list.row_count == before[3]
        await eventually(lambda: main.shown is not None and main.shown.kind == "escalation", what="an escalation")
        # Deciding one here takes it out of this view and of the whole queue: both tabs count one less.
        await decide_key(pilot, "a")
        await eventually(lambda: counts(app)[3] == before[3] - 1, what="the escalations' count to drop")
        after = await tabs_follow(app, "every count after the decision")
        assert after[0] == before[0] - 1
        assert f"4 Escalations {after[3]}" in screen_text(app)

        await pilot.press("1")
        await pilot.pause()
        assert main.active_view == 0 and main.queue_list.row_count == after[0]


async def test_the_mine_view_counts_what_the_operator_holds(session: Session) -> None:
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        # Opening an item claims it (the demo fleet supports claims): Mine holds it, and only it.
        await eventually(lambda: counts(app)[2] == 1, what="the opened item counted as mine")
        await pilot.press("3")
        await pilot.pause()
        shown = app.main.shown
        assert shown is not None and shown.claimed_by == "alice"
        assert [r.id for r in session.store.queue.rows(0, 10, session.queue.view)] == [shown.id]


async def test_the_filter_refines_the_view_and_esc_keeps_the_view(session: Session) -> None:
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        main = app.main
        await pilot.press("2", "slash", *"kind:ESC")
        await pilot.pause()
        assert session.queue.view.filter_text == "risk:critical,high kind:ESC"
        expected = session.store.queue.count(QueueView(filter_text="risk:critical,high kind:ESC"))
        assert expected > 0 and main.queue_list.row_count == expected
        await pilot.press("enter", "4")  # the refinement stays with the view switched to
        await pilot.pause()
        assert session.queue.view.filter_text == "kind:ESC kind:ESC"
        await pilot.press("escape")
        await pilot.pause()
        assert session.queue.view.filter_text == "kind:ESC" and main.active_view == 3


async def test_an_unknown_field_is_named_under_the_filter_and_not_applied(session: Session) -> None:
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        whole = app.main.queue_list.row_count
        await pilot.press("slash", *"owner:bob kind:job")
        await pilot.pause()
        text = screen_text(app)
        assert "unknown field owner: (fields: agent:, action:, source:, kind:, risk:" in text
        assert "kind:job is not a kind (takes APPR, ESC)" in text
        assert app.main.queue_list.row_count == whole  # neither term applied


async def test_up_and_down_in_the_filter_walk_the_filters_kept(session: Session) -> None:
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        field = app.main.query_one("#filter", Input)
        for text in ("risk:high", "kind:ESC", "risk:high"):  # kept again: it moves to the newest
            await pilot.press("slash", "ctrl+a", "ctrl+k", *text, "enter")
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"ag")
        await pilot.press("up")
        assert field.value == "risk:high" and session.queue.view.filter_text == "risk:high"
        await pilot.press("up")
        assert field.value == "kind:ESC" and session.queue.view.filter_text == "kind:ESC"
        await pilot.press("up")  # the oldest: stays
        assert field.value == "kind:ESC"
        await pilot.press("down", "down")
        assert field.value == "ag", "back to what was being typed"
        await pilot.press("down")
        assert field.value == "ag"


async def test_views_from_the_config_set_order_grouping_and_filter(fleet: Fleet, data_dir: Path) -> None:
    seed(fleet)
    config = make_config(fleet)
    views = (
        ViewConfig(name="Everything"),
        ViewConfig(name="Unsure", filter="-risk:low", sort="confidence", group="agent"),
    )
    session = Session(
        type(config)(operator="alice", sources=config.sources, views=views), data_dir, token_for=lambda _: None
    )
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        await pilot.press("2")
        await pilot.pause()
        assert session.queue.view == QueueView(SortOrder.confidence, Grouping.agent, "-risk:low")
        assert "grouped by agent" in screen_text(app)
        await pilot.press("3")  # no third view: said, nothing changes
        await pilot.pause()
        assert app.main.active_view == 1
        await eventually(lambda: "No view 3: there are 2" in screen_text(app), what="the notice")
        assert len(app.main.query_one(ViewTabs).tabs) == 2


def test_the_tab_strip_shows_names_as_text_counts_and_the_active_tab() -> None:
    tabs = ViewTabs()
    tabs.set_reactive(ViewTabs.tabs, (ViewTab("All", 120_000), ViewTab("[b]hot\x1b[2J", 7), ViewTab("Mine")))
    tabs.set_reactive(ViewTabs.active, 1)
    content = tabs.render()
    text = content.plain
    assert text.startswith("1 All 120,000 │  2 [b]hot") and text.endswith(" 7  │ 3 Mine …")  # … not counted yet
    assert "\x1b" not in text, "a name is text: no markup read, no control character sent"
    active = [span for span in content.spans if "reverse" in str(span.style)]
    assert [text[s.start : s.end].strip() for s in active] == [text[text.index("2 [b]") : text.index(" 7 ") + 2]]


async def test_the_filters_kept_come_back_after_a_restart(
    fleet: Fleet, make_session: Callable[..., Session], data_dir: Path
) -> None:
    seed(fleet)
    session = make_session()
    filter_history.save(data_dir, ["risk:high", "kind:ESC"])  # kept by a console before this one
    async with running_app(session, SIZE, notifications=True) as (app, pilot):
        field = app.main.query_one("#filter", Input)
        await pilot.press("slash", "up")
        assert field.value == "kind:ESC"
        await pilot.press("up")
        assert field.value == "risk:high" and session.queue.view.filter_text == "risk:high"
        await pilot.press("ctrl+a", "ctrl+k", *"-agent:zz", "enter")
    assert filter_history.load(data_dir) == ["risk:high", "kind:ESC", "-agent:zz"]


def test_a_filter_history_that_cannot_be_read_is_no_history(tmp_path: Path) -> None:
    path = tmp_path / filter_history.FILE_NAME
    for text in ("{not json", '{"a": 1}', "[1, null, " + '"  ", "ok"]'):
        path.write_text(text)
        assert filter_history.load(tmp_path) == (["ok"] if text.endswith('"ok"]') else [])
    filter_history.save(tmp_path, [f"f{n}" for n in range(80)])
    assert filter_history.load(tmp_path) == [f"f{n}" for n in range(30, 80)]  # the newest kept
    assert filter_history.load(tmp_path / "missing") == []
