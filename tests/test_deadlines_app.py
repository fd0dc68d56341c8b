"""Deadlines in the app, against the demo fleet: `x` gives an item more time where its source allows it, the queue
and the detail mark a deadline inside the configured warning window, and an item that approves itself at its
deadline is flagged."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.extend import ExtendScreen, extension_choices
from storage.labels import Label
from storage.records import now_utc
from tests.conftest import eventually, make_config, screen_text, started
from widgets.detail import ItemDetail

SIZE = (120, 40)


@pytest.fixture
def quiet_fleet() -> Iterator[Fleet]:
    """A fleet with only the items a test adds."""
    yield from started(Fleet(seed=3, interval=None, initial=0))


@asynccontextmanager
async def console(
    fleet: Fleet, data_dir: Path, notifications: bool = False, **config: Any
) -> AsyncIterator[tuple[ApprovalApp, Pilot[None]]]:
    settings = dataclasses.replace(make_config(fleet), **config)
    session = Session(settings, data_dir, token_for=lambda _name: None)
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, notifications=notifications) as pilot:
        await session.poll_once()
        await eventually(lambda: app.main.shown is not None, what="the item shown")
        await pilot.pause(0.1)
        yield app, pilot


def listed(fleet: Fleet) -> dict[str, Any]:
    [item] = httpx.get(f"{fleet.url}/v1/items").json()["items"]
    return item  # type: ignore[no-any-return]


def detail_text(app: ApprovalApp) -> str:
    timing = app.main.query_one(ItemDetail).query_one("#item-detail-timing", Static)
    return str(timing.render())


def test_the_dialog_offers_what_the_allowance_covers() -> None:
    assert extension_choices(3600) == [300, 900, 1800, 3600]
    assert extension_choices(1000) == [300, 900, 1000]
    assert extension_choices(60) == [60]
    assert extension_choices(0) == []


async def test_x_gives_the_item_more_time_at_the_fleet(quiet_fleet: Fleet, data_dir: Path) -> None:
    item = quiet_fleet.add_item(kind="approval", risk="high", expires_in=600, extend={"max_seconds": 3600})
    async with console(quiet_fleet, data_dir) as (app, pilot):
        before = app.main.shown
        assert before is not None and before.extendable_seconds == 3600
        assert "x more time (up to 1h00m)" in detail_text(app)

        pressed_at = now_utc()
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExtendScreen)
        await pilot.press("2")  # 15 minutes
        await eventually(lambda: app.main.shown is not None and app.main.shown.digest != before.digest, what="extended")

        at_fleet = listed(quiet_fleet)
        moved = datetime.fromisoformat(at_fleet["expires_at"]) - datetime.fromisoformat(item["expires_at"])
        assert moved.total_seconds() == 900
        shown = app.main.shown
        assert shown is not None
        assert (shown.digest, shown.extendable_seconds) == (at_fleet["digest"], 2700)
        stored = app.session.item(shown.source, shown.id)
        assert stored is not None and stored[0].digest == at_fleet["digest"]  # stored before the next listing
        audit = app.session.store.db.execute("SELECT kind, item_digest FROM audit WHERE kind = 'extend'").fetchall()
        assert audit == [("extend", before.digest)]
        # The operator's own change is no surprise: the decision keys are not held for it.
        await pilot.press("a")
        await pilot.pause()
        assert await app.session.sync_once() == 1
        assert [d["verdict"] for d in quiet_fleet.applied_decisions()] == ["approve"]
        record = app.session.store.db.execute("SELECT record FROM labels").fetchone()[0]
        first_shown = Label.model_validate_json(record).first_shown_at
        assert first_shown is not None and first_shown < pressed_at, "time to decide counts from the first look"


async def test_x_where_the_source_allows_no_more_time_opens_nothing(quiet_fleet: Fleet, data_dir: Path) -> None:
    quiet_fleet.add_item(kind="escalation", expires_in=600)  # offers no extension
    async with console(quiet_fleet, data_dir) as (app, pilot):
        assert "fixed: the source allows no more time" in detail_text(app)
        digest = listed(quiet_fleet)["digest"]
        await pilot.press("x")
        await pilot.pause()
        assert not isinstance(app.screen, ExtendScreen)
        assert listed(quiet_fleet)["digest"] == digest


async def test_an_extension_refused_as_stale_is_said_and_changes_nothing(quiet_fleet: Fleet, data_dir: Path) -> None:
    item = quiet_fleet.add_item(kind="approval", expires_in=600, extend={"max_seconds": 3600})
    async with console(quiet_fleet, data_dir) as (app, pilot):
        changed = quiet_fleet.change_item(item["id"], policy="a newer policy")  # not polled: the screen keeps the old
        await pilot.press("x", "1")
        await eventually(
            lambda: any("changed since you saw it" in str(n.message) for n in app._notifications), what="the refusal"
        )
        assert listed(quiet_fleet)["digest"] == changed["digest"]


@pytest.mark.parametrize(("warning", "left", "near"), [(None, 100, True), (None, 200, False), (300.0, 200, True)])
async def test_a_deadline_inside_the_warning_window_is_marked(
    quiet_fleet: Fleet, data_dir: Path, warning: float | None, left: int, near: bool
) -> None:
    quiet_fleet.add_item(kind="approval", expires_in=left)
    async with console(quiet_fleet, data_dir, deadline_warning=warning) as (app, _):
        [row] = [line for line in screen_text(app).splitlines() if " APPR " in line]
        assert ("⚠" in row) is near
        assert ("deadline near" in detail_text(app)) is near


async def test_an_item_that_approves_itself_is_flagged(quiet_fleet: Fleet, data_dir: Path) -> None:
    quiet_fleet.add_item(kind="approval", expires_in=1800, on_expiry="approve")
    async with console(quiet_fleet, data_dir) as (app, _):
        [row] = [line for line in screen_text(app).splitlines() if " APPR " in line]
        assert "✔" in row
        assert "APPROVES ITSELF" in detail_text(app)


async def test_x_dismisses_the_alerts_on_screen_first(quiet_fleet: Fleet, data_dir: Path) -> None:
    quiet_fleet.add_item(kind="approval", risk="critical", expires_in=60, extend={"max_seconds": 600})
    async with console(quiet_fleet, data_dir, notifications=True) as (app, pilot):
        app.notify("A new critical item", title="New CRIT item", markup=False)
        await eventually(lambda: bool(app.screen.query("Toast")), what="the alert on screen")
        await pilot.press("x")
        await eventually(lambda: not app.screen.query("Toast"), what="the alerts dismissed")
        assert not isinstance(app.screen, ExtendScreen)
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExtendScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ExtendScreen)
