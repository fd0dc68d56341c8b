"""The main screen: the queue (most urgent first), the selected item's detail, the status bar, the decision keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from console.screens.edit import EditScreen
from console.screens.problems import ProblemsScreen
from console.screens.reject import Rejection, RejectScreen
from console.session import Session
from storage.db import DecisionRefused
from storage.records import Item, QueueRow, Verdict
from widgets.detail import ItemDetail
from widgets.queue_list import QueueList
from widgets.safe_text import clean
from widgets.status_bar import StatusBar

# After the shown item changes by itself (a new version, or it left the queue and the next one slid in), decision keys
# wait this long, so a key meant for what the operator was reading cannot land on something else.
SETTLE_SECONDS = 1.5
# After a decision the next item slides in; a second press this soon is a bounce or a double tap, not a decision.
REPEAT_GUARD_SECONDS = 0.4
_NOTICE_CHANGED = "This item changed while you were viewing it. Read it again before deciding."
_NOTICE_REPLACED = "The item you were viewing left the queue; this is the next one."


class MainScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("main.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("r", "reject", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("p", "problems", "Problems"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, session: Session, now: Any = time.time) -> None:
        super().__init__()
        self.session = session
        self._now = now
        self.shown: Item | None = None  # exactly what the detail shows: decisions bind to this version
        self._settle_until = 0.0
        self._settle_reason = ""

    def compose(self) -> ComposeResult:
        yield QueueList(self.session.queue, now=self._now, id="queue")
        yield ItemDetail(now=self._now, id="detail")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(QueueList).focus()
        self.refresh_status()

    # ------------------------------------------------------------ data flow
    def queue_changed(self) -> None:
        """Storage changed (a poll, a decision, an outcome): re-read the queue, re-check the shown item."""
        before = self.shown
        self.query_one(QueueList).refresh_rows()
        if before is None:
            return
        found = self.session.store.item(before.source, before.id)
        if found is not None and found[1] == "pending" and found[0].digest != before.digest:
            self._show(found[0], notice=_NOTICE_CHANGED, settle=True)

    @on(QueueList.Highlighted)
    def _highlighted(self, event: QueueList.Highlighted) -> None:
        row: QueueRow | None = event.row
        before = self.shown
        if row is not None and before is not None and (row.source, row.id) == (before.source, before.id):
            return
        found = None if row is None else self.session.store.item(row.source, row.id)
        # The operator moved, or decided here: no surprise. The item left by itself: say so, and hold the keys.
        left = before is not None and self._left_by_itself(before)
        self._show(found[0] if found else None, notice=_NOTICE_REPLACED if left and found else None, settle=left)

    def _left_by_itself(self, item: Item) -> bool:
        found = self.session.store.item(item.source, item.id)
        return found is None or found[1] == "removed"

    def _show(self, item: Item | None, *, notice: str | None = None, settle: bool = False) -> None:
        self.shown = item
        self.query_one(ItemDetail).show(item, notice=notice)
        if settle:
            self._hold(SETTLE_SECONDS, "The item just changed. Read it again, then decide.")

    def _hold(self, seconds: float, reason: str) -> None:
        self._settle_until = time.monotonic() + seconds
        self._settle_reason = reason

    def refresh_status(self) -> None:
        store = self.session.store
        self.query_one(StatusBar).update_status(
            list(self.session.poller.health.values()),
            waiting=store.waiting_count(),
            conflicts=len(store.unseen_problems()),
            operator=self.session.config.operator,
            now=self._now(),
        )

    # -------------------------------------------------------------- deciding
    def _decidable(self, verdict: Verdict) -> Item | None:
        item = self.shown
        if item is None:
            self.app.bell()
            self.notify("Nothing selected.", severity="warning", markup=False)
            return None
        if time.monotonic() < self._settle_until:
            self.app.bell()
            self.notify(self._settle_reason, severity="warning", markup=False)
            return None
        if not item.allows(verdict):
            self.app.bell()
            allowed = ", ".join(v.value for v in item.allowed_decisions) or "nothing"
            self.notify(f"The source does not allow {verdict.value} here (allowed: {allowed}).", markup=False)
            return None
        return item

    def _record(self, item: Item, verdict: Verdict, **details: Any) -> None:
        try:
            self.session.decide(item, verdict, **details)
        except DecisionRefused as exc:
            self.app.bell()
            self.notify(f"Not recorded: {exc}.", severity="error", markup=False)
            self.queue_changed()
            return
        except OSError as exc:  # full or read-only disk: the decision must not look recorded
            self.app.bell()
            self.notify(f"Not recorded, the database could not be written: {exc}", severity="error", markup=False)
            return
        past = {Verdict.approve: "Approved", Verdict.reject: "Rejected", Verdict.edit: "Edited and approved"}[verdict]
        self.notify(
            clean(f"{past}: {item.action.name} ({item.agent}). Syncing.", multiline=False), markup=False, timeout=3
        )
        self.queue_changed()
        self._hold(REPEAT_GUARD_SECONDS, "That was a second key press right after a decision; press again to decide.")
        self.refresh_status()

    def action_approve(self) -> None:
        item = self._decidable(Verdict.approve)
        if item is not None:
            self._record(item, Verdict.approve)

    def action_reject(self) -> None:
        item = self._decidable(Verdict.reject)
        if item is None:
            return

        def done(rejection: Rejection | None) -> None:
            if rejection is not None:
                self._record(item, Verdict.reject, reason_code=rejection.reason_code, comment=rejection.comment)

        title = f"{item.action.name} ({item.agent})"
        self.app.push_screen(RejectScreen(title, self.session.config.reject_reasons), done)

    def action_edit(self) -> None:
        item = self._decidable(Verdict.edit)
        if item is None:
            return

        def done(value: Any) -> None:
            if value is not EditScreen.CANCELLED:
                self._record(item, Verdict.edit, edited=value)

        self.app.push_screen(EditScreen(item), done)

    def action_problems(self) -> None:
        store = self.session.store
        conflicts = store.unseen_problems()
        store.mark_seen([row.decision.id for row in conflicts])
        self.app.push_screen(ProblemsScreen(conflicts, store.quarantined()), lambda _: self.refresh_status())
