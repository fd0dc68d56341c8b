"""Approving a critical-risk item: the operator types a confirmation word (the action's name) before it is recorded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from console.tui.keymap import hint
from storage.records import Item
from widgets.safe_text import literal

# An action name is typed as the confirmation only when it can be typed: short, plain ASCII. Agent-chosen names with
# look-alike or invisible characters would make the confirmation impossible (or trivially mistyped), so those items
# ask for a fixed word instead.
_TYPEABLE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
FALLBACK_WORD = "approve"


def confirmation_word(item: Item) -> str:
    name = item.action_name
    return name if _TYPEABLE.match(name) else FALLBACK_WORD


class ConfirmCriticalScreen(ModalScreen[bool]):
    """Returns True only when the operator typed the confirmation word exactly."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, item: Item, verb: str = "Approve") -> None:
        super().__init__()
        self._item = item
        self._verb = verb
        self._word = confirmation_word(item)

    @property
    def word(self) -> str:
        return self._word

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="critical"):
            yield Label(
                Text.assemble(
                    (" CRITICAL ", "bold reverse"), (f"  {self._verb} ", "bold"), literal(self._item.headline)
                ),
                id="dialog-title",
            )
            yield Label(
                Text.assemble(
                    "by ",
                    literal(self._item.agent, multiline=False),
                    "  ·  on expiry: ",
                    literal(self._item.on_expiry, multiline=False),
                ),
                classes="hint",
            )
            yield Label(Text.assemble("Type ", (self._word, "bold"), " and press enter to confirm:"))
            yield Input(placeholder=self._word, id="confirm-word")
            yield Static("", id="confirm-error")
            yield Label(hint(self.app, "enter confirm · {cancel} cancel"), classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#confirm-word", Input).focus()

    @on(Input.Changed, "#confirm-word")
    def _typing(self) -> None:
        self.query_one("#confirm-error", Static).update("")

    @on(Input.Submitted, "#confirm-word")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self._word:
            self.dismiss(True)
            return
        self.app.bell()
        self.query_one("#confirm-error", Static).update(Text(f"That is not {self._word!r}; nothing was recorded."))

    def action_cancel(self) -> None:
        self.dismiss(False)
