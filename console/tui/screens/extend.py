"""More time for an item (PROTOCOL.md section 10): how much, from the choices the source's allowance leaves."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from console.tui.keymap import hint
from widgets.badges import format_left
from widgets.safe_text import literal

PRESETS = (300, 900, 1800, 3600, 7200)  # seconds: 5 m, 15 m, 30 m, 1 h, 2 h


def extension_choices(allowed: int) -> list[int]:
    """The presets the allowance covers, and the whole allowance when it is not one of them (at most 9: digits)."""
    choices = [seconds for seconds in PRESETS if seconds <= allowed]
    if allowed > 0 and allowed not in choices:
        choices.append(allowed)
    return choices[:9]


def _spoken(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{rest} s" if rest else ""]
    return " ".join(part for part in parts if part)


class ExtendScreen(ModalScreen[int | None]):
    """Returns the seconds chosen, or None when cancelled."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("enter", "submit", "Extend", priority=True, id="extend_submit"),
    ]

    def __init__(self, title: str, left: float, allowed: int) -> None:
        """`left`: seconds to the deadline now; `allowed`: how many more the source allows."""
        super().__init__()
        self._title = title
        self._left = left
        self._choices = extension_choices(allowed)
        self._allowed = allowed

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text.assemble(("More time  ", "bold"), literal(self._title)), id="dialog-title")
            yield Label(
                f"{format_left(self._left)} left now; the source allows up to {_spoken(self._allowed)} more.",
                classes="hint",
            )
            yield Label("Move the deadline later by (a digit picks one):", classes="hint")
            options = [Option(Text(f"{i}  {_spoken(s)}"), id=str(s)) for i, s in enumerate(self._choices, start=1)]
            yield OptionList(*options, id="extensions")
            yield Label(hint(self.app, "{extend_submit} extend · {cancel} cancel"), classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#extensions", OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        character = event.character
        if not character or not character.isdigit():
            return
        index = int(character) - 1
        if 0 <= index < len(self._choices):
            event.stop()
            self.dismiss(self._choices[index])

    @on(OptionList.OptionSelected, "#extensions")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._choices[event.option_index])

    def action_submit(self) -> None:
        index = self.query_one("#extensions", OptionList).highlighted
        self.dismiss(self._choices[index] if index is not None else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
