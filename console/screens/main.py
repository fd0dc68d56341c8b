"""The main screen: the queue (most urgent first), the selected item's detail, the status bar, the decision keys."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from console.screens.confirm import ConfirmCriticalScreen
from console.screens.edit import EditScreen
from console.screens.help import HelpScreen
from console.screens.problems import ProblemsScreen
from console.screens.reject import Rejection, RejectScreen
from console.session import Session
from storage.db import DecisionRefused, StorageError, UndoRefused
from storage.queue import Grouping, QueueView, SortOrder
from storage.records import Decision, Item, QueueRow, Risk, SourceHealth, Verdict, now_utc
from widgets.detail import ItemDetail
from widgets.queue_list import QueueList
from widgets.safe_text import clean, one_line
from widgets.status_bar import StatusBar

# After the shown item changes by itself (a new version, or it left the queue and the next one slid in), decision keys
# wait this long, so a key meant for what the operator was reading cannot land on something else.
SETTLE_SECONDS = 1.5
# After a decision the next item slides in; a second press this soon is a bounce or a double tap, not a decision.
REPEAT_GUARD_SECONDS = 0.4
_FIRST_SHOWN_KEPT = 10_000
_NOTICE_CHANGED = "This item changed while you were viewing it. Read it again before deciding."
_NOTICE_REPLACED = "The item you were viewing left the queue ({why}); this is the next one."
_NOTICE_EMPTIED = "The item you were viewing left the queue ({why})."
_WHY_LEFT = {
    "decided": "decided elsewhere",
    "expired": "its deadline passed",
    "withdrawn": "withdrawn by the agent",
    "superseded": "replaced by a newer item",
}
CLAIM_RENEW_SECONDS = 30.0  # claims are leases (PROTOCOL.md section 5): renewed while the item stays on screen
_PAST = {Verdict.approve: "Approved", Verdict.reject: "Rejected", Verdict.edit: "Edited and approved"}
_SORTS = tuple(SortOrder)
_GROUPINGS = tuple(Grouping)


@dataclass(frozen=True)
class Undoable:
    """A decision still inside its undo window (monotonic `until`)."""

    decision: Decision
    until: float
    label: str


def _next(values: tuple[Any, ...], current: Any) -> Any:
    return values[(values.index(current) + 1) % len(values)]


class MainScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("main.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("r", "reject", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("u", "undo", "Undo"),
        Binding("slash", "filter", "Filter"),
        Binding("o", "sort", "Sort"),
        Binding("g", "group", "Group"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("p", "problems", "Problems"),
        Binding("s", "stats", "Stats", show=False),  # the footer is full: `?` and ctrl+p list it
        Binding("h", "history", "History", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, session: Session, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.session = session
        self._now = now
        self.shown: Item | None = None  # exactly what the detail shows: decisions bind to this version
        self._first_shown: dict[tuple[str, str, str], datetime] = {}
        self._ready = False  # set once composed and mounted: storage changes may arrive before
        self._refused_told: set[str] = set()  # sources whose refused credentials the operator was told about
        self._settle_until = 0.0
        self._settle_reason = ""
        self.undoable: list[Undoable] = []  # newest last
        self._claimed: Item | None = None

    def compose(self) -> ComposeResult:
        operator = self.session.config.operator
        yield Static(id="queue-bar")
        yield Input(placeholder="filter: words, agent:NAME, action:NAME, source:NAME, risk:high …", id="filter")
        yield QueueList(self.session.queue, now=self._now, operator=operator, id="queue")
        yield ItemDetail(now=self._now, operator=operator, id="detail")
        yield Static(id="undo-bar")
        yield StatusBar(id="status")
        yield Footer()

    def on_unmount(self) -> None:
        self._ready = False

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#filter", Input).display = False
        self.query_one("#undo-bar", Static).display = False
        self.query_one(QueueList).focus()
        self._update_queue_bar()
        self.refresh_status()
        self.set_interval(0.25, self._update_undo_bar)
        self.set_interval(CLAIM_RENEW_SECONDS, self._renew_claim)

    @property
    def queue_list(self) -> QueueList:
        return self.query_one(QueueList)

    @property
    def view(self) -> QueueView:
        return self.session.queue.view

    def all_bindings(self) -> list[Binding]:
        """The screen's own bindings (with any added later), for the command palette and the help screen."""
        return [b for b in self.BINDINGS if isinstance(b, Binding)]

    # ------------------------------------------------------------ data flow
    def queue_changed(self) -> None:
        """Storage changed (a poll, a decision, an outcome): re-read the queue, re-check the shown item."""
        if not self._ready:  # a poll can finish before the screen has composed
            return
        before = self.shown
        self.queue_list.refresh_rows()
        self._update_queue_bar()
        if before is None:
            return
        found = self.session.store.item(before.source, before.id)
        if found is None or found[1] != "pending":
            return
        current = found[0]
        if current.digest != before.digest:
            self._show(current, notice=_NOTICE_CHANGED, settle=True)
        elif current.claimed_by != before.claimed_by:  # outside the digest: the same version, a new holder
            self._show(current, notice=self.query_one(ItemDetail).notice)

    @on(QueueList.Highlighted)
    def _highlighted(self, event: QueueList.Highlighted) -> None:
        row: QueueRow | None = event.row
        before = self.shown
        if row is not None and before is not None and (row.source, row.id) == (before.source, before.id):
            return
        found = None if row is None else self.session.store.item(row.source, row.id)
        # The operator moved, or decided here: no surprise. The item left by itself: say so, and hold the keys.
        why = None if before is None else self.session.store.removed_reason(before.source, before.id)
        notice = None
        if why is not None:
            template = _NOTICE_REPLACED if found else _NOTICE_EMPTIED
            notice = template.format(why=_WHY_LEFT.get(why, "no longer listed by the source"))
        self._show(found[0] if found else None, notice=notice, settle=why is not None)

    def _show(self, item: Item | None, *, notice: str | None = None, settle: bool = False) -> None:
        self.shown = item
        if item is not None:
            # When the operator first saw this version: labels keep how long they took to decide.
            self._first_shown.setdefault((item.source, item.id, item.digest), now_utc())
            if len(self._first_shown) > _FIRST_SHOWN_KEPT:
                del self._first_shown[next(iter(self._first_shown))]  # the oldest: browsed, never decided
        empty = "Queue is empty" if self.queue_list.row_count == 0 else None
        self.query_one(ItemDetail).show(item, notice=notice, empty=empty)
        if settle:
            self._hold(SETTLE_SECONDS, "The item just changed. Read it again, then decide.")
        if item is not None and (
            self._claimed is None or (self._claimed.source, self._claimed.id) != (item.source, item.id)
        ):
            self._claim(item, self._claimed)
            self._claimed = item

    @work(group="claims", exclusive=True, exit_on_error=False)
    async def _claim(self, item: Item, previous: Item | None) -> None:
        """Opening an item claims it at its source (advisory, best effort), and lets go of the one before."""
        if previous is not None:
            await self.session.release(previous)
        await self.session.claim(item)

    def _renew_claim(self) -> None:
        if self.shown is not None:
            self._claim(self.shown, None)

    def _hold(self, seconds: float, reason: str) -> None:
        self._settle_until = time.monotonic() + seconds
        self._settle_reason = reason

    # ------------------------------------------------------ order and filter
    def _apply_view(self, view: QueueView) -> None:
        self.session.queue.view = view
        self.queue_list.refresh_rows()  # keeps the cursor on the same item when the new view holds it
        self._update_queue_bar()

    def action_sort(self) -> None:
        view = self.view
        self._apply_view(QueueView(_next(_SORTS, view.order), view.grouping, view.filter_text))

    def action_group(self) -> None:
        view = self.view
        self._apply_view(QueueView(view.order, _next(_GROUPINGS, view.grouping), view.filter_text))

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if not field.display and not self.view.filter_text:
            return
        field.value = ""  # Input.Changed applies the empty filter
        field.display = False
        self._apply_view(QueueView(self.view.order, self.view.grouping, ""))
        self.queue_list.focus()

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        if event.value != self.view.filter_text:
            self._apply_view(QueueView(self.view.order, self.view.grouping, event.value))

    @on(Input.Submitted, "#filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        field = self.query_one("#filter", Input)
        field.display = bool(event.value)  # an active filter stays in sight
        self.queue_list.focus()

    def _update_queue_bar(self) -> None:
        view = self.view
        count = self.queue_list.row_count
        parts: list[Content | tuple[str, str] | str] = [
            ("QUEUE ", "bold"),
            (f"{count:,} item{'s' if count != 1 else ''}", "bold $text-primary"),
            (f"  ·  {view.describe()}", "$foreground-muted"),
        ]
        if view.filter_text:
            parts += [("  ·  filter ", "$foreground-muted"), (one_line(view.filter_text, 60), "bold $text-warning")]
        parts.append(("   (o sort · g group · / filter · ? help)", "$foreground-muted"))
        self.query_one("#queue-bar", Static).update(Content.assemble(*parts))

    def refresh_status(self) -> None:
        bars = self.query(StatusBar)
        if not self._ready or not bars:  # not composed yet, or being torn down while a timer still fires
            return
        store = self.session.store
        health = list(self.session.poller.health.values())
        self._tell_refused_credentials(health)
        bars.first().update_status(
            health,
            waiting=store.waiting_count(),
            conflicts=store.unseen_problem_count(),
            operator=self.session.config.operator,
            now=self._now(),
        )

    def _tell_refused_credentials(self, health: list[SourceHealth]) -> None:
        """A source that starts refusing our token is said once, loudly, with the fix (the status bar keeps it)."""
        for source in health:
            if source.state != "auth":
                self._refused_told.discard(source.name)
            elif source.name not in self._refused_told:
                self._refused_told.add(source.name)
                self.app.bell()
                self.notify(
                    clean(source.error, multiline=False),
                    title=clean(f"{source.name}: credentials refused", multiline=False),
                    severity="error",
                    timeout=30,
                    markup=False,
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
            first_shown_at = self._first_shown.pop((item.source, item.id, item.digest), None)
            decision = self.session.decide(item, verdict, first_shown_at=first_shown_at, **details)
        except DecisionRefused as exc:
            self.app.bell()
            self.notify(f"Not recorded: {exc}.", severity="error", markup=False)
            self.queue_changed()
            return
        except (StorageError, OSError) as exc:  # full or read-only disk: the decision must not look recorded
            self.app.bell()
            self.notify(f"Not recorded, the database could not be written: {exc}", severity="error", markup=False)
            return
        label = clean(f"{_PAST[verdict]}: {item.headline} ({item.agent})", multiline=False)
        window = self.session.config.undo_seconds
        if window > 0:
            self.undoable.append(Undoable(decision, time.monotonic() + window, label))
            self._update_undo_bar()
        else:
            self.notify(f"{label}. Syncing.", markup=False, timeout=3)
        self.queue_changed()
        self._hold(REPEAT_GUARD_SECONDS, "That was a second key press right after a decision; press again to decide.")
        self.refresh_status()

    def _confirm_critical(self, item: Item, verb: str, then: Callable[[], None]) -> None:
        """A critical-risk approval (or edit) needs the confirmation word typed; anything else goes straight on."""
        if item.risk is not Risk.critical:
            then()
            return

        def confirmed(ok: bool | None) -> None:
            if ok:
                then()
            else:
                self.notify("Not approved: the confirmation was cancelled.", markup=False, timeout=3)

        self.app.push_screen(ConfirmCriticalScreen(item, verb), confirmed)

    def action_approve(self) -> None:
        item = self._decidable(Verdict.approve)
        if item is not None:
            self._confirm_critical(item, "Approve", lambda: self._record(item, Verdict.approve))

    # ------------------------------------------------------------------ undo
    def _live_undoable(self) -> list[Undoable]:
        now = time.monotonic()
        self.undoable = [u for u in self.undoable if u.until > now]
        return self.undoable

    def _update_undo_bar(self) -> None:
        bar = self.query_one("#undo-bar", Static)
        live = self._live_undoable()
        if not live:
            bar.display = False
            return
        latest = live[-1]
        left = math.ceil(latest.until - time.monotonic())
        more = f"  (+{len(live) - 1} more)" if len(live) > 1 else ""
        bar.update(
            Content.assemble(
                ("↶ ", "bold"),
                (latest.label, "bold"),
                ("  —  press ", "$foreground-muted"),
                (" u ", "bold reverse $text-warning"),
                (f" to undo ({left}s)", "bold $text-warning"),
                (more, "$foreground-muted"),
            )
        )
        bar.display = True

    def action_undo(self) -> None:
        live = self._live_undoable()
        if not live:
            self.app.bell()
            window = self.session.config.undo_seconds
            why = "the undo window is off (undo_seconds = 0)" if window <= 0 else f"only within {window:g} s"
            self.notify(f"Nothing to undo: {why}.", severity="warning", markup=False)
            return
        latest = live.pop()
        try:
            decision = self.session.undo(latest.decision.id)
        except UndoRefused as exc:
            self.app.bell()
            self.notify(f"Cannot undo: {exc}.", severity="error", markup=False)
            return
        except (StorageError, OSError) as exc:
            self.app.bell()
            self.notify(f"Cannot undo, the database could not be written: {exc}", severity="error", markup=False)
            return
        self._update_undo_bar()
        self.notify(f"Undone. {latest.label} was taken back; nothing was sent.", markup=False, timeout=4)
        self.queue_changed()
        index = self.session.queue.index_of(decision.source, decision.item_id)
        if index is not None:
            self.queue_list.move_to(index)  # back on the item, to decide it again
        self.refresh_status()

    def action_help(self) -> None:
        app_bindings = [b for b in self.app.BINDINGS if isinstance(b, Binding)]
        palette = Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette", "Command palette: find any action")
        sections: list[tuple[str, list[BindingType]]] = [
            ("Queue and decisions", list(self.all_bindings())),
            ("Moving in the queue (the mouse works too)", list(QueueList.BINDINGS)),
            ("Anywhere", [*app_bindings, palette]),
        ]
        self.app.push_screen(HelpScreen(sections))

    def action_reject(self) -> None:
        item = self._decidable(Verdict.reject)
        if item is None:
            return

        def done(rejection: Rejection | None) -> None:
            if rejection is not None:
                self._record(item, Verdict.reject, reason_code=rejection.reason_code, comment=rejection.comment)

        title = f"{item.headline} ({item.agent})"
        self.app.push_screen(RejectScreen(title, self.session.config.reject_reasons), done)

    def action_edit(self) -> None:
        item = self._decidable(Verdict.edit)
        if item is None:
            return

        def done(value: Any) -> None:
            if value is not EditScreen.CANCELLED:
                self._confirm_critical(item, "Edit and approve", lambda: self._record(item, Verdict.edit, edited=value))

        self.app.push_screen(EditScreen(item), done)

    def action_problems(self) -> None:
        store = self.session.store
        conflicts = store.unseen_problems()
        store.mark_seen([row.decision.id for row in conflicts])
        self.app.push_screen(ProblemsScreen(conflicts, store.quarantined()), lambda _: self.refresh_status())

    def action_stats(self) -> None:
        from console.screens.stats import StatsScreen

        self.app.push_screen(StatsScreen(self.session.store.path, now=self._now))

    def action_history(self) -> None:
        from console.screens.history import HistoryScreen

        auth = [h.name for h in self.session.poller.health.values() if h.state == "auth"]
        self.app.push_screen(HistoryScreen(self.session.store.path, auth_refused=auth))
