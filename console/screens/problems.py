"""Problems: decisions that ended in a conflict or failure, and items quarantined as malformed, with their reasons."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from storage.records import DecisionRow, Quarantined
from widgets.safe_text import literal


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def problem_lines(conflicts: list[DecisionRow], quarantined: list[Quarantined]) -> Group:
    lines: list[Text] = []
    lines.append(Text(f"Decisions not applied ({len(conflicts)})", style="bold"))
    if not conflicts:
        lines.append(Text("  none", style="dim"))
    for row in conflicts:
        decision = row.decision
        lines.append(
            Text.assemble(
                "  ",
                (f"{decision.verdict.value:<7} ", "bold"),
                literal(f"{row.item_action} ({row.item_agent}, {decision.source}/{decision.item_id})", multiline=False),
            )
        )
        lines.append(Text.assemble("    ", literal(f"{row.outcome}: {row.detail}", multiline=False)))
    lines.append(Text(""))
    lines.append(Text(f"Malformed items quarantined ({len(quarantined)})", style="bold"))
    if not quarantined:
        lines.append(Text("  none", style="dim"))
    for entry in quarantined:
        lines.append(
            Text.assemble(
                "  ", (_when(entry.seen_at) + " ", "dim"), literal(f"{entry.source}/{entry.item_id}", multiline=False)
            )
        )
        lines.append(Text.assemble("    reason: ", literal(entry.reason, multiline=False)))
        lines.append(Text.assemble("    payload: ", literal(entry.excerpt[:200], multiline=False), style="dim"))
    return Group(*lines)


class ProblemsScreen(ModalScreen[None]):
    """Opening it counts as seeing the conflicts listed: the status bar stops counting them."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,p,q", "close", "Close")]

    def __init__(self, conflicts: list[DecisionRow], quarantined: list[Quarantined]) -> None:
        super().__init__()
        self._conflicts = conflicts
        self._quarantined = quarantined

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text("Problems", style="bold"), id="dialog-title")
            with VerticalScroll(id="problems"):
                yield Static(problem_lines(self._conflicts, self._quarantined))
            yield Label("esc close", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
