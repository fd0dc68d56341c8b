"""Every hint names the keys in force: with [keymap] rebinding an action, the dialogs, bars and screens that say which
key does what name the new key and not the built-in one. Built-in keys leave every text as before (the snapshots)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Static

from console.engine.config import parse
from console.engine.keymap_table import KeymapConfig
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.keymap import keys_text, rebound, resolve
from console.tui.screens.bulk import BulkConfirmScreen
from console.tui.screens.edit import EditScreen
from console.tui.screens.empty_queue import explain_empty
from console.tui.screens.extend import ExtendScreen
from console.tui.screens.first_run import FirstRunApp
from console.tui.screens.guard import ConfirmHolderScreen, RefusedScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.history import HistoryScreen
from console.tui.screens.quit import QuitScreen
from storage.records import SourceHealth
from tests.conftest import decide_key, eventually, first_shown, make_config, screen_text

SIZE = (140, 40)
REBOUND = (
    ("approve", ("w",)),  # approve_marked and accept follow it
    ("acknowledge", ("K",)),
    ("decide_anyway", ("Y",)),
    ("edit_submit", ("f3",)),
    ("cancel", ("escape", "f10")),
    ("reject_submit", ("f4",)),
    ("extend_submit", ("f5",)),
    ("back", ("f6",)),
    ("bulk_confirm", ("W",)),
    ("toggle_problems", ("P",)),
    ("send", ("S",)),
    ("quit_anyway", ("Q",)),
)


@pytest.fixture
def rebound_session(fleet: Fleet, data_dir: Path) -> Callable[..., Session]:
    def build(undo_seconds: float = 0.0) -> Session:
        config = replace(make_config(fleet, undo_seconds=undo_seconds), keymap=KeymapConfig(keys=REBOUND))
        return Session(config, data_dir, token_for=lambda _name: None)

    return build


def test_a_hint_template_names_each_actions_keys_in_force() -> None:
    template = "{leave_it} no · {edit_submit:or} review · {close:1} close · {history_next:arrow} next"
    assert keys_text(template, {}) == "n / esc no · ctrl+s or f2 review · esc close · ↓ next"
    keymap = {"leave_it": "N", "edit_submit": "f3,f4", "close": "x,escape", "history_next": "j"}
    assert keys_text(template, keymap) == "N no · f3 or f4 review · x close · j next"
    with pytest.raises(KeyError, match="no_such_action"):
        keys_text("{no_such_action} does nothing", {})


def test_the_empty_queue_advice_names_the_filter_keys_in_force() -> None:
    up = SourceHealth(name="prod", state="up", last_poll_at=1.0)
    keymap = {"filter": "F", "clear_filter": "backspace", "view_1": "f1", "view_9": "f9"}
    hidden = explain_empty([up], "deploy", lambda: 3, keymap=keymap).text
    assert "Press backspace to clear the filter, or F to change it." in hidden
    in_view = explain_empty([up], "claimed:alice", lambda: 3, view="Mine", keymap=keymap).text
    assert "Press f1 to f9 for another view" in in_view and "1 to 9" not in in_view


def _hint_text(app: ApprovalApp) -> str:
    return "\n".join(str(label.render()) for label in app.screen.query(".hint"))


async def _dialog_names(
    app: ApprovalApp, pilot: Pilot[Any], opening: str | Screen[Any], says: str, before: str, closing: str
) -> None:
    """Opens a dialog (a key pressed on the queue, or the dialog pushed), checks that its hint says `says` and no
    longer `before`, and closes it on the key the hint names."""
    if isinstance(opening, str):
        await pilot.press(opening)
    else:
        app.push_screen(opening)
    await eventually(lambda: app.screen is not app.main and bool(_hint_text(app)), what=f"the dialog for {says!r}")
    assert says in _hint_text(app) and before not in _hint_text(app)
    await pilot.press(closing)
    await eventually(lambda: app.screen is app.main, what=f"the dialog closed on {closing}")


async def test_dialogs_and_the_queue_bar_name_the_rebound_keys(rebound_session: Callable[..., Session]) -> None:
    session = rebound_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)

        # (how it opens, what its hint says, what it said before the rebinding, the key named that closes it)
        dialogs: list[tuple[str | Screen[Any], str, str, str]] = [
            ("p", "K acknowledge · A acknowledge all · esc close", "a acknowledge", "escape"),
            (
                ConfirmHolderScreen("bob", "Approve", "it"),
                "Y yes, decide it · n / esc no, leave it to them",
                "y yes",
                "Y",
            ),
            (EditScreen(top), "f3 review the change · esc / f10 cancel", "ctrl+s", "f10"),
            (ExtendScreen("a title", left=600.0, allowed=3600), "f5 extend · esc / f10 cancel", "enter", "f10"),
            (RefusedScreen("Approve: not possible now", "a reason"), "f6 back to the queue", "esc back", "f6"),
            ("r", "f4 reject · esc / f10 cancel · tab comment", "enter", "f10"),
        ]
        for opening, says, before, closing in dialogs:
            await _dialog_names(app, pilot, opening, says, before, closing)

        await pilot.press("asterisk")  # all six: the critical ones are skipped, the others approved together
        await eventually(lambda: "6 marked" in screen_text(app), what="every item marked")
        assert "(w / r decide the marked · esc unmarks · ? help)" in screen_text(app)
        await pilot.press("w")
        await eventually(lambda: isinstance(app.screen, BulkConfirmScreen), what="the bulk confirmation")
        await pilot.pause()
        keys = _hint_text(app)
        assert "W approve " in keys and "· esc / n cancel" in keys and "enter / y" not in keys
        await pilot.press("n")
        await eventually(lambda: app.screen is app.main, what="the bulk approval cancelled")
        assert session.store.outbox.decisions() == [], "nothing was decided on the way"

        await pilot.press("question_mark")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help")
        await pilot.pause()
        await pilot.pause(0.1)
        printed = Console(width=200, record=True, file=io.StringIO())
        printed.print(app.screen.query_one("#help Static", Static).content)
        dialog = [line for line in printed.export_text().splitlines() if "Approve marked" in line and "cancel" in line]
        assert len(dialog) == 1 and "W, esc / n" in dialog[0] and "enter / y" not in dialog[0]


async def test_history_and_the_quit_dialog_name_the_rebound_keys(rebound_session: Callable[..., Session]) -> None:
    session = rebound_session(undo_seconds=60.0)
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await first_shown(app, pilot)
        await decide_key(pilot, "w")
        await eventually(lambda: len(session.unsent()) == 1, what="the decision, in its undo window")

        await pilot.press("h")
        await eventually(lambda: isinstance(app.screen, HistoryScreen), what="the history")
        await pilot.pause()
        await pilot.pause(0.1)
        head = screen_text(app)
        assert "↑/↓ enter open · ←/→ pages · P problems only" in head and "· f problems" not in head
        await pilot.press("escape")
        await eventually(lambda: app.screen is app.main, what="back on the queue")

        await pilot.press("q")
        await eventually(lambda: isinstance(app.screen, QuitScreen), what="the quit dialog")
        await pilot.pause()
        assert "S send now and wait · Q quit anyway · esc stay" in str(app.screen.query_one("#quit-keys").render())
        await pilot.press("Q")
        await eventually(lambda: app.return_code is not None, what="the app to quit on the key it names")


async def test_the_first_run_screen_takes_the_configs_keymap_and_names_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    config = parse('[keymap]\ndemo = ["o"]\nfirst_run_quit = ["Q", "escape"]\n', path)
    app = FirstRunApp(path, keys_in_force=rebound(resolve(config.keymap, config.path)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        labels = [str(button.label) for button in app.screen.query(Button)]
        assert labels == ["Open the demo fleet (o)", "Quit (Q)"]
        await pilot.press("d")
        await pilot.pause()
        assert app.return_value is None, "d is no longer the demo's key"
        await pilot.press("o")
        await eventually(lambda: app.return_value == "demo", what="o opens the demo fleet")
