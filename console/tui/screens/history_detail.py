"""`enter` on a past decision: exactly what was decided. The item version as it was shown (the stored item at the
decision's digest), the verdict, for an edit the edited value with its diff against what the agent proposed (the
same view the edit was confirmed on), the reason, who, when, and what the source answered.

Everything here but our own labels is the agent's or the operator's text: cleaned, and never parsed as markup.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any, ClassVar, Final

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.tui.keymap import hint
from storage.db import Store
from storage.labels import Label
from storage.records import DecisionRow, SyncState, Verdict, shown_part
from widgets.detail import json_view
from widgets.diff_view import diff_content
from widgets.safe_text import clean, one_line
from widgets.timefmt import zoned_time

__all__ = ["HistoryDetailScreen", "decided_item"]

_TITLE: Final = "bold $text-primary"
_LABEL: Final = "$foreground-muted"
_WARN: Final = "bold $text-warning"
_VERDICTS: Final = {
    Verdict.approve: ("APPROVED", "bold $text-success"),
    Verdict.reject: ("REJECTED", "bold $text-warning"),
    Verdict.edit: ("EDITED AND APPROVED", "bold $text-primary"),
}
# What a label keeps of the version decided, for when the item cache has moved on to a newer one.
_LABEL_FIELDS: Final = (
    "kind",
    "agent",
    "workflow",
    "action_name",
    "risk",
    "confidence",
    "policy",
    "context_summary",
    "reasoning",
    "inputs",
    "proposed",
    "trace",
)


def decided_item(store: Store, row: DecisionRow, label: Label | None) -> tuple[Any, str]:
    """The version decided, as JSON, and where it comes from: the stored item when the cache still holds that digest,
    else what the decision's label kept of it (the proposal and its context), else nothing."""
    decision = row.decision
    found = store.items.get(decision.source, decision.item_id)
    if found is not None and found[0].digest == decision.item_digest:
        return shown_part(found[0].model_dump(mode="json")), "the stored item at this version"
    if label is not None:
        kept = label.model_dump(mode="json", include=set(_LABEL_FIELDS))
        return kept, "a newer version replaced it here: this is what the decision's label kept of the one decided"
    return None, "not kept: a newer version replaced it and this decision has no label (it was undone)"


class HistoryDetailScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("history.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back to the history", id="history_detail_close"),
    ]

    def __init__(self, store: Store, row: DecisionRow, sync: str, zone: tzinfo | None = None) -> None:
        """`store`: the history's read-only one; `sync`: the decision's sync state in words (history.sync_text)."""
        super().__init__()
        self._store = store
        self._row = row
        self._sync = sync
        self._zone = zone

    def compose(self) -> ComposeResult:
        decision = self._row.decision
        yield Static(
            Content.assemble(
                ("Decision ", "bold"),
                (one_line(f"{decision.source}/{decision.item_id}", 80), "bold"),
                (hint(self.app, "   exactly what was decided · {history_detail_close:1} back"), _LABEL),
            ),
            id="history-head",
        )
        with VerticalScroll(id="history-list"):
            yield Static(id="decision-summary")
            yield Static(id="decision-edit", classes="-section")
            yield Static(id="decision-item", classes="-section")
        yield Footer()

    def on_mount(self) -> None:
        row, decision = self._row, self._row.decision
        label = self._store.labels.of_decision(decision.id)
        item, origin = decided_item(self._store, row, label)
        self.query_one("#decision-summary", Static).update(self._summary())
        edit = self.query_one("#decision-edit", Static)
        edit.display = decision.verdict is Verdict.edit
        if decision.verdict is Verdict.edit:
            proposed = label.proposed if label is not None else None
            parts: list[Content | tuple[str, str] | str] = [
                ("\nEdited ", _TITLE),
                ("(what was sent instead of what the agent proposed)", _LABEL),
                "\n",
            ]
            if label is None:
                parts += [("the proposed value was not kept (no label): only the edited value is shown", _WARN), "\n"]
                parts.append(json_view(decision.edited).content)
            else:
                parts.append(diff_content(proposed, decision.edited, values=True))
            edit.update(Content.assemble(*parts))
        shown: list[Content | tuple[str, str] | str] = [
            ("\nThe item as it was shown ", _TITLE),
            (f"(version {decision.item_digest[:19]}…)", _LABEL),
            "\n",
            (origin, "italic $foreground-muted"),
            "\n",
        ]
        if item is not None:
            view = json_view(item)
            shown.append(view.content)
        self.query_one("#decision-item", Static).update(Content.assemble(*shown))
        self.query_one("#history-list").focus()

    def _summary(self) -> Content:
        row, decision = self._row, self._row.decision
        verdict, style = _VERDICTS.get(decision.verdict, (decision.verdict.value.upper(), "bold"))
        reason = " · ".join(part for part in (decision.reason_code or "", decision.comment) if part)
        parts: list[Content | tuple[str, str] | str] = [
            (f" {verdict} ", f"reverse {style}"),
            "  ",
            (one_line(row.item_action, 80), "bold"),
            ("  by agent ", _LABEL),
            one_line(row.item_agent, 60),
            "\n",
            ("who      ", _LABEL),
            (one_line(decision.operator, 60), "bold"),
            "\n",
            ("when     ", _LABEL),
            zoned_time(decision.decided_at, self._zone),
            "\n",
            ("sync     ", _LABEL),
            (one_line(self._sync, 120), "bold"),
        ]
        if row.detail and row.sync_state not in (SyncState.applied, SyncState.undone):  # as the history says it
            parts += [("   source said: ", _LABEL), one_line(row.detail, 300)]
        parts += ["\n", ("reason   ", _LABEL), Content(clean(reason)) if reason else ("none given", _LABEL)]
        return Content.assemble(*parts)

    def action_close(self) -> None:
        self.dismiss(None)
