"""Why an item ranks where it does, the sources' health in full (`H`), copying an item's link (`y`), a past decision
opened from the history, and problems acknowledged but still listed. Pilot against the demo fleet."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from console.engine.config import Config, SourceConfig
from console.engine.deep_link import copyable, parse_target, printable_ascii
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.health import HealthScreen
from console.tui.screens.history import HistoryScreen
from console.tui.screens.history_detail import HistoryDetailScreen
from console.tui.screens.problems import ProblemsScreen
from storage.queue import Grouping, QueueView, SortOrder
from storage.records import Quarantined, SourceCounts, SourceHealth
from tests.conftest import SOURCE, approve_what_bob_rejects, eventually, running_app, screen_text
from tests.factories import item
from tests.servers import closed_port_url
from tests.test_stats_history import SIZE, History, T
from widgets.source_health import source_report
from widgets.why_line import ordinal

# An id a hostile agent could send: a bidi override, a zero-width space, non-ASCII letters (control characters are
# refused at the door, storage/records.py id_problem).
HOSTILE_ID = "itm_\u202egnp.exe\u200bé"
OSC52 = re.compile(r"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07")


def why_line(app: ApprovalApp) -> str:
    return str(app.main.query_one("#item-detail-why", Static).render())


# ---------------------------------------------------------------------------------------------------- why line


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th",
    ]  # fmt: skip


def test_rank_factors_follow_the_order_keys() -> None:
    assert QueueView().rank_factors[:2] == ("risk", "time left")
    assert QueueView(SortOrder.age).rank_factors == ("age",)
    assert QueueView(SortOrder.confidence).rank_factors[0] == "confidence"
    assert QueueView(SortOrder.urgency, Grouping.source).rank_factors[:2] == ("source", "risk")


async def test_the_detail_says_why_the_item_ranks_where_it_does(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    fleet.add_item(risk="critical", expires_in=240, on_expiry="approve")
    session = make_session()
    async with running_app(session) as (app, pilot):
        await pilot.pause(0.1)
        shown = app.main.shown
        assert shown is not None and shown.risk.value == "critical"
        line = why_line(app)
        assert line.startswith("Ranked 1st of 7 (sorted by urgency): critical risk, ")
        assert re.search(r"critical risk, \d+m left", line), line
        assert "On expiry: approved by the agent: it runs without anyone deciding." in line
        await pilot.press("j")
        await pilot.pause(0.1)
        assert why_line(app).startswith("Ranked 2nd of 7 (sorted by urgency): ")
        await pilot.press("o")  # by age: the same item, ranked by when it was created
        await pilot.pause(0.1)
        index = session.queue.index_of(app.main.shown.source, app.main.shown.id)  # type: ignore[union-attr]
        assert index is not None
        assert why_line(app).startswith(f"Ranked {ordinal(index + 1)} of 7 (sorted by age): created ")


# -------------------------------------------------------------------------------------------------- source health


async def test_the_health_screen_shows_a_down_sources_error_and_next_retry(fleet: Fleet, data_dir: Path) -> None:
    config = Config(
        operator="alice",
        undo_seconds=0,
        sources=(
            SourceConfig(name=SOURCE, url=fleet.url, poll_interval=0.2),
            SourceConfig(name="down", url=closed_port_url(), poll_interval=30.0, timeout=1.0),
        ),
    )
    fleet.inject_garbage({"id": "bad-1", "kind": "approval"})
    session = Session(config, data_dir, token_for=lambda _name: None)
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        health = session.poller.health
        await eventually(lambda: health["down"].state == "down" and health["down"].next_retry_at is not None)
        await eventually(lambda: health[SOURCE].state == "up" and health[SOURCE].quarantined == 1)
        await pilot.press("H")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HealthScreen)
        await eventually(lambda: "6 pending" in screen_text(app), what="the counts")
        text = screen_text(app)
        block = text[text.index("down ") :]
        assert "last error" in block and "connect" in block.lower(), block
        assert re.search(r"next retry\s+in \d+", block), block
        assert "never" in block  # never answered well
        ours = text[: text.index("down ")]
        assert "1 quarantined (1 not acknowledged)" in ours and "0 unsynced" in ours
        assert "bad-1" in ours, "the quarantine reason is listed"
        await pilot.press("escape")
        assert not isinstance(app.screen, HealthScreen)


def test_the_health_report_cleans_what_sources_wrote() -> None:
    hostile = "refused\x1b]52;c;ZXZpbA==\x07 \u202eevil\x1b[2J"
    down = SourceHealth(name="down", state="down", error=hostile, last_poll_at=T - 5, next_retry_at=T + 30)
    entry = Quarantined(source="down", item_id="itm_\x1b[31m", reason=hostile, seen_at=T, excerpt="{}")
    report = source_report([down], {"down": SourceCounts(quarantined=1, unacknowledged=1)}, [entry], T).plain
    assert not any(ord(char) < 32 and char != "\n" for char in report) and "\u202e" not in report
    assert "in 30s" in report and "1 quarantined (1 not acknowledged)" in report


# ------------------------------------------------------------------------------------------------------- copy


def test_copy_refuses_or_encodes_what_is_not_printable_ascii() -> None:
    assert copyable("fleet", "itm_1", link=False) == "itm_1"
    link = copyable("fleet", "itm\x1b]52;c;x\x07\u202e", link=True)
    assert link is not None and printable_ascii(link) and "\x1b" not in link
    assert parse_target(link) == ("fleet", "itm\x1b]52;c;x\x07\u202e"), "the link still names the item"
    assert copyable("fleet", "itm\ud800", link=True) is None, "a lone surrogate cannot be encoded: refused"


async def test_y_copies_the_items_link_as_printable_ascii(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    fleet.add_item(id=HOSTILE_ID, risk="critical", expires_in=120)
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await session.poll_once()
        await eventually(lambda: app.main.shown is not None and app.main.shown.id == HOSTILE_ID, what="the item")
        written: list[str] = []
        driver = app._driver
        assert driver is not None
        original = driver.write

        def capture(data: str) -> None:
            written.append(data)
            original(data)

        driver.write = capture  # type: ignore[method-assign]
        await pilot.press("y")
        await pilot.pause(0.1)
        payloads = [m for data in written for m in OSC52.findall(data)]
        assert len(payloads) == 1, written
        copied = base64.b64decode(payloads[0]).decode("ascii")
        assert printable_ascii(copied) and copied.startswith("approval-console://open/fleet/itm_")
        assert parse_target(copied) == (SOURCE, HOSTILE_ID)
        assert app.clipboard == copied
        assert any(f"Copied the link: {copied}" in str(n.message) for n in app._notifications)
        await pilot.press("Y")
        await pilot.pause(0.1)
        assert app.clipboard == "itm_%E2%80%AEgnp.exe%E2%80%8B%C3%A9", "the id percent-encoded, not raw"


# ---------------------------------------------------------------------------------------------- history detail


@pytest.fixture
def known_history(tmp_path: Path) -> Iterator[Session]:
    session = Session(Config(operator="alice"), tmp_path / "data", token_for=lambda _name: None)
    History(session.store).fill()
    yield session
    session.store.close()
    session.background_store.close()


async def open_decision(app: ApprovalApp, pilot: Any, item_id: str) -> None:
    await pilot.press("h")
    assert isinstance(app.screen, HistoryScreen)
    history = app.screen
    ids = [row.decision.item_id for row in history._page_rows]
    await pilot.press(*["down"] * ids.index(item_id), "enter")
    await pilot.pause()


async def test_history_opens_an_edited_decision_with_its_diff(known_history: Session) -> None:
    app = ApprovalApp(known_history, now=lambda: T, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_decision(app, pilot, "b3")
        assert isinstance(app.screen, HistoryDetailScreen)
        text = screen_text(app)
        assert "EDITED AND APPROVED" in text and "who      alice" in text
        assert "not applied: stale" in text and "the item changed after you saw it" in text
        assert re.search(r"/amount \S+ → 625\.0", text), text
        assert '+  "amount": 625.0' in text
        assert "the stored item at this version" in text and '"id": "b3"' in text
        await pilot.press("escape")
        assert isinstance(app.screen, HistoryScreen)


async def test_history_detail_of_a_rejection_shows_reason_and_no_diff(known_history: Session) -> None:
    app = ApprovalApp(known_history, now=lambda: T, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_decision(app, pilot, "b2")
        text = screen_text(app)
        assert "REJECTED" in text and "wrong_target · wrong customer" in text and "applied" in text
        assert "Edited" not in text


# ---------------------------------------------------------------------------------------------------- problems


async def test_acknowledging_lowers_the_status_bar_count_and_keeps_the_problem_listed(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    fleet.inject_garbage({"id": "bad-1", "kind": "approval"})
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await session.poll_once()
        await eventually(lambda: app.main.shown is not None)
        await pilot.pause(0.1)
        await approve_what_bob_rejects(app, pilot, fleet)
        assert await session.sync_once() == 2
        app.main.refresh_status()
        await eventually(lambda: " 2 conflicts " in screen_text(app), what="the count")
        await pilot.press("p")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ProblemsScreen)
        await pilot.press("a", "escape")
        await eventually(lambda: " 1 conflict " in screen_text(app), what="the count lowered")
        await pilot.press("p")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert text.count("already decided elsewhere by bob") == 2 and text.count("(acknowledged)") == 1
        assert " 1 malformed" in str(app.main.query_one("#status", Static).render())
        await pilot.press("A", "escape")
        await eventually(lambda: "conflict" not in screen_text(app), what="no conflict counted")
        assert "malformed" not in screen_text(app), "an acknowledged quarantined item stops counting too"
        await pilot.press("p")
        await pilot.pause(0.1)
        assert screen_text(app).count("(acknowledged)") == 3 and "bad-1" in screen_text(app)


async def test_history_detail_shows_what_the_label_kept_once_a_newer_version_replaced_the_item(
    known_history: Session,
) -> None:
    store = known_history.store
    decided = store.items.get("billing", "b1")
    assert decided is not None
    newer = item("b1", source="billing", agent="billing-agent", risk="medium", policy="the v2 policy")
    store.items.apply_changes("billing", [newer], [], "c3")
    found = store.items.get("billing", "b1")
    assert found is not None and found[0].digest != decided[0].digest
    app = ApprovalApp(known_history, now=lambda: T, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await open_decision(app, pilot, "b1")
        text = screen_text(app)
        assert "APPROVED" in text and "what the decision's label kept of the one decided" in text
        assert '"proposed"' in text and "the v2 policy" not in text, "the version decided, not the newer one"
