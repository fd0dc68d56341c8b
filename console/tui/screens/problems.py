"""Problems: decisions that ended in a conflict or failure, and items quarantined as malformed, with their reasons.

A problem counts (in the status bar) until the operator acknowledges it with a key: looking is not acknowledging, so
a conflict glimpsed while busy comes back next time. Acknowledged problems stay listed, dimmed, after the others: the
acknowledgement is kept in the database (decisions.seen, quarantine.acknowledged).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from console.engine.session import Session
from console.tui.keymap import hint
from storage.records import DecisionRow, Quarantined
from widgets.safe_text import literal
from widgets.timefmt import zoned_time


def _when(epoch: float, zone: tzinfo | None) -> str:
    return zoned_time(datetime.fromtimestamp(epoch, UTC), zone)


_ACKNOWLEDGED = " (acknowledged)"


def _conflict_text(row: DecisionRow) -> Text:
    decision = row.decision
    text = Text.assemble(
        (f"{decision.verdict.value:<7} ", "bold"),
        literal(f"{row.item_action} ({row.item_agent}, {decision.source}/{decision.item_id})", multiline=False),
        "\n  ",
        literal(f"{row.outcome}: {row.detail}", multiline=False),
    )
    return _dimmed(text) if row.seen else text


def _dimmed(text: Text) -> Text:
    text.append(_ACKNOWLEDGED, "italic")
    text.stylize("dim")
    return text


def _quarantined_text(entry: Quarantined, zone: tzinfo | None) -> Text:
    text = Text.assemble(
        (_when(entry.seen_at, zone) + " ", "dim"),
        literal(f"{entry.source}/{entry.item_id}", multiline=False),
        "\n  reason: ",
        literal(entry.reason, multiline=False),
        "\n  ",
        Text.assemble("payload: ", literal(entry.excerpt[:200], multiline=False), style="dim"),
    )
    return _dimmed(text) if entry.acknowledged else text


class ProblemsScreen(ModalScreen[None]):
    """Conflicts and quarantined items, one per line of a list: `a` acknowledges the highlighted one, `A` all."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="close"),
        Binding("p", "close", "Close", show=False, id="problems"),
        Binding("a", "acknowledge", "Acknowledge", id="acknowledge"),
        Binding("A", "acknowledge_all", "Acknowledge all", id="acknowledge_all"),
    ]

    def __init__(self, session: Session, zone: tzinfo | None = None) -> None:
        super().__init__()
        self._session = session
        self._zone = zone  # times are drawn in it (None: local)
        self._conflicts: list[DecisionRow] = []
        self._quarantined: list[Quarantined] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Label(Text("Problems", style="bold"), id="dialog-title")
            yield OptionList(id="problems")
            keys = "{acknowledge} acknowledge · {acknowledge_all} acknowledge all · {close:1} close"
            yield Label(hint(self.app, keys) + " (problems stay until acknowledged)", classes="hint", markup=False)

    def on_mount(self) -> None:
        self._reload()
        self.query_one("#problems", OptionList).focus()

    def _reload(self) -> None:
        conflicts, quarantined = self._session.problems()
        # Those still waiting first, acknowledged ones after them (each group newest first: sorted() keeps the order).
        self._conflicts = sorted(conflicts, key=lambda row: row.seen)
        self._quarantined = sorted(quarantined, key=lambda entry: entry.acknowledged)
        listing = self.query_one("#problems", OptionList)
        kept = listing.highlighted
        waiting = sum(not row.seen for row in self._conflicts)
        options: list[Option] = [Option(Text(f"Decisions not applied ({waiting} new)", "bold"), disabled=True)]
        options += [Option(_conflict_text(row), id=f"d{n}") for n, row in enumerate(self._conflicts)]
        if not self._conflicts:
            options.append(Option(Text("  none", "dim"), disabled=True))
        waiting = sum(not entry.acknowledged for entry in self._quarantined)
        options.append(Option(Text(f"Malformed items quarantined ({waiting} new)", "bold"), disabled=True))
        options += [
            Option(_quarantined_text(entry, self._zone), id=f"q{n}") for n, entry in enumerate(self._quarantined)
        ]
        if not self._quarantined:
            options.append(Option(Text("  none", "dim"), disabled=True))
        listing.clear_options()
        listing.add_options(options)
        enabled = [n for n, option in enumerate(options) if not option.disabled]
        # Stay where the operator was: the next problem slides under the cursor.
        after = [n for n in enabled if n >= (kept or 0)]
        listing.highlighted = after[0] if after else (enabled[-1] if enabled else None)

    def action_acknowledge(self) -> None:
        option = self.query_one("#problems", OptionList).highlighted_option
        if option is None or option.id is None:
            self.app.bell()
            return
        index = int(option.id[1:])
        if option.id.startswith("d"):
            self._session.acknowledge(decision_ids=[self._conflicts[index].decision.id])
        else:
            entry = self._quarantined[index]
            self._session.acknowledge(quarantined=[(entry.source, entry.item_id)])
        self._reload()

    def action_acknowledge_all(self) -> None:
        self._session.acknowledge(
            decision_ids=[row.decision.id for row in self._conflicts if not row.seen],
            quarantined=[(entry.source, entry.item_id) for entry in self._quarantined if not entry.acknowledged],
        )
        self._reload()

    def action_close(self) -> None:
        self.dismiss(None)
