"""Edit: the arguments (or an escalation's output) as JSON; invalid JSON or a schema violation cannot be submitted.

A valid edit is not sent at once: the screen first shows what changed (the key paths, and a diff of proposed against
edited), and only a second confirmation submits it, so the operator approves exactly the change they meant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea

from storage.records import Item
from widgets.diff_view import DiffView
from widgets.safe_text import literal

# Characters that would reorder or hide text in the editor; as JSON escapes they are visible and the value is unchanged.
_INVISIBLE = {
    c: f"\\u{c:04x}"
    for c in [*range(0x80, 0xA0), 0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
_NO_VALUE = object()


def json_for_editing(value: Any) -> str:
    """Pretty JSON with control and bidirectional characters written as escapes (JSON already escapes C0)."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_INVISIBLE)


def check_edit(text: str, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """Parse and validate edited JSON. Returns (value, None) or (_, an error that says where)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return _NO_VALUE, f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if schema is None:
        return value, None
    try:
        validator = Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:
        return _NO_VALUE, f"The item's schema is itself invalid, so no edit can be checked: {exc.message}"
    if not errors:
        return value, None
    first = errors[0]
    where = "/" + "/".join(str(p) for p in first.absolute_path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return _NO_VALUE, f"Schema violation at {where}: {first.message}{more}"


class EditScreen(ModalScreen[Any]):
    """Returns the edited value, or `EditScreen.CANCELLED`."""

    CANCELLED = _NO_VALUE
    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Review / submit", priority=True),
        Binding("enter", "confirm", "Submit", show=False),
        Binding("escape", "cancel", "Back / cancel", priority=True),  # before the editor, which keeps escape
    ]
    _EDIT_HINT = "ctrl+s review the change · esc cancel"
    _REVIEW_HINT = "Review the change. enter or ctrl+s submit · esc back to editing"

    def __init__(self, item: Item) -> None:
        super().__init__()
        self._item = item
        self._schema = item.args_schema
        self._reviewed: Any = _NO_VALUE  # the value shown in the diff, waiting for the second confirmation

    def compose(self) -> ComposeResult:
        what = "output" if self._item.kind == "escalation" else "arguments"
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text.assemble((f"Edit {what} of  ", "bold"), literal(self._item.headline)), id="dialog-title")
            schema_note = "checked against the item's JSON Schema" if self._schema else "no schema: any valid JSON"
            yield Label(f"JSON, {schema_note}.", classes="hint")
            yield TextArea(
                json_for_editing(self._item.editable_value),
                language="json",
                id="editor",
                show_line_numbers=True,
                tab_behavior="indent",
            )
            with VerticalScroll(id="edit-review", can_focus=True):
                yield DiffView(id="edit-diff")
            yield Static("", id="edit-error")
            yield Label(self._EDIT_HINT, id="edit-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#edit-review").display = False
        self.query_one("#editor", TextArea).focus()

    def on_text_area_changed(self) -> None:
        self.query_one("#edit-error", Static).update("")

    @property
    def reviewing(self) -> bool:
        return self._reviewed is not _NO_VALUE

    def action_submit(self) -> None:
        if self.reviewing:
            self.action_confirm()
            return
        value, error = check_edit(self.query_one("#editor", TextArea).text, self._schema)
        if error is not None:
            self.query_one("#edit-error", Static).update(literal(error))
            return
        if value == self._item.editable_value:
            self.query_one("#edit-error", Static).update(Text("Nothing changed: approve instead, or change something."))
            return
        self._review(value)

    def _review(self, value: Any) -> None:
        self._reviewed = value
        self.query_one("#edit-diff", DiffView).show(self._item.editable_value, value)
        self.query_one("#editor").display = False
        review = self.query_one("#edit-review")
        review.display = True
        review.focus()
        self.query_one("#edit-hint", Label).update(self._REVIEW_HINT)

    def action_confirm(self) -> None:
        if self.reviewing:
            self.dismiss(self._reviewed)

    def action_cancel(self) -> None:
        if not self.reviewing:
            self.dismiss(_NO_VALUE)
            return
        self._reviewed = _NO_VALUE
        self.query_one("#edit-review").display = False
        editor = self.query_one("#editor", TextArea)
        editor.display = True
        editor.focus()
        self.query_one("#edit-hint", Label).update(self._EDIT_HINT)
