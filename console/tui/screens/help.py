"""`?`: every key the console answers to, read from the bindings themselves so the list cannot drift from the code."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from storage.queue import FILTER_FIELDS

# Keys handled inside the dialogs (not bindings of the main screen): what each dialog answers to.
DIALOG_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Reject", "1-9", "pick a reason code and move to the comment"),
    ("Reject", "tab / enter", "move to the comment / reject with the reason and comment"),
    ("Edit", "ctrl+s", "check the JSON and review the change as a diff"),
    ("Edit", "enter / ctrl+s", "on the diff: submit the edit"),
    ("Edit", "esc", "on the diff: back to editing; in the editor: cancel"),
    ("Critical", "type the word, enter", "confirm approving a critical-risk item"),
    ("Filter", "enter / esc", "keep the filter and go back to the queue / clear the filter"),
    ("Filter", "↑ / ↓", "the filters kept (with enter), newest first / back to what you typed"),
    ("Someone else holds it", "y / n, esc", "decide it anyway / leave it to them"),
    ("Refused", "esc", "back to the queue; every other key is ignored, so nothing typed runs as a command"),
    ("Any dialog", "esc", "cancel; nothing is recorded"),
)


def _key_name(binding: Binding) -> str:
    names = {"question_mark": "?", "slash": "/"}
    return " / ".join(names.get(k.strip(), k.strip()) for k in binding.key.split(","))


def keys_table(sections: Iterable[tuple[str, Iterable[BindingType]]]) -> Group:
    """A table per section of (key, what it does), from bindings with a description, plus the dialog keys."""
    parts: list[Table | Text] = []
    for title, bindings in sections:
        table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        # One row per action: its keys together, described as its first binding says.
        rows: dict[str, tuple[list[str], str]] = {}
        for binding in bindings:
            if isinstance(binding, Binding) and binding.description:
                action, description = binding.action, binding.description
                if action.startswith("switch_view("):  # one row for the nine view keys
                    action = "switch_view"
                keys, _ = rows.setdefault(action, ([], description))
                if _key_name(binding) not in keys:
                    keys.append(_key_name(binding))
        for action, (keys, description) in rows.items():
            shown = f"{keys[0]}-{keys[-1]}" if action == "switch_view" and len(keys) > 2 else " / ".join(keys)
            table.add_row(shown, description)
        parts += [table, Text("")]
    dialogs = Table(title="In dialogs", title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    dialogs.add_column(style="bold", no_wrap=True)
    dialogs.add_column(style="bold", no_wrap=True)
    dialogs.add_column()
    for row in DIALOG_KEYS:
        dialogs.add_row(*row)
    fields = ", ".join(f"{name}:" for name in FILTER_FIELDS)
    parts += [
        dialogs,
        Text(""),
        Text.assemble(
            ("Filter syntax  ", "bold"),
            f"words match anywhere, -word leaves out what has it; {fields} narrow one field, field:a,b takes either,"
            " -field:x leaves out; kind: takes the KIND column's APPR / ESC;"
            ' e.g. agent:billing,crm -risk:low "two words"',
        ),
    ]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self._sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text("Keys", style="bold"), id="dialog-title")
            with VerticalScroll(id="help"):
                yield Static(keys_table(self._sections))
            yield Label("esc close · ctrl+p finds any action by name · the mouse works too", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
