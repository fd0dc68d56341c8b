"""Dialogs and alerts on real parts (the demo fleet, SQLite in a temp dir, the app driven by Pilot): the reject
dialog's reason, toasts that keep out of the way, and problems that stay until acknowledged."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets import OptionList

from console.app import ApprovalApp
from console.fleet import Fleet
from console.screens.reject import RejectScreen
from console.session import Session
from tests.conftest import SOURCE, eventually, screen_text

SIZE = (120, 40)


async def test_reject_has_no_preselected_reason_and_enter_alone_records_nothing(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: session.store.queue_count() == 6, what="the first listing")
        await pilot.pause(0.1)
        top = app.main.shown
        assert top is not None
        await pilot.press("r")
        await pilot.pause()
        assert isinstance(app.screen, RejectScreen)
        assert app.screen.query_one("#reasons", OptionList).highlighted is None, "no reason is preselected"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RejectScreen), "enter without a reason does not reject"
        assert "Pick a reason" in screen_text(app)
        assert session.store.decisions() == []
        # A digit then enter: the reason picked, recorded, and sent.
        await pilot.press("3", "enter")
        await eventually(lambda: len(session.store.decisions()) == 1, what="the rejection recorded")
        [row] = session.store.decisions()
        assert (row.decision.source, row.decision.item_id) == (SOURCE, top.id)
        assert row.decision.reason_code == session.config.reject_reasons[2]
