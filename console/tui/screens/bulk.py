"""Confirming a bulk decision: how many marked items will be decided, and which are skipped and why."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.engine.marks import BulkPlan, Skipped
from console.tui.keymap import hint
from widgets.safe_text import literal, one_line

SKIPPED_LISTED = 8  # skipped items named in the dialog; the rest are counted
_CENTRED = """
BulkConfirmScreen { align: center middle; background: $background 60%; }
BulkConfirmScreen #dialog { width: 86; }
BulkConfirmScreen Static { width: 100%; height: auto; }
"""


def items_word(count: int) -> str:
    return f"{count:,} item{'s' if count != 1 else ''}"


def skipped_lines(skipped: Sequence[Skipped], listed: int = SKIPPED_LISTED, width: int = 160) -> list[str]:
    """One cleaned line per skipped item (`name (source/id): why`), the first `listed`, then how many more."""
    lines = [one_line(f"{s.headline} ({s.key[0]}/{s.key[1]}): {s.why}", width) for s in skipped[:listed]]
    if len(skipped) > listed:
        lines.append(f"… and {len(skipped) - listed:,} more")
    return lines


class BulkConfirmScreen(ModalScreen[bool]):
    """`enter` or `y` decides the planned items, each on its own; `esc` or `n` records nothing."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    DEFAULT_CSS = _CENTRED
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,y", "confirm", "Confirm", id="bulk_confirm"),
        Binding("escape,n", "cancel", "Cancel", id="bulk_cancel"),
    ]

    def __init__(self, plan: BulkPlan, verb: str = "Approve") -> None:
        super().__init__()
        self._plan = plan
        self._verb = verb

    def compose(self) -> ComposeResult:
        plan = self._plan
        count = len(plan.decide)
        with Vertical(id="dialog"):
            yield Label(Text(f"{self._verb} {items_word(count)} marked", style="bold"), id="dialog-title")
            yield Static("Each is recorded as its own decision, on the version you marked.", classes="hint")
            yield Label("")
            if plan.skipped:
                yield Label(Text(f"Skipped, left as they are: {items_word(len(plan.skipped))}", style="bold"))
                for line in skipped_lines(plan.skipped):
                    yield Static(literal(f"• {line}", multiline=False))
            else:
                yield Static("Nothing skipped.")
            yield Label("")
            confirm, cancel = hint(self.app, "{bulk_confirm}"), hint(self.app, "{bulk_cancel}")
            yield Label(f"{confirm} {self._verb.lower()} {count:,} · {cancel} cancel", classes="hint", markup=False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
