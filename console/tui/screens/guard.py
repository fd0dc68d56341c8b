"""Dialogs that keep the operator's keys safe: a refused action, and deciding an item someone else holds.

A refused `e` or `r` leaves an operator typing what they meant for the editor or the comment. Those keys must not
land on the queue, where `a` approves and `o` re-sorts, so the refusal is a dialog that takes every key and closes
only on `esc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from console.tui.keymap import hint
from widgets.safe_text import literal

_CENTRED = "{name} { align: center middle; background: $background 60%; #refused-reason { width: 100%; } }"


class RefusedScreen(ModalScreen[None]):
    """Says why an action was refused; every key but `esc` is swallowed, so nothing typed next runs as a command."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    DEFAULT_CSS = _CENTRED.replace("{name}", "RefusedScreen")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back to the queue", id="back")]

    def __init__(self, title: str, reason: str) -> None:
        super().__init__()
        self._title = title
        self._reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="refused"):
            yield Label(Text(self._title, style="bold"), id="dialog-title")
            yield Label(literal(self._reason), id="refused-reason")
            yield Label("Nothing was recorded. Keys typed here are ignored.", classes="hint")
            yield Label(hint(self.app, "{back} back to the queue"), classes="hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmHolderScreen(ModalScreen[bool]):
    """Deciding an item another operator has claimed: `y` decides anyway, `n` or `esc` leaves it to them."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    DEFAULT_CSS = _CENTRED.replace("{name}", "ConfirmHolderScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Decide anyway", id="decide_anyway"),
        Binding("n,escape", "answer(False)", "Leave it", id="leave_it"),
    ]

    def __init__(self, holder: str, verb: str, what: str) -> None:
        super().__init__()
        self._holder = holder
        self._verb = verb
        self._what = what

    @property
    def holder(self) -> str:
        return self._holder

    def compose(self) -> ComposeResult:
        holder = literal(self._holder, multiline=False)
        with Vertical(id="dialog"):
            yield Label(Text.assemble(("⚑ ", "bold"), holder, (" holds this item", "bold")), id="dialog-title")
            yield Label(
                Text.assemble(
                    holder,
                    " claimed ",
                    literal(self._what, multiline=False),
                    " and may be deciding it now. ",
                    (f"{self._verb} it anyway?", "bold"),
                )
            )
            keys = hint(self.app, "{decide_anyway} yes, decide it · {leave_it} no, leave it to them")
            yield Label(keys, classes="hint", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
