"""`h`: the operator's decisions, newest first, each with its sync state; problems on top, with what to do.

A page of `PAGE_SIZE` decisions at a time (one small query each), so thousands cost what one page costs. `f` lists
only the decisions that need the operator: not applied (conflict, failure) or whose label the source refused.

`↑` / `↓` pick a decision, `enter` opens it (history_detail.py): the item as it was shown, the edit's diff, the reason,
who, when and the sync outcome.

`p` stays the inbox of what is new and wrong (unseen conflicts, quarantined items); this screen is the whole record,
and says for every problem what to do about it (`remedy`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.engine.config import token_fix
from console.tui.keymap import hint
from storage.db import Store
from storage.feedback import FeedbackKept, FeedbackState
from storage.labels import LabelStatus, LabelSyncState
from storage.records import DecisionRow, Outcome, SyncState
from widgets.safe_text import clean, one_line
from widgets.timefmt import zoned_time

__all__ = ["PAGE_SIZE", "HistoryScreen", "remedy", "sync_text"]

PAGE_SIZE = 50
_MUTED = "$foreground-muted"
_PROBLEM = "bold $text-error"
_ALERT = "bold reverse $text-error"
_ZONE_WIDTH = 6  # " CET", " JST", " +0530": times carry their zone
_WHEN_WIDTH = 19 + _ZONE_WIDTH
_VERDICT_STYLES = {"approve": "bold $text-success", "edit": "bold $text-primary", "reject": "bold $text-warning"}

# What to do about each final answer other than applied (PROTOCOL.md outcomes). Server text is shown as well.
_REMEDIES: dict[str, str] = {
    Outcome.stale.value: "the item changed after you saw it; the new version is in the queue: decide it again",
    Outcome.conflict.value: "someone else decided it first; nothing to do unless their decision was wrong",
    Outcome.expired.value: "nothing to do: the agent applied its on-expiry action when the deadline passed",
    Outcome.timed_out.value: "nothing to do: the deadline passed first; the agent applied its on-expiry action",
    Outcome.invalid.value: "the source refused the edit; if the item is still queued, edit it again",
    Outcome.withdrawn.value: "nothing to do: the agent withdrew the item; nothing will run",
    Outcome.superseded.value: "a newer version replaced it; decide on that one in the queue",
    Outcome.not_found.value: "nothing to do: the source no longer knows the item; tell its owner if unexpected",
    Outcome.same_operator.value: "you had approved it already; another operator must approve it",
    "idempotency_conflict": "the source holds another decision under this id; report it to the agent's owner",
}
_FAILED = "not retried: the source refused it; check the detail with the agent's owner"
_LABEL_REFUSED = "nothing to resend: the label is kept here and in approval-console export"


def _auth_remedy(source: str) -> str:
    return f"{token_fix(source)}; it is then sent again"


def remedy(row: DecisionRow, auth_refused: Collection[str] = ()) -> str | None:
    """What the operator should do about this decision, or None when nothing needs doing.

    `auth_refused`: the sources whose credentials are being refused now (their decisions wait in the outbox).
    """
    source = row.decision.source
    if row.sync_state in (SyncState.pending, SyncState.sending) and source in auth_refused:
        return _auth_remedy(source)
    if row.sync_state is SyncState.conflict:
        return _REMEDIES.get(row.outcome or "", _FAILED)
    if row.sync_state is SyncState.failed:
        return _auth_remedy(source) if row.outcome == Outcome.unauthorized.value else _FAILED
    return None


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def sync_text(row: DecisionRow) -> str:
    """The decision's sync state in a few words (outcome and attempts included)."""
    state = row.sync_state
    tries = f" after {row.attempts} attempts" if row.attempts > 1 else ""
    if state is SyncState.applied:
        return f"applied{tries}"
    if state is SyncState.undone:
        return "undone before sending"
    if state is SyncState.partial:  # one approval of a two-person item; the detail says how it ended, once it did
        return "recorded: one approval of a two-person item"
    if state is SyncState.pending:
        return "waiting to sync" if row.attempts == 0 else f"retrying, {_attempts(row.attempts)}"
    if state is SyncState.sending:
        return f"sending, {_attempts(row.attempts)}"
    if state is SyncState.conflict and row.outcome == Outcome.conflict.value:
        return f"conflict lost: decided elsewhere first{tries}"
    word = "not applied" if state is SyncState.conflict else "failed"
    return f"{word}: {row.outcome or '?'}{tries}"


def _is_problem(row: DecisionRow, label: LabelStatus | None, auth_refused: Collection[str]) -> bool:
    refused = label is not None and label.sync_state is LabelSyncState.refused
    return remedy(row, auth_refused) is not None or refused


def decision_lines(
    row: DecisionRow,
    label: LabelStatus | None,
    auth_refused: Collection[str],
    width: int,
    zone: tzinfo | None = None,
    feedback: Sequence[FeedbackKept] = (),
) -> list[Content]:
    """A decision as two to five lines: what, when (in `zone`, None: local), where it stands; then why, and for a
    problem what to do."""
    decision = row.decision
    problem = _is_problem(row, label, auth_refused)
    mark = ("✗ " if problem else "  ", _PROBLEM if problem else _MUTED)
    head = Content.assemble(
        mark,
        (zoned_time(decision.decided_at, zone).ljust(_WHEN_WIDTH) + "  ", _MUTED),
        (decision.verdict.value.upper().ljust(8), _VERDICT_STYLES.get(decision.verdict.value, "bold")),
        (one_line(row.item_action, 21).ljust(22), "bold"),
        one_line(row.item_agent, 16).ljust(17),
        (one_line(f"{decision.source}/{decision.item_id}", 22).ljust(23), _MUTED),
        (one_line(sync_text(row), max(8, width - 84 - _ZONE_WIDTH)), _PROBLEM if remedy(row, auth_refused) else ""),
    )
    lines = [head]
    indent = " " * (23 + _ZONE_WIDTH)
    why = [part for part in (decision.reason_code or "", decision.comment) if part]
    if why:
        lines.append(Content.assemble(indent, ("reason: ", _MUTED), one_line(" · ".join(why), width - len(indent) - 8)))
    if row.detail and row.sync_state not in (SyncState.applied, SyncState.undone):
        lines.append(Content.assemble(indent, ("source: ", _MUTED), one_line(row.detail, width - len(indent) - 8)))
    if label is not None and label.sync_state is LabelSyncState.refused:
        lines.append(
            Content.assemble(
                indent, ("label refused: ", _PROBLEM), one_line(label.last_error, width - len(indent) - 15)
            )
        )
    for kept in feedback:  # a [[feedback]] sink that refused the label or cannot attach it: kept here, with why
        what = f"not sent to {kept.sink}: " if kept.state is FeedbackState.local else f"{kept.sink} refused it: "
        lines.append(Content.assemble(indent, (what, _MUTED), one_line(kept.reason, width - len(indent) - len(what))))
    todo = remedy(row, auth_refused) or (_LABEL_REFUSED if problem else None)
    if todo is not None:
        # Our own words: wrapped, never cut (source names in them are made safe).
        lines.append(Content.assemble(indent, ("what to do: ", "bold"), clean(todo)))
    return lines


class HistoryScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("history.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="close"),
        Binding("h", "close", "Close", show=False, id="history"),
        Binding("f", "toggle_problems", "Problems only / all", id="toggle_problems"),
        Binding("left,comma", "page(-1)", "Newer", show=False, id="page_newer"),
        Binding("right,full_stop", "page(1)", "Older", show=False, id="page_older"),
        Binding("enter", "open", "Open", id="history_open"),
        # Over the scroll view's own up/down: they move the pick, and the view follows it.
        Binding("down,j", "move(1)", "Next", show=False, priority=True, id="history_next"),
        Binding("up,k", "move(-1)", "Previous", show=False, priority=True, id="history_previous"),
    ]
    # The keys the head names, as the keymap has them (keymap.hint)
    _KEYS = (
        "   {history_previous:arrow}/{history_next:arrow} {history_open:1} open"
        " · {page_newer:arrow}/{page_older:arrow} pages · {toggle_problems:1} "
    )

    def __init__(self, db_path: Path, auth_refused: Collection[str] = (), zone: tzinfo | None = None) -> None:
        super().__init__()
        self._db_path = db_path
        self._zone = zone  # times are drawn in it (None: local); the database keeps UTC
        self._auth_refused = frozenset(auth_refused)
        self._store: Store | None = None
        self._feedback: dict[str, list[FeedbackKept]] = {}  # decision id -> sinks that did not take its label
        self._statuses: dict[str, LabelStatus] = {}
        self.problems_only = False
        self.page = 0
        self.cursor = 0  # the picked decision on this page
        self._page_rows: list[DecisionRow] = []
        self._row_lines: list[int] = []  # the line each row of the page starts on

    def compose(self) -> ComposeResult:
        yield Static(id="history-head")
        yield Static(id="history-alert")
        with VerticalScroll(id="history-list"):
            yield Static(id="history-rows")
        yield Footer()

    def on_mount(self) -> None:
        # A read-only connection of its own: paging never waits on (or blocks) the decision writes of the queue.
        self._store = Store(self._db_path, readonly=True)
        self.query_one("#history-list").focus()
        self.call_after_refresh(self.show_page)  # after layout: lines are cut to the width they get

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_page)

    def on_unmount(self) -> None:
        if self._store is not None:
            self._store.close()

    def show_page(self) -> None:
        store = self._store
        if store is None:
            return
        total = store.outbox.decision_count(problems_only=self.problems_only)
        problems = total if self.problems_only else store.outbox.decision_count(problems_only=True)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        self.page = max(0, min(self.page, pages - 1))
        rows = store.outbox.decisions(PAGE_SIZE, self.page * PAGE_SIZE, problems_only=self.problems_only)
        statuses = store.labels.statuses([row.decision.id for row in rows])
        self._feedback = store.feedback.not_taken([row.decision.id for row in rows])
        self.query_one("#history-head", Static).update(self._head(total, pages))
        self.query_one("#history-alert", Static).update(self._alert(problems))
        self._page_rows = list(rows)
        self._statuses = statuses
        self.cursor = max(0, min(self.cursor, len(rows) - 1))
        self.query_one("#history-rows", Static).update(self._rows(rows, statuses))
        self._follow_cursor()

    def _head(self, total: int, pages: int) -> Content:
        what = "decisions that need you" if self.problems_only else "decisions"
        return Content.assemble(
            ("Decision history", "bold"),
            (f"   {total:,} {what}, newest first · page {self.page + 1} of {pages}", _MUTED),
            (hint(self.app, self._KEYS), _MUTED),
            ("all decisions" if self.problems_only else "problems only", _MUTED),
        )

    def _alert(self, problems: int) -> Content:
        parts: list[Content] = []
        if problems:
            noun = "decision needs" if problems == 1 else "decisions need"
            parts.append(Content.styled(f" {problems:,} {noun} you: not applied, or label refused ", _ALERT))
            if not self.problems_only:
                parts.append(Content.styled(hint(self.app, "  press {toggle_problems:1} to list only them"), "bold"))
        else:
            parts.append(Content.styled("Every decision was applied or is on its way.", "$text-success"))
        for source in sorted(self._auth_refused):
            name = one_line(source, 40)
            parts += [
                Content.styled(f"\n{name} refuses our credentials; its decisions wait here. ", _PROBLEM),
                Content(one_line(_auth_remedy(source), 200)),
            ]
        return Content("").join(parts)

    def _rows(self, rows: Sequence[DecisionRow], statuses: dict[str, LabelStatus]) -> Content:
        if not rows:
            return Content.styled("No decisions yet." if not self.problems_only else "Nothing needs you.", _MUTED)
        width = max(60, self.query_one("#history-rows", Static).size.width)
        lines: list[Content] = []
        self._row_lines = []
        for index, row in enumerate(rows):
            kept = self._feedback.get(row.decision.id, [])
            own = decision_lines(row, statuses.get(row.decision.id), self._auth_refused, width, self._zone, kept)
            if index == self.cursor:  # the picked one: `enter` opens it
                own[0] = own[0].stylize("reverse")
            self._row_lines.append(len(lines))
            lines += own
        return Content("\n").join(lines)

    def _follow_cursor(self) -> None:
        if not self._row_lines:
            return
        first = self._row_lines[self.cursor]
        last = self._row_lines[self.cursor + 1] if self.cursor + 1 < len(self._row_lines) else first + 1
        self.query_one("#history-list", VerticalScroll).scroll_to_region(
            Region(0, first, 1, last - first), animate=False, immediate=True
        )

    def action_move(self, step: int) -> None:
        target = self.cursor + step
        if not self._page_rows:
            return
        if target < 0 and self.page > 0:  # past the top: the newer page, its last decision
            self.page -= 1
            self.cursor = PAGE_SIZE - 1
            self.show_page()
            return
        if target >= len(self._page_rows):
            total = self._store.outbox.decision_count(problems_only=self.problems_only) if self._store else 0
            if (self.page + 1) * PAGE_SIZE < total:
                self.page += 1
                self.cursor = 0
                self.show_page()
            return
        self.cursor = max(0, target)
        self.query_one("#history-rows", Static).update(self._rows(self._page_rows, self._statuses))
        self._follow_cursor()

    def action_open(self) -> None:
        from console.tui.screens.history_detail import HistoryDetailScreen

        if self._store is None or not self._page_rows:
            self.app.bell()
            return
        row = self._page_rows[self.cursor]
        self.app.push_screen(HistoryDetailScreen(self._store, row, sync_text(row), self._zone))

    def action_toggle_problems(self) -> None:
        self.problems_only = not self.problems_only
        self.page = 0
        self.cursor = 0
        self.show_page()

    def action_page(self, step: int) -> None:
        self.page += step
        self.cursor = 0
        self.show_page()

    def action_close(self) -> None:
        self.dismiss(None)
