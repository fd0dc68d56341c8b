"""`?`: every key the console answers to, read from the bindings themselves and the keymap in force ([keymap] in the
config), so the list cannot drift from the code or the config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

from console.tui.keymap import hint, key_label, keys_text
from storage.queue import FILTER_FIELDS

# Keys handled inside the dialogs (not bindings of the main screen): what each dialog answers to. {id}: the keys in
# force for that binding id.
DIALOG_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Reject", "1-9", "pick a reason code and move to the comment"),
    ("Reject", "tab / {reject_submit}", "move to the comment / reject with the reason and comment"),
    ("Edit", "{edit_submit}", "check the JSON and review the change as a diff"),
    ("Edit", "{confirm} / {edit_submit}", "on the diff: submit the edit"),
    ("Edit", "{cancel}", "on the diff: back to editing; in the editor: cancel"),
    ("Critical", "type the word, enter", "confirm approving a critical-risk item"),
    (
        "Approve marked",
        "{bulk_confirm}, {bulk_cancel}",
        "approve the marked items it counts (skipped ones are listed) / cancel",
    ),
    ("Filter", "enter / {clear_filter:1}", "keep the filter and go back to the queue / clear the filter"),
    (
        "Filter",
        "{filter_older:arrow} / {filter_newer:arrow}",
        "the filters kept (with enter), newest first / back to what you typed",
    ),
    ("Someone else holds it", "{decide_anyway} / {leave_it}", "decide it anyway / leave it to them"),
    ("Refused", "{back}", "back to the queue; every other key is ignored, so nothing typed runs as a command"),
    ("Any dialog", "{cancel}", "cancel; nothing is recorded"),
)


def _key_name(binding: Binding, keymap: Mapping[str, str]) -> str:
    keys = keymap.get(binding.id or "") or binding.key
    return " / ".join(key_label(key.strip()) for key in keys.split(","))


def keys_table(sections: Iterable[tuple[str, Iterable[BindingType]]], keymap: Mapping[str, str] | None = None) -> Group:
    """A table per section of (key, what it does), from bindings with a description, plus the dialog keys; each
    action's keys as `keymap` (binding id -> "k1,k2") has them, else its binding's."""
    keymap = keymap or {}
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
                if _key_name(binding, keymap) not in keys:
                    keys.append(_key_name(binding, keymap))
        for action, (keys, description) in rows.items():
            shown = f"{keys[0]}-{keys[-1]}" if action == "switch_view" and len(keys) > 2 else " / ".join(keys)
            table.add_row(shown, description)
        parts += [table, Text("")]
    dialogs = Table(title="In dialogs", title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    dialogs.add_column(style="bold", no_wrap=True)
    dialogs.add_column(style="bold", no_wrap=True)
    dialogs.add_column()
    for dialog, dialog_keys, what in DIALOG_KEYS:
        dialogs.add_row(dialog, keys_text(dialog_keys, keymap), what)
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
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="close"),
        Binding("question_mark", "close", "Close", show=False, id="help"),
    ]

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self._sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text("Keys", style="bold"), id="dialog-title")
            with VerticalScroll(id="help"):
                yield Static(keys_table(self._sections, getattr(self.app, "keys_in_force", None)))
            palette = f"{key_label(self.app.COMMAND_PALETTE_BINDING)} finds any action by name"
            keys = f"{hint(self.app, '{close:1} close')} · {palette} · the mouse works too"
            yield Label(keys, classes="hint", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
