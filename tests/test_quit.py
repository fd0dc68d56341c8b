"""Quitting never drops a decision silently: `q` with unsent decisions asks (send now and wait / quit anyway / stay).

Real parts: the demo fleet on loopback, SQLite in a temp dir, the real app driven by Pilot. The fleet's own record of
applied decisions is the truth about what the agents heard.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.quit import QuitScreen
from storage.db import Store, UndoRefused
from storage.records import Item, SyncState, Verdict
from tests import factories
from tests.conftest import decide_key, eventually, first_shown, screen_text

SIZE = (120, 40)
UNDO = 60.0  # long enough that the decision is still in its undo window when `q` is pressed


def _applied(fleet: Fleet, decision_id: str) -> bool:
    return any(d["decision_id"] == decision_id for d in fleet.applied_decisions())


def _dialog_text(app: ApprovalApp) -> str:
    """The quit dialog's own text. Not read from the screen: alerts raised meanwhile (a new urgent item, the source
    going down) may be on screen too and cover part of the dialog."""
    if not isinstance(app.screen, QuitScreen):
        return ""
    return "\n".join(str(app.screen.query_one(f"#{part}").render()) for part in ("quit-progress", "quit-keys"))


def _on_main(app: ApprovalApp) -> bool:
    return app.screen is app.main


@asynccontextmanager
async def _decided(
    make_session: Callable[..., Session],
) -> AsyncIterator[tuple[ApprovalApp, Pilot[Any], Session, Item, str]]:
    """The app with the top item approved and still in its undo window: what every quit test starts from."""
    session = make_session(undo_seconds=UNDO)
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)
        await decide_key(pilot, "a")
        [unsent] = session.unsent()
        assert unsent.item_id == top.id and unsent.attempts == 0, "recorded, waiting in its undo window"
        yield app, pilot, session, top, unsent.decision_id


async def test_q_in_the_undo_window_asks_and_send_now_delivers_before_quitting(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with _decided(make_session) as (app, pilot, session, _, decision_id):
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen), "q with an unsent decision asks first"
        assert app.return_code is None, "and the app is still running"
        text = screen_text(app)
        assert "1 decision not sent yet" in text
        assert "undo window" in text, "q inside the undo window says what will happen"
        assert not _applied(fleet, decision_id), "asking sends nothing"

        await pilot.press("s")
        heard_at_exit: list[bool] = []

        def exited() -> bool:
            if app.return_code is None:
                return False
            heard_at_exit.append(_applied(fleet, decision_id))
            return True

        await eventually(exited, timeout=30, what="the app to quit after sending")
        assert heard_at_exit == [True], "the fleet had applied the decision when the app quit"
        [row] = [r for r in session.store.outbox.decisions() if r.decision.id == decision_id]
        assert row.sync_state is SyncState.applied
        assert app.return_code == 0


async def test_stay_keeps_the_decision_undoable(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    async with _decided(make_session) as (app, pilot, session, top, decision_id):
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert _on_main(app) and app.return_code is None, "stay: back on the queue, still running"
        # Nothing was sent and the undo window still runs: the operator can take the decision back.
        await pilot.press("u")
        await pilot.pause()
        assert session.unsent() == []
        assert [r.sync_state for r in session.store.outbox.decisions() if r.decision.id == decision_id] == [
            SyncState.undone
        ]
        assert not _applied(fleet, decision_id)
        assert session.store.queue.index_of(top.source, top.id) is not None
        # With nothing unsent, q quits at once.
        await pilot.press("q")
        await eventually(lambda: app.return_code is not None, what="the app to quit")


async def test_source_down_is_named_and_the_operator_chooses_again(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with _decided(make_session) as (app, pilot, session, top, decision_id):
        fleet.stop()  # the agent service goes away while the decision waits
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("s")
        await eventually(
            lambda: "could not be sent now" in _dialog_text(app), timeout=30, what="the dialog to say it cannot send"
        )
        assert app.return_code is None, "a source that is down does not make the app quit by itself"
        assert isinstance(app.screen, QuitScreen)
        text = _dialog_text(app)
        assert "fleet:" in text, "the source is named"
        assert "q quit anyway" in text and "esc stay" in text
        [unsent] = session.unsent()
        assert unsent.decision_id == decision_id and unsent.attempts >= 1, "it was tried, and it stays in the outbox"

        await pilot.press("escape")  # stay
        await pilot.pause()
        assert _on_main(app) and app.return_code is None
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen), "still unsent: q asks again"
        await pilot.press("q")  # quit anyway
        await eventually(lambda: app.return_code is not None, what="the app to quit anyway")
    assert not _applied(fleet, decision_id)
    assert top.id in [item["id"] for item in fleet.pending()], "the agent is still waiting, as the dialog said"


async def test_a_decision_delivered_but_not_applied_is_said_before_quitting(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with _decided(make_session) as (app, pilot, session, top, decision_id):
        fleet.decide_elsewhere(top.id, by="bob")  # someone else was faster, at the source
        await pilot.press("q")
        await eventually(lambda: isinstance(app.screen, QuitScreen), what="the dialog")
        await pilot.press("s")
        await eventually(lambda: "did not apply" in screen_text(app), timeout=30, what="the dialog to say so")
        assert app.return_code is None, "the operator reads it before the console quits"
        # Read from the dialog itself: the conflict's own alert may be on screen too and take some of its height.
        said = str(app.screen.query_one("#quit-progress", Static).render())
        assert "already decided elsewhere by bob" in said, said
        assert session.unsent() == []
        assert [r.sync_state for r in session.store.outbox.decisions() if r.decision.id == decision_id] == [
            SyncState.conflict
        ]
        await pilot.press("q")
        await eventually(lambda: app.return_code is not None, what="the app to quit")


def test_send_now_ends_the_undo_window_and_the_labels_wait(store: Store) -> None:
    """The storage half of "send now": due at once (so undo refuses), listed with where each stands."""
    first, second = factories.item("a"), factories.item("b")
    store.items.apply_changes("billing", [first, second], [], "1")
    held = factories.decision(first)
    store.outbox.record(held, hold_seconds=60)
    store.outbox.record(factories.decision(second, Verdict.reject, reason_code="unsafe"), hold_seconds=60)
    now = time.time()
    unsent = store.outbox.unsent()
    assert [(u.item_id, u.verdict, u.attempts) for u in unsent] == [("a", Verdict.approve, 0), ("b", Verdict.reject, 0)]
    assert all(u.next_attempt_at > now + 30 for u in unsent), "both in their undo window"
    assert store.outbox.due(10, ["billing"]) == []
    assert store.labels.due(10, ["billing"]) == []

    assert store.outbox.send_unsent_now() == 2
    assert {d.id for d in store.outbox.due(10, ["billing"])} == {u.decision_id for u in unsent}
    assert len(store.labels.due(10, ["billing"])) == 2, "their labels go with them"
    with pytest.raises(UndoRefused):
        store.outbox.undo(held.id, "alice")
    assert store.outbox.send_unsent_now() == 0, "nothing left waiting for its time"
