"""What the main screen shows and how it stays true: the queue (most urgent first), the selected item's detail, and the
queue, undo and status bars, kept current by the session's events (messages) and bound state (data_bind).

Moving on after a decision passes over items another operator holds; an item that changes or leaves under the operator
says so and holds the decision keys a moment. The keys that change the view are queue_views.py's; the keys that decide
are the main screen's (main.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from console.engine import filter_history
from console.engine.session import Session
from console.engine.views import saved_views
from console.tui.keymap import hint, key_in_force
from console.tui.messages import OutcomesArrived, QueueChanged
from console.tui.screens.empty_queue import explain_empty
from storage.queue import QueueView
from storage.records import Decision, Item, QueueRow, SourceHealth, now_utc
from widgets.bars import QueueBar, UndoBar, UndoPrompt
from widgets.detail import ItemDetail
from widgets.filter_input import FilterInput
from widgets.queue_list import QueueList
from widgets.safe_text import clean, one_line
from widgets.status_bar import StatusBar
from widgets.timefmt import display_zone
from widgets.view_tabs import ViewTab, ViewTabs
from widgets.why_line import Rank

# After the shown item changes by itself (a new version, or it left the queue and the next one slid in), decision keys
# wait this long, so a key meant for what the operator was reading cannot land on something else.
SETTLE_SECONDS = 1.5
WIDE_COLUMNS = 160
_FIRST_SHOWN_KEPT = 10_000
_NOTICE_CHANGED = "This item changed while you were viewing it. Read it again before deciding."
_NOTICE_REPLACED = "The item you were viewing left the queue ({why}); this is the next one."
_NOTICE_EMPTIED = "The item you were viewing left the queue ({why})."
_NOTICE_TAKEN = "{holder} claimed the item that came next a moment before you; this is the next one nobody holds."
WHY_LEFT = {
    "decided": "decided elsewhere",
    "expired": "its deadline passed",
    "withdrawn": "withdrawn by the agent",
    "superseded": "replaced by a newer item",
}


@dataclass(frozen=True)
class Undoable:
    """A decision still inside its undo window (monotonic `until`)."""

    decision: Decision
    until: float
    label: str
    batch: tuple[Decision, ...] = ()  # the rest of a bulk decision: undone with it


def _collapsed_text(label: str, size: int) -> str:
    """What the detail says while the cursor is on a collapsed group's header."""
    items = f"{size:,} item{'s' if size != 1 else ''}"
    return f"{one_line(label, 60)}: {items}, collapsed. c or → expands it; j / k move past it."


class QueueScreen(Screen[None]):
    """The queue, the detail and the bars over a session; the main screen adds the keys that decide."""

    CSS_PATH = Path(__file__).with_name("main.tcss")
    # From WIDE_COLUMNS on, the detail sits beside the queue (main.tcss): each then gets about 80 columns, the width
    # the queue's columns (confidence meter included) and the detail's arguments were laid out for. Narrower, a
    # detail beside the queue would squeeze both, so it stays below.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_COLUMNS, "-wide")]  # noqa: RUF012 (Screen declares it so)
    # State the bars draw (bound with data_bind in compose): set here, never pushed into the widgets by hand.
    queue_count: var[int] = var(0)
    view_description: var[str] = var("")
    filter_text: var[str] = var("")
    marked_count: var[int] = var(0)  # items marked for bulk work (marking.py)
    undo_prompt: var[UndoPrompt | None] = var(None)
    source_health: var[tuple[SourceHealth, ...] | None] = var(None)  # None until first read
    unsynced: var[int] = var(0)
    unseen_problems: var[int] = var(0)
    clock: var[float] = var(0.0)  # moved on once a second: "polled 3s ago" stays true
    view_tabs: var[tuple[ViewTab, ...]] = var(())
    active_view: var[int] = var(0)  # index into the saved views

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
        self._empty_shown = ""  # the empty-queue explanation on screen, so a tick re-renders only on a change
        # The selection moves on by itself (the first item shown, the next one after a decision): it passes over
        # items another operator holds, so two consoles on one queue do not both land on the same item.
        self._moving_on = True
        self._auto_move = False  # the next highlight is one the screen moved to by itself
        self._auto_selected: tuple[str, str] | None = None  # the item shown was chosen by moving on, not by a key
        self._taken_by: str | None = None  # who claimed the item moving on had chosen, before we could
        self._changed_from: Item | None = None  # the version on screen before the shown item changed under it
        # Saved views: the tabs on top, switched with 1..9; the filter typed refines the active one.
        self.saved_views = saved_views(session.config)
        self._typed = ""
        self.set_reactive(QueueScreen.view_tabs, tuple(ViewTab(saved.name) for saved in self.saved_views))
        if self.saved_views:
            session.queue.view = self.saved_views[0].view

    def compose(self) -> ComposeResult:
        operator = self.session.config.operator
        yield ViewTabs(id="view-tabs").data_bind(tabs=QueueScreen.view_tabs, active=QueueScreen.active_view)
        yield QueueBar(id="queue-bar").data_bind(
            count=QueueScreen.queue_count,
            description=QueueScreen.view_description,
            filter_text=QueueScreen.filter_text,
            marked=QueueScreen.marked_count,
        )
        yield FilterInput(
            placeholder="filter: words, -word, agent:a,b, -risk:low, kind:ESC … (↑ ↓ earlier filters)", id="filter"
        )
        yield Static(id="filter-hint")
        window = self.session.config.deadline_window  # near deadlines: marked here, alerted by the app
        yield QueueList(self.session.queue, now=self._now, operator=operator, warning_seconds=window, id="queue")
        yield ItemDetail(now=self._now, operator=operator, zone=self._zone(), warning_seconds=window, id="detail")
        yield UndoBar(id="undo-bar").data_bind(prompt=QueueScreen.undo_prompt)
        status = StatusBar(id="status")
        status.set_reactive(StatusBar.operator, operator)
        yield status.data_bind(
            sources=QueueScreen.source_health,
            waiting=QueueScreen.unsynced,
            conflicts=QueueScreen.unseen_problems,
            now=QueueScreen.clock,
        )
        yield Footer(show_command_palette=False)  # `?` names ctrl+p; the decision keys need the room

    def on_unmount(self) -> None:
        self._ready = False

    def on_mount(self) -> None:
        self._ready = True
        field = self.query_one("#filter", FilterInput)
        field.display = False
        field.history = filter_history.load(self.session.data_dir)
        self.query_one("#filter-hint", Static).display = False
        self.query_one(QueueList).focus()
        # The bar names these keys, as the keymap has them.
        bar = self.query_one(QueueBar)
        bar.hint = hint(
            self.app, "{sort:1} sort · {group:1} group · {filter:1} filter · {toggle_mark:1} mark · {help:1} help"
        )
        marked = "{approve_marked:1} / {reject_marked:1} decide the marked · {clear_marks:1} unmarks · {help:1} help"
        bar.marked_hint = hint(self.app, marked)
        self._update_queue_bar()
        self.refresh_status()
        self.set_interval(0.25, self._update_undo_prompt)
        self.set_interval(1.0, self.refresh_status)

    @property
    def queue_list(self) -> QueueList:
        return self.query_one(QueueList)

    @property
    def view(self) -> QueueView:
        return self.session.queue.view

    def on_screen_suspend(self) -> None:
        # A dialog on top: this footer's keys do not work there, so it must not show through under the dialog.
        self.query_one(Footer).display = False

    def on_screen_resume(self) -> None:
        self.query_one(Footer).display = True

    # ------------------------------------------------------------ data flow
    def on_queue_changed(self, _message: QueueChanged) -> None:
        self.queue_changed()
        self.refresh_status()

    def on_outcomes_arrived(self, _message: OutcomesArrived) -> None:
        self.queue_changed()
        self.refresh_status()

    def queue_changed(self) -> None:
        """Storage changed (a poll, a decision, an outcome): re-read the queue, re-check the shown item."""
        if not self._ready:  # a poll can finish before the screen has composed
            return
        before = self.shown
        self.queue_list.refresh_rows()
        self._update_queue_bar()
        self._update_rank()
        if before is None:
            return
        found = self.session.item(before.source, before.id)
        if found is None or found[1] != "pending":
            return
        current = found[0]
        if current.digest != before.digest:
            self._changed_from = before  # what was on screen: the change is shown against it
            self._show(current, notice=_NOTICE_CHANGED, settle=True)
        elif current.claimed_by != before.claimed_by:  # outside the digest: the same version, a new holder
            if self._pass_over_taken(current):
                return
            self._show(current, notice=self.query_one(ItemDetail).notice)

    @on(QueueList.Highlighted)
    def _highlighted(self, event: QueueList.Highlighted) -> None:
        row: QueueRow | None = event.row
        auto, self._auto_move = self._auto_move, False
        if row is None and event.group is not None:
            self._show(None, empty=_collapsed_text(event.group.label, event.group.size))
            return
        if row is not None and self._moving_on:
            self._moving_on = False
            auto = True
            index = self._unclaimed_from(self.queue_list.cursor)
            if index is not None and index != self.queue_list.cursor:
                self._auto_move = True
                self.queue_list.move_to(index)  # its own Highlighted follows
                return
        self._auto_selected = (row.source, row.id) if auto and row is not None else None
        taken_by, self._taken_by = self._taken_by, None
        before = self.shown
        if row is not None and before is not None and (row.source, row.id) == (before.source, before.id):
            return
        found = None if row is None else self.session.item(row.source, row.id)
        # The operator moved, or decided here: no surprise. The item left by itself: say so, and hold the keys.
        why = None if before is None else self.session.removed_reason(before.source, before.id)
        notice = None
        if why is not None:
            template = _NOTICE_REPLACED if found else _NOTICE_EMPTIED
            notice = template.format(why=WHY_LEFT.get(why, "no longer listed by the source"))
        elif taken_by is not None:
            notice = _NOTICE_TAKEN.format(holder=taken_by)
        self._show(found[0] if found else None, notice=notice, settle=why is not None or taken_by is not None)

    def _follow_highlight(self) -> None:
        """Show the highlighted item now, so a new view's list and its detail reach the screen in one frame (the
        Highlighted message that follows then finds it shown). Moving on after a decision is left to the message."""
        row, shown = self.queue_list.highlighted, self.shown
        if self._moving_on or (row is None and shown is None):
            return
        if row is not None and shown is not None and (row.source, row.id) == (shown.source, shown.id):
            return
        self._highlighted(QueueList.Highlighted(row, self.queue_list, self.queue_list.header))

    def _pass_over_taken(self, current: Item) -> bool:
        """Moving on chose this item, and another console claimed it first (both opened on it at once): go on to
        the next one nobody holds, and say why. An item the operator went to with a key stays where it is."""
        holder = current.claimed_by
        if holder in (None, self.session.config.operator) or self._auto_selected != (current.source, current.id):
            return False
        index = self._unclaimed_from(self.queue_list.cursor)
        if index is None or index == self.queue_list.cursor:
            return False
        self._taken_by = holder
        self._auto_move = True
        self.queue_list.move_to(index)
        return True

    def _unclaimed_from(self, start: int, scan: int = 2_000) -> int | None:
        """The first row from `start` on (then from the top) that no other operator holds; None if all are held."""
        operator = self.session.config.operator
        count = self.queue_list.row_count
        page = QueueList.PAGE_SIZE
        for begin, end in ((start, count), (0, start)):
            offset = begin
            while offset < min(end, begin + scan):
                rows = self.session.queue.rows(offset, min(page, end - offset))
                for index, row in enumerate(rows):
                    if row.claimed_by in (None, operator):
                        return offset + index
                if not rows:
                    break
                offset += len(rows)
        return None

    @work(group="shown", exit_on_error=False)
    async def _note_shown(self, item: Item, when: datetime) -> None:
        """Kept durably too (off the UI thread): an item that expires undecided is labelled with when it was seen."""
        await self.session.mark_shown(item, when)

    def _show(
        self, item: Item | None, *, notice: str | None = None, settle: bool = False, empty: str | None = None
    ) -> None:
        """Show `item` in the detail (None: `empty`, or why the queue is empty) and claim it."""
        self.shown = item
        self.refresh_bindings()  # Approve or Accept, Edit or not
        if item is not None:
            # When the operator first saw this version: labels keep how long they took to decide.
            key = (item.source, item.id, item.digest)
            if key not in self._first_shown:
                self._first_shown[key] = now_utc()
                self._note_shown(item, self._first_shown[key])
            if len(self._first_shown) > _FIRST_SHOWN_KEPT:
                del self._first_shown[next(iter(self._first_shown))]  # the oldest: browsed, never decided
        if empty is None and self.queue_list.item_count == 0:
            empty = self._explain_empty()
        base = self._changed_from
        if base is not None and (item is None or (base.source, base.id) != (item.source, item.id)):
            base = self._changed_from = None  # another item: the change note belonged to the one left
        self.query_one(ItemDetail).show(item, notice=notice, empty=empty, changed_from=base)
        self._update_rank()
        if settle:
            self._hold(SETTLE_SECONDS, "The item just changed. Read it again, then decide.")
        self.session.set_open_item(item)  # claims it (and keeps the claim while it is open), lets go of the one before

    def _explain_empty(self) -> str:
        health = tuple(self.session.health().values())
        view = self.saved_views[self.active_view].name if self.saved_views and not self._typed.strip() else None
        keymap = getattr(self.app, "keys_in_force", {})
        empty = explain_empty(health, self.view.filter_text, self.session.pending_count, view, keymap)
        self.queue_list.set_empty_text(empty.short)
        self._empty_shown = empty.text
        return empty.text

    def _refresh_empty(self) -> None:
        """Sources go down and come back while the queue is empty: keep its explanation true."""
        lists = self.query(QueueList)
        if not lists or self.shown is not None or lists.first().item_count:  # torn down, or not empty
            return
        before = self._empty_shown
        text = self._explain_empty()
        if text != before:
            detail = self.query_one(ItemDetail)
            detail.show(None, notice=detail.notice, empty=text)

    def _update_rank(self) -> None:
        """The detail's why line: the shown item's place in the view, from the view's own order (one index walk)."""
        item = self.shown
        rank = None
        if item is not None:
            index = self.session.queue.index_of(item.source, item.id)
            if index is not None:
                view = self.view
                rank = Rank(index, self.session.queue.count(), view.rank_factors, view.describe())
        self.query_one(ItemDetail).show_rank(rank)

    def _hold(self, seconds: float, reason: str) -> None:
        self._settle_until = time.monotonic() + seconds
        self._settle_reason = reason

    def _update_filter_hint(self) -> None:
        """Under the filter: a `name:` that is no field, or a value its field does not take, is said and not applied."""
        hint = self.query_one("#filter-hint", Static)
        problems = self.view.filter.problems
        hint.display = bool(problems) and self.query_one("#filter", Input).display
        if problems:
            lines = [
                Content.assemble((one_line(p, 200), "bold $text-error"), (" — not applied", "$foreground-muted"))
                for p in problems
            ]
            hint.update(Content("\n").join(lines))

    def _update_queue_bar(self) -> None:
        self._update_filter_hint()
        self.queue_count = self.queue_list.item_count
        self.view_description = self.view.describe()
        self.filter_text = self.view.filter_text

    def refresh_status(self) -> None:
        """Read the sources' health and the sync backlog into the state the status bar is bound to."""
        if not self._ready or not self.query(StatusBar):  # not composed yet, or being torn down
            return
        health = tuple(self.session.health().values())
        backlog = self.session.backlog()
        self._tell_refused_credentials(health)
        self._refresh_empty()
        self.source_health = health
        self.unsynced = backlog.waiting
        self.unseen_problems = backlog.unseen_problems
        self.clock = self._now()

    def _tell_refused_credentials(self, health: tuple[SourceHealth, ...]) -> None:
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

    # ------------------------------------------------------------------ undo
    def _live_undoable(self) -> list[Undoable]:
        now = time.monotonic()
        self.undoable = [u for u in self.undoable if u.until > now]
        return self.undoable

    def _update_undo_prompt(self) -> None:
        live = self._live_undoable()
        if not live:
            self.undo_prompt = None
            return
        latest = live[-1]
        seconds = math.ceil(latest.until - time.monotonic())
        self.undo_prompt = UndoPrompt(latest.label, seconds, more=len(live) - 1, key=key_in_force(self.app, "undo"))

    def _zone(self) -> tzinfo | None:
        """The zone screens draw times in (the config's display_timezone; None: local). Storage keeps UTC."""
        return display_zone(self.session.config.display_timezone)
