"""The database's integrity check runs after the first frame (its cost grows with the database), and no decision is
recorded before it passes: the decision keys say the database is being checked, and on a damaged database they are
refused for the whole session, with the damage and its fix on screen. Real app under Pilot, real SQLite files, the
demo fleet; the check is the real one, held at its start by the test where the test needs to act meanwhile."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from console.engine.session import DB_NAME, Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.db import DecisionRefused
from storage.records import Risk, Verdict
from tests import factories
from tests.conftest import decide_key, eventually, make_config, screen_text
from tests.test_storage_faults import _damaged

SIZE = (140, 40)
SETTLE = 1.6  # seconds: past the guard against deciding a freshly shown item


def _recorded(session: Session) -> int:
    return len(session.store.outbox.decisions(limit=10_000))


async def test_decisions_are_held_until_the_integrity_check_passes(fleet: Fleet, data_dir: Path) -> None:
    session = Session(make_config(fleet), data_dir, token_for=lambda _n: None, check_later=True)
    check = session._integrity_problem
    release = threading.Event()

    def held_check() -> str | None:  # the real check, started only once the test has pressed its keys
        release.wait(30)
        return check()

    session._integrity_problem = held_check  # type: ignore[method-assign]
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await session.poll_once()
        app.main.queue_changed()
        await eventually(lambda: app.main.shown is not None, what="an item shown")
        while app.main.shown is not None and app.main.shown.risk is Risk.critical:
            await pilot.press("j")  # one key decides a non-critical item
        shown = app.main.shown
        assert shown is not None
        await pilot.pause(SETTLE)
        app.clear_notifications()
        await pilot.press("a")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "Checking the database" in text and "Approved:" not in text, text
        assert _recorded(session) == 0 and not session.database_checked
        with pytest.raises(DecisionRefused, match="checking the database"):
            session.decide(shown, Verdict.approve)
        assert _recorded(session) == 0, "refused beneath the keys too"

        release.set()
        await eventually(lambda: session.database_checked, what="the check passed")
        assert session.database_problem is None
        await decide_key(pilot, "a")
        await eventually(lambda: _recorded(session) == 1, what="the decision recorded once the check passed")
    await session.aclose()


async def test_a_damaged_database_refuses_every_decision_and_is_left_as_it_was(fleet: Fleet, data_dir: Path) -> None:
    """The damage is found right after the first frame (it used to stop the start): shown, with its fix."""
    path = data_dir / DB_NAME
    before = _damaged(path, "damaged pages")
    session = Session(make_config(fleet), data_dir, token_for=lambda _n: None, check_later=True)
    app = ApprovalApp(session, background=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await eventually(lambda: session.database_problem is not None, what="the check to fail")
        assert not session.database_checked
        await eventually(lambda: "Decisions are refused" in screen_text(app), what="the damage on screen")
        text = screen_text(app)
        assert "damaged" in text and "--start-clean" in text, text
        for key in ("a", "r", "e"):
            await pilot.press(key)
            await pilot.pause()
            if key != "a":
                await pilot.press("escape")
        assert _recorded(session) == 0, "no decision recorded on a damaged database"
        assert app.crashed is None, "a damaged page under the queue does not end the app"
        # The queue shows what it can still read (maybe nothing: the damage may sit under the queue's own pages).
        item = app.main.shown or factories.item("itm_anything", source="fleet")
        with pytest.raises(DecisionRefused, match="damaged"):
            session.decide(item, Verdict.approve)
        assert session.poller.health["fleet"].last_poll_at is None, "nothing polled into a damaged database"
    await session.aclose()
    assert path.read_bytes() == before, "nothing written to the damaged file"
