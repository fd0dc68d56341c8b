"""Edit: the arguments (or an escalation's output) as JSON; invalid JSON or a schema violation cannot be submitted.

A valid edit is not sent at once: the screen first shows what changed (the key paths, and a diff of proposed against
edited), and only a second confirmation submits it, so the operator approves exactly the change they meant.

The schema check runs in `engine.schema_check`'s worker process (off the event loop, under a time bound): the schema
is the agent's, and a hostile one must not freeze or crash the console. A schema that cannot check anything refuses the
edit and says why; approve and reject stay available. Numbers must be exact as doubles (PROTOCOL.md R7): the edit's
digest is computed over them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea
from textual.widgets.text_area import Location

from console.engine import schema_check
from console.tui.keymap import hint
from storage.json_diff import unique_members
from storage.records import Item, canonical_json
from widgets.diff_view import DiffView
from widgets.safe_text import literal

# Characters that would reorder or hide text in the editor; as JSON escapes they are visible and the value is unchanged.
_INVISIBLE = {
    c: f"\\u{c:04x}"
    for c in [*range(0x80, 0xA0), 0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
_NO_VALUE = object()
_LOAD_LATER = 64 * 1024  # characters of JSON above which the editor gets its text after its first layout


def json_for_editing(value: Any) -> str:
    """Pretty JSON with control and bidirectional characters written as escapes (JSON already escapes C0)."""
    return json.dumps(value, indent=2, ensure_ascii=False).translate(_INVISIBLE)


class _Refused(Exception):
    """The edited JSON parses but holds something the decision cannot carry; the message says what."""


_EXACT_INT = 2**53 - 1  # R7: beyond this an integer is not exact as a double, so its digest would not be RFC 8785's
_SHOWN_NUMBER = 40  # characters of an offending number quoted back


def _exact_int(text: str) -> int:
    # The length test first: int() of a huge digit string is slow, and past 4,300 digits it raises.
    if len(text.lstrip("-")) > len(str(_EXACT_INT)) or abs(int(text)) > _EXACT_INT:
        raise _Refused(
            f"The integer {_clip(text)} is beyond ±(2^53−1), so a JSON number cannot carry it exactly: "
            "write it as a string, or a smaller number."
        )
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"The number {_clip(text)} is too large for a JSON number (it overflows to infinity).")
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number: use a number, or a string.")


_unique_members = unique_members(
    lambda name: _Refused(f"Duplicate member name {_clip(name)!r}: each name may appear once in an object.")
)


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN_NUMBER else text[: _SHOWN_NUMBER - 1] + "…"


def parse_edit(text: str) -> tuple[Any, str | None]:
    """Parse edited JSON into a value a decision can carry. Returns (value, None) or (_, what is wrong and where)."""
    try:
        value = json.loads(
            text,
            parse_int=_exact_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_members,
        )
    except json.JSONDecodeError as exc:
        return _NO_VALUE, f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except _Refused as exc:
        return _NO_VALUE, str(exc)
    except RecursionError:
        return _NO_VALUE, "The JSON is nested too deeply to use."
    try:
        canonical_json(value)  # the edit's digest is computed over this: whatever it cannot take is refused here
    except (ValueError, TypeError, RecursionError) as exc:
        return _NO_VALUE, f"This value cannot be sent: {exc}"
    return value, None


def check_edit(text: str, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """Parse and check edited JSON in this thread (no time bound: for callers off the event loop, such as tests).

    Returns (value, None) or (_, an error that says where)."""
    value, error = parse_edit(text)
    if error is not None or schema is None:
        return value, error
    result = schema_check.check(value, schema)
    return (value, None) if result.outcome is schema_check.Outcome.valid else (_NO_VALUE, result.message)


class _JsonEditor(TextArea):
    """The editor. Textual re-wraps the whole text whenever the vertical scrollbar appears, even when the width it
    wraps at is unchanged (the gutter is kept stable in modals.tcss): on a large item that is a visible pause."""

    def _watch_show_vertical_scrollbar(self) -> None:
        if self.wrap_width != self.wrapped_document._width:
            super()._watch_show_vertical_scrollbar()
        else:
            self.scroll_cursor_visible()

    def find_matching_bracket(self, bracket: str, search_from: Location) -> Location | None:
        # Textual looks for the match on every cursor move, even with matching off: from the outer brace of a large
        # text that is a scan of the whole text.
        return super().find_matching_bracket(bracket, search_from) if self.match_cursor_bracket else None


class DiscardEditScreen(ModalScreen[bool]):
    """`esc` in the editor with unsaved changes asks first; True discards them."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "discard", "Discard the edit", id="discard"),
        Binding("n", "keep", "Keep editing", id="keep"),
        Binding("escape", "keep", "Keep editing", id="keep"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text("Discard your changes?", style="bold"), id="dialog-title")
            yield Label("The edit was not submitted; nothing was recorded or sent.")
            yield Label(
                hint(self.app, "{discard} discard the edit · {keep:or} keep editing"), classes="hint", markup=False
            )

    def action_discard(self) -> None:
        self.dismiss(True)

    def action_keep(self) -> None:
        self.dismiss(False)


class EditScreen(ModalScreen[Any]):
    """Returns the edited value, or `EditScreen.CANCELLED`."""

    CANCELLED = _NO_VALUE
    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        # f2 as well: terminals with flow control on swallow ctrl+s
        Binding("ctrl+s,f2", "submit", "Review / submit", priority=True, id="edit_submit"),
        Binding("enter", "confirm", "Submit", show=False, id="confirm"),
        # priority: before the editor, which keeps escape
        Binding("escape", "cancel", "Back / cancel", priority=True, id="cancel"),
    ]
    # Templates of the hints: {binding id} is its keys in force (console.tui.keymap.hint)
    _EDIT_HINT = "{edit_submit:or} review the change · {cancel} cancel"
    _REVIEW_HINT = "Review the change. {confirm:or} or {edit_submit:1} submit · {cancel} back to editing"
    CHECKING = "Checking the edit against the item's schema…"

    def __init__(self, item: Item) -> None:
        super().__init__()
        self._item = item
        self._schema = item.args_schema
        self._original = json_for_editing(item.editable_value)
        self._reviewed: Any = _NO_VALUE  # the value shown in the diff, waiting for the second confirmation
        self._checking: str | None = None  # the text whose schema check is under way
        self._load_later = len(self._original) > _LOAD_LATER
        self._loaded = not self._load_later

    def compose(self) -> ComposeResult:
        what = "output" if self._item.kind == "escalation" else "arguments"
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text.assemble((f"Edit {what} of  ", "bold"), literal(self._item.headline)), id="dialog-title")
            schema_note = "checked against the item's JSON Schema" if self._schema else "no schema: any valid JSON"
            yield Label(f"JSON, {schema_note}.", classes="hint")
            # A large text waits until the editor has its size: every width change re-wraps the whole text, and it
            # would be wrapped once per layout pass while the screen opens (seconds for a few hundred KB).
            yield _JsonEditor(
                "" if self._load_later else self._original,
                language="json",
                id="editor",
                show_line_numbers=True,
                tab_behavior="indent",
            )
            with VerticalScroll(id="edit-review", can_focus=True):
                yield DiffView(id="edit-diff")
            yield Static("", id="edit-error")
            yield Label(hint(self.app, self._EDIT_HINT), id="edit-hint", classes="hint", markup=False)

    def on_mount(self) -> None:
        self.query_one("#edit-review").display = False
        self.query_one("#editor", TextArea).focus()
        if self._load_later:
            self.call_after_refresh(self._load)
        if self._schema is not None:
            self.run_worker(schema_check.warm_up(), group="schema-warm-up")

    def _load(self) -> None:
        editor = self.query_one("#editor", TextArea)
        editor.match_cursor_bracket = False
        editor.load_text(self._original)
        self._loaded = True

    @property
    def changed(self) -> bool:
        """The editor holds something other than what it opened with."""
        return self._loaded and self.query_one("#editor", TextArea).text != self._original

    def on_text_area_changed(self) -> None:
        self.query_one("#edit-error", Static).update("")

    @property
    def reviewing(self) -> bool:
        return self._reviewed is not _NO_VALUE

    @property
    def checking(self) -> bool:
        """A schema check of the edit is under way."""
        return self._checking is not None

    def action_submit(self) -> None:
        if self.reviewing:
            self.action_confirm()
            return
        text = self.query_one("#editor", TextArea).text
        if self._checking == text:
            return  # this very text is being checked; its answer will show
        value, error = parse_edit(text)
        if error is not None:
            self._error(error)
            return
        if value == self._item.editable_value:
            self._error("Nothing changed: approve instead, or change something.")
            return
        if self._schema is None:
            self._review(value)
            return
        self._checking = text
        self.query_one("#edit-error", Static).update(Text(self.CHECKING))
        self.run_worker(self._check(text, value, self._schema), group="schema-check", exclusive=True)

    async def _check(self, text: str, value: Any, schema: dict[str, Any]) -> None:
        try:
            result = await schema_check.check_bounded(value, schema)
        finally:
            if self._checking == text:
                self._checking = None
        if not self.is_attached or self.reviewing or self.query_one("#editor", TextArea).text != text:
            return  # the editor closed, or its text changed meanwhile: this answer is about a text that is gone
        if result.outcome is schema_check.Outcome.valid:
            self._review(value)
        elif result.outcome is schema_check.Outcome.unusable:
            self._error(f"{result.message}. Approve or reject the item as it is instead.")
        else:
            self._error(result.message)

    def _error(self, message: str) -> None:
        self.query_one("#edit-error", Static).update(literal(message))

    def _review(self, value: Any) -> None:
        self._reviewed = value
        self.query_one("#edit-error", Static).update("")
        self.query_one("#edit-diff", DiffView).show(self._item.editable_value, value)
        self.query_one("#editor").display = False
        review = self.query_one("#edit-review")
        review.display = True
        review.focus()
        self.query_one("#edit-hint", Label).update(hint(self.app, self._REVIEW_HINT))

    def action_confirm(self) -> None:
        if self.reviewing:
            self.dismiss(self._reviewed)

    def action_cancel(self) -> None:
        if self.reviewing:
            self._reviewed = _NO_VALUE
            self.query_one("#edit-review").display = False
            editor = self.query_one("#editor", TextArea)
            editor.display = True
            editor.focus()
            self.query_one("#edit-hint", Label).update(hint(self.app, self._EDIT_HINT))
            return
        if not self.changed:
            self.dismiss(_NO_VALUE)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(_NO_VALUE)

        self.app.push_screen(DiscardEditScreen(), answered)
