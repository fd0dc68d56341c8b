"""Reject: a reason code from a short list (a digit picks one) and an optional comment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from console.tui.keymap import hint
from widgets.safe_text import literal


@dataclass(frozen=True)
class Rejection:
    reason_code: str
    comment: str


class RejectScreen(ModalScreen[Rejection | None]):
    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("enter", "submit", "Reject", priority=True, id="reject_submit"),
    ]

    def __init__(self, title: str, reasons: tuple[str, ...]) -> None:
        super().__init__()
        self._title = title
        self._reasons = reasons

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text.assemble(("Reject  ", "bold"), literal(self._title)), id="dialog-title")
            yield Label("Reason (a digit picks one):", classes="hint")
            options = [Option(Text(f"{i}  {code}"), id=code) for i, code in enumerate(self._reasons, start=1)]
            yield OptionList(*options, id="reasons")
            yield Input(placeholder="Comment (optional)", id="comment")
            yield Label("", id="reject-error")
            keys = hint(self.app, "{reject_submit} reject · {cancel} cancel · tab comment")
            yield Label(keys, classes="hint", markup=False)

    def on_mount(self) -> None:
        # Nothing is preselected (an OptionList highlights its first option when built): a lazy `enter` must not
        # become a false reason in the labels.
        reasons = self.query_one("#reasons", OptionList)
        reasons.highlighted = None
        reasons.focus()

    def on_key(self, event: events.Key) -> None:
        character = event.character
        if self.query_one("#comment", Input).has_focus or not character or not character.isdigit():
            return
        index = int(character) - 1
        if 0 <= index < len(self._reasons):
            self.query_one("#reasons", OptionList).highlighted = index
            self.query_one("#comment", Input).focus()
            event.stop()

    @on(OptionList.OptionSelected, "#reasons")
    def _reason_chosen(self) -> None:
        self.query_one("#comment", Input).focus()

    def action_submit(self) -> None:
        index = self.query_one("#reasons", OptionList).highlighted
        if index is None:
            # Said inside the dialog, where the operator is looking (a toast would cover the dialog).
            self.query_one("#reject-error", Label).update("Pick a reason first: a digit, or the arrows.")
            self.query_one("#reasons", OptionList).focus()
            self.app.bell()
            return
        comment = self.query_one("#comment", Input).value.strip()
        self.dismiss(Rejection(self._reasons[index], comment))

    def action_cancel(self) -> None:
        self.dismiss(None)
