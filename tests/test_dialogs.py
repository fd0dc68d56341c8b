"""Dialogs and alerts on real parts (the demo fleet, SQLite in a temp dir, the app driven by Pilot): the reject
dialog's reason, toasts that keep out of the way, and problems that stay until acknowledged."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils
from textual.geometry import Region
from textual.widgets import Input, OptionList

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.problems import ProblemsScreen
from console.tui.screens.reject import RejectScreen
from storage import schema
from storage.db import Store
from tests.conftest import SOURCE, approve_what_bob_rejects, eventually, first_shown, screen_text

SIZE = (120, 40)


async def test_reject_has_no_preselected_reason_and_enter_alone_records_nothing(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, RejectScreen)
        assert app.screen.query_one("#reasons", OptionList).highlighted is None, "no reason is preselected"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RejectScreen), "enter without a reason does not reject"
        assert "Pick a reason" in screen_text(app)
        assert session.store.outbox.decisions() == []
        # A digit then enter: the reason picked, recorded, and sent.
        await pilot.press("3", "enter")
        await eventually(lambda: len(session.store.outbox.decisions()) == 1, what="the rejection recorded")
        [row] = session.store.outbox.decisions()
        assert (row.decision.source, row.decision.item_id) == (SOURCE, top.id)
        assert row.decision.reason_code == session.config.reject_reasons[2]


async def test_problems_stay_until_acknowledged_one_or_all_and_across_restarts(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    """Two conflicts and a malformed item: looking does not clear them; `a` acknowledges one, `A` all, durably; the
    acknowledged ones stay listed (dimmed, marked) but stop counting."""
    fleet.inject_garbage({"id": "bad-1", "kind": "approval"})
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        await approve_what_bob_rejects(app, pilot, fleet)
        assert await session.sync_once() == 2
        assert (
            len(session.store.outbox.unseen_problems()) == 2
            and len(session.store.quarantine.rows(unacknowledged=True)) == 1
        )
        await pilot.press("p")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ProblemsScreen)
        assert screen_text(app).count("already decided elsewhere by bob") == 2 and "bad-1" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert len(session.store.outbox.unseen_problems()) == 2, "looking is not acknowledging"
        assert len(session.store.quarantine.rows(unacknowledged=True)) == 1
    await session.aclose()

    again = make_session()  # a restart over the same data dir: the problems are still there
    app = ApprovalApp(again, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        await pilot.pause(0.1)
        assert screen_text(app).count("already decided elsewhere by bob") == 2
        await pilot.press("a")  # the first problem is highlighted when the screen opens
        await pilot.pause(0.1)
        assert screen_text(app).count("already decided elsewhere by bob") == 2, "still listed"
        assert screen_text(app).count("(acknowledged)") == 1 and "(1 new)" in screen_text(app)
        assert (
            len(again.store.outbox.unseen_problems()) == 1
            and len(again.store.quarantine.rows(unacknowledged=True)) == 1
        )
        await pilot.press("A")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert text.count("already decided elsewhere by bob") == 2 and "bad-1" in text, "listed, acknowledged"
        assert text.count("(acknowledged)") == 3 and text.count("(0 new)") == 2
        assert again.store.outbox.unseen_problems() == [] and again.store.quarantine.rows(unacknowledged=True) == []
        assert len(again.store.quarantine.rows()) == 1, "acknowledged, not deleted"
        assert again.store.outbox.unseen_problem_count() == 0, "the status bar stops counting them"


def test_v4_migrates_a_populated_v3_database_and_keeps_quarantined_items_unacknowledged(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in schema.MIGRATIONS[:3]:
        migration(sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO quarantine(source, item_id, reason, excerpt, seen_at, times)"
        " VALUES ('billing', 'bad', 'why', '{}', 1.0, 1)"
    )
    conn.close()
    store = Store(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        [entry] = store.quarantine.rows(unacknowledged=True)
        assert (entry.source, entry.item_id, entry.reason) == ("billing", "bad", "why")
        store.quarantine.acknowledge([("billing", "bad")])
        assert store.quarantine.rows(unacknowledged=True) == []
        store.quarantine.add("billing", "bad", "why", "{}")  # the same problem again: still acknowledged
        assert store.quarantine.rows(unacknowledged=True) == []
        store.quarantine.add("billing", "bad", "another reason", "{}")  # a new problem: asks again
        assert [q.reason for q in store.quarantine.rows(unacknowledged=True)] == ["another reason"]
    finally:
        store.close()


def _toast_regions(app: ApprovalApp) -> list[Region]:
    return [toast.region for toast in app.screen.query("Toast") if toast.region.area]


async def test_toasts_take_a_band_of_their_own_merge_repeats_and_a_key_clears_them(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        for _ in range(3):  # the same refusal three times: one toast that counts
            await pilot.press("u")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert text.count("Nothing to undo") == 1 and "(×3)" in text
        toasts = _toast_regions(app)
        assert toasts, "the alerts are on screen"
        main = app.main
        for widget in ("#detail", "#status", "#queue"):
            region = main.query_one(widget).region
            assert not any(region.overlaps(toast) for toast in toasts), f"a toast covers {widget}"
        await pilot.press("x")
        await pilot.pause(0.1)
        assert _toast_regions(app) == [] and "Nothing to undo" not in screen_text(app)

        # A dialog open: a new urgent item alerts, above nothing the operator types into.
        await pilot.press("r")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RejectScreen)
        app.screen.query_one("#comment", Input).focus()
        fleet.add_item(risk="critical", action={"name": "drop_everything", "args": {}})
        await session.poll_once()
        await eventually(lambda: bool(_toast_regions(app)), what="the alert's toast over the dialog")
        assert "drop_everything" in screen_text(app)
        dialog, comment = app.screen.query_one("#dialog").region, app.screen.query_one("#comment").region
        assert not any(dialog.overlaps(toast) or comment.overlaps(toast) for toast in _toast_regions(app))
        await pilot.press("ctrl+l")  # clears them with the comment field focused, typing nothing
        await pilot.pause(0.1)
        assert _toast_regions(app) == [] and app.screen.query_one("#comment", Input).value == ""
        assert isinstance(app.screen, RejectScreen)
