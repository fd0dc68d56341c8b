"""The main screen: the queue (most urgent first), the selected item's detail, the status bar, the decision keys."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from console.engine.session import Session
from console.tui.screens.confirm import ConfirmCriticalScreen
from console.tui.screens.edit import EditScreen
from console.tui.screens.guard import ConfirmHolderScreen, RefusedScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.problems import ProblemsScreen
from console.tui.screens.reject import Rejection, RejectScreen
from storage.db import DecisionRefused, StorageError, UndoRefused
from storage.queue import FILTER_FIELDS, Grouping, QueueView, SortOrder
from storage.records import Decision, Item, QueueRow, Risk, SourceHealth, Verdict, now_utc
from widgets.detail import ItemDetail
from widgets.queue_list import QueueList
from widgets.safe_text import clean, one_line
from widgets.status_bar import STATE_LABELS, StatusBar
from widgets.timefmt import display_zone

# After the shown item changes by itself (a new version, or it left the queue and the next one slid in), decision keys
# wait this long, so a key meant for what the operator was reading cannot land on something else.
SETTLE_SECONDS = 1.5
# After a decision the next item slides in; a second press this soon is a bounce or a double tap, not a decision.
REPEAT_GUARD_SECONDS = 0.4
_FIRST_SHOWN_KEPT = 10_000
_NOTICE_CHANGED = "This item changed while you were viewing it. Read it again before deciding."
_NOTICE_REPLACED = "The item you were viewing left the queue ({why}); this is the next one."
_NOTICE_EMPTIED = "The item you were viewing left the queue ({why})."
_NOTICE_TAKEN = "{holder} claimed the item that came next a moment before you; this is the next one nobody holds."
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
    # Footer order is importance order: at 80 columns the decision keys, filter, help, problems and quit all fit.
    # Two bindings share `a` and `e`; check_action picks the one that fits the item shown (see there).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("a", "accept", "Accept"),  # an escalation's output is accepted, as the README says
        Binding("r", "reject", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("e", "edit_refused", show=False),  # `e` where edits are not allowed: says why, keeps keys safe
        Binding("u", "undo", "Undo"),
        Binding("slash", "filter", "Filter"),
        Binding("question_mark", "help", "Help"),
        Binding("p", "problems", "Problems"),
        Binding("q", "app.quit", "Quit"),
        # The queue bar names o, g, / and ?; `?` and ctrl+p list the rest.
        Binding("o", "sort", "Sort", show=False),
        Binding("g", "group", "Group", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "stats", "Stats", show=False),
        Binding("h", "history", "History", show=False),
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
        self._empty_shown = ""  # the empty-queue explanation on screen, so a tick re-renders only on a change
        # The selection moves on by itself (the first item shown, the next one after a decision): it passes over
        # items another operator holds, so two consoles on one queue do not both land on the same item.
        self._moving_on = True
        self._auto_move = False  # the next highlight is one the screen moved to by itself
        self._auto_selected: tuple[str, str] | None = None  # the item shown was chosen by moving on, not by a key
        self._taken_by: str | None = None  # who claimed the item moving on had chosen, before we could
        self._changed_from: Item | None = None  # the version on screen before the shown item changed under it

    def compose(self) -> ComposeResult:
        operator = self.session.config.operator
        yield Static(id="queue-bar")
        yield Input(placeholder="filter: words, agent:NAME, action:NAME, source:NAME, risk:high …", id="filter")
        yield Static(id="filter-hint")
        yield QueueList(self.session.queue, now=self._now, operator=operator, id="queue")
        yield ItemDetail(now=self._now, operator=operator, zone=self._zone(), id="detail")
        yield Static(id="undo-bar")
        yield StatusBar(id="status")
        yield Footer(show_command_palette=False)  # `?` names ctrl+p; the decision keys need the room

    def on_unmount(self) -> None:
        self._ready = False

    def on_mount(self) -> None:
        self._ready = True
        self.query_one("#filter", Input).display = False
        self.query_one("#filter-hint", Static).display = False
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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers what fits the item shown: Accept for an escalation, Edit only where edits are allowed.

        False hides a binding and lets the key fall through to the next one for it: `e` on an item without edits
        reaches `edit_refused`, which says why instead of doing nothing.
        """
        item = self.shown
        escalation = item is not None and item.kind == "escalation"
        editable = item is not None and item.allows(Verdict.edit)
        if action == "approve":
            return not escalation
        if action == "accept":
            return escalation
        if action == "edit":
            return editable
        if action == "edit_refused":
            return not editable
        return True

    def on_screen_suspend(self) -> None:
        # A dialog on top: this footer's keys do not work there, so it must not show through under the dialog.
        self.query_one(Footer).display = False

    def on_screen_resume(self) -> None:
        self.query_one(Footer).display = True

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
        found = self.session.store.items.get(before.source, before.id)
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
        found = None if row is None else self.session.store.items.get(row.source, row.id)
        # The operator moved, or decided here: no surprise. The item left by itself: say so, and hold the keys.
        why = None if before is None else self.session.store.items.removed_reason(before.source, before.id)
        notice = None
        if why is not None:
            template = _NOTICE_REPLACED if found else _NOTICE_EMPTIED
            notice = template.format(why=_WHY_LEFT.get(why, "no longer listed by the source"))
        elif taken_by is not None:
            notice = _NOTICE_TAKEN.format(holder=taken_by)
        self._show(found[0] if found else None, notice=notice, settle=why is not None or taken_by is not None)

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

    def _show(self, item: Item | None, *, notice: str | None = None, settle: bool = False) -> None:
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
        empty = self._explain_empty() if self.queue_list.row_count == 0 else None
        base = self._changed_from
        if base is not None and (item is None or (base.source, base.id) != (item.source, item.id)):
            base = self._changed_from = None  # another item: the change note belonged to the one left
        self.query_one(ItemDetail).show(item, notice=notice, empty=empty, changed_from=base)
        if settle:
            self._hold(SETTLE_SECONDS, "The item just changed. Read it again, then decide.")
        if item is not None and (
            self._claimed is None or (self._claimed.source, self._claimed.id) != (item.source, item.id)
        ):
            self._claim(item, self._claimed)
            self._claimed = item

    def _explain_empty(self) -> str:
        """Why the queue shows nothing, and what to do: a filter, sources that cannot be read, or truly nothing."""
        store = self.session.store
        health = list(self.session.poller.health.values())
        unread = [h for h in health if h.state not in ("up", "starting")]
        names = ", ".join(f"{one_line(h.name, 30)} ({STATE_LABELS.get(h.state, h.state)})" for h in unread)
        if self.view.filter_text and (pending := store.queue.count()) > 0:
            short = "No item matches the filter"
            text = (
                f"{short} ({pending:,} pending item{'s' if pending != 1 else ''} hidden)."
                " Press esc to clear the filter, or / to change it."
            )
        elif health and len(unread) == len(health):
            short = "Nothing to show: no source can be read now"
            text = (
                f"{short}: {names}. The status bar says why; items appear here as soon as a source answers."
                " Nothing is lost: what waits at the sources is still there."
            )
        elif not any(h.state == "up" for h in health):
            short = text = "Waiting for the sources' first answer…"
        elif unread:
            short = "Queue is empty here, but a source is down"
            text = (
                f"Queue is empty, but {names} cannot be read: items waiting there are not shown."
                " The status bar says why."
            )
        else:
            short = "Queue is empty"
            text = "Queue is empty: every source answered with nothing pending. New items appear here by themselves."
        self.queue_list.set_empty_text(short)
        self._empty_shown = text
        return text

    def _refresh_empty(self) -> None:
        """Sources go down and come back while the queue is empty: keep its explanation true."""
        lists = self.query(QueueList)
        if not lists or self.shown is not None or lists.first().row_count:  # torn down, or not empty
            return
        before = self._empty_shown
        text = self._explain_empty()
        if text != before:
            detail = self.query_one(ItemDetail)
            detail.show(None, notice=detail.notice, empty=text)

    @work(group="shown", exit_on_error=False)
    async def _note_shown(self, item: Item, when: datetime) -> None:
        await self.session.mark_shown(item, when)

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
        self._refresh_empty()  # a filter typed into an empty view changes why it is empty

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
        self.query_one("#filter-hint", Static).display = False
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

    def _update_filter_hint(self) -> None:
        """Under the filter: a `name:` that is no field is said, not silently matched as a word."""
        hint = self.query_one("#filter-hint", Static)
        unknown = self.view.filter.unknown
        hint.display = bool(unknown) and self.query_one("#filter", Input).display
        if unknown:
            names = ", ".join(f"{one_line(name, 30)}:" for name in unknown)
            hint.update(
                Content.assemble(
                    (f"unknown field {names}", "bold $text-warning"),
                    (" (matched as a plain word); fields: ", "$foreground-muted"),
                    (", ".join(f"{name}:" for name in FILTER_FIELDS), "$foreground-muted"),
                )
            )

    def _update_queue_bar(self) -> None:
        self._update_filter_hint()
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
        self._refresh_empty()
        bars.first().update_status(
            health,
            waiting=store.outbox.waiting_count(),
            conflicts=store.outbox.unseen_problem_count(),
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
    def _decidable(self, verdict: Verdict, *, typing: bool = False) -> Item | None:
        """The item shown, if `verdict` may be recorded on it now; else says why and returns None.

        `typing`: the action would have opened a dialog to type in (an edit, a reject comment, a critical item's
        confirmation word). Its refusal is a dialog that takes the keys typed next, so they cannot run as commands.
        """
        item = self.shown
        if item is None:
            self._refuse(verdict, "Nothing selected.", typing=typing, severity="warning")
            return None
        if time.monotonic() < self._settle_until:
            self._refuse(verdict, self._settle_reason, typing=typing, severity="warning")
            return None
        if not item.allows(verdict):
            allowed = ", ".join(v.value for v in item.allowed_decisions) or "nothing"
            self._refuse(
                verdict, f"The source does not allow {verdict.value} here (allowed: {allowed}).", typing=typing
            )
            return None
        return item

    def _refuse(self, verdict: Verdict, reason: str, *, typing: bool, severity: SeverityLevel = "information") -> None:
        self.app.bell()
        if typing:
            self.app.push_screen(RefusedScreen(f"{verdict.value.capitalize()}: not possible now", reason))
        else:
            self.notify(reason, severity=severity, markup=False)

    def _check_holder(self, item: Item, verb: str, then: Callable[[], object]) -> None:
        """Someone else holds a claim on the item: ask, naming them, before deciding it (claims are advisory)."""
        holder = item.claimed_by
        if not holder or holder == self.session.config.operator:
            then()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                then()
            else:
                self.notify(clean(f"Left to {holder}: nothing was recorded.", multiline=False), markup=False, timeout=3)

        what = f"{item.headline} ({item.agent})"
        self.app.push_screen(ConfirmHolderScreen(holder, verb, what), answered)

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
        past = "Accepted" if verdict is Verdict.approve and item.kind == "escalation" else _PAST[verdict]
        label = clean(f"{past}: {item.headline} ({item.agent})", multiline=False)
        window = self.session.config.undo_seconds
        if window > 0:
            self.undoable.append(Undoable(decision, time.monotonic() + window, label))
            self._update_undo_bar()
        else:
            self.notify(f"{label}. Syncing.", markup=False, timeout=3)
        self._moving_on = True  # the next item slides in: not one someone else holds
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
        shown = self.shown
        item = self._decidable(Verdict.approve, typing=shown is not None and shown.risk is Risk.critical)
        if item is not None:
            verb = "Accept" if item.kind == "escalation" else "Approve"
            self._check_holder(
                item, verb, lambda: self._confirm_critical(item, verb, lambda: self._record(item, Verdict.approve))
            )

    def action_accept(self) -> None:
        self.action_approve()  # the same decision: the escalation's output is approved as it is

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
        # The app's own keys and those of the classes it builds on (dismissing alerts), but not Textual's defaults.
        ours = [cls for cls in type(self.app).__mro__ if cls.__module__.startswith("console.")]
        app_bindings = [b for cls in ours for b in vars(cls).get("BINDINGS", ()) if isinstance(b, Binding)]
        palette = Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette", "Command palette: find any action")
        sections: list[tuple[str, list[BindingType]]] = [
            ("Queue and decisions", list(self.all_bindings())),
            ("Moving in the queue (the mouse works too)", list(QueueList.BINDINGS)),
            ("Anywhere", [*app_bindings, palette]),
        ]
        self.app.push_screen(HelpScreen(sections))

    def action_reject(self) -> None:
        item = self._decidable(Verdict.reject, typing=True)
        if item is None:
            return

        def done(rejection: Rejection | None) -> None:
            if rejection is not None:
                self._record(item, Verdict.reject, reason_code=rejection.reason_code, comment=rejection.comment)

        title = f"{item.headline} ({item.agent})"
        self._check_holder(
            item, "Reject", lambda: self.app.push_screen(RejectScreen(title, self.session.config.reject_reasons), done)
        )

    def action_edit(self) -> None:
        item = self._decidable(Verdict.edit, typing=True)
        if item is None:
            return

        def done(value: Any) -> None:
            if value is not EditScreen.CANCELLED:
                self._confirm_critical(item, "Edit and approve", lambda: self._record(item, Verdict.edit, edited=value))

        self._check_holder(item, "Edit", lambda: self.app.push_screen(EditScreen(item), done))

    def action_edit_refused(self) -> None:
        self.action_edit()  # refused with its reason (check_action routes `e` here only when edit is not allowed)

    def action_problems(self) -> None:
        self.app.push_screen(ProblemsScreen(self.session.store, self._zone()), lambda _: self.refresh_status())

    def action_stats(self) -> None:
        from console.tui.screens.stats import StatsScreen

        self.app.push_screen(StatsScreen(self.session.store.path, now=self._now, zone=self._zone()))

    def action_history(self) -> None:
        from console.tui.screens.history import HistoryScreen

        auth = [h.name for h in self.session.poller.health.values() if h.state == "auth"]
        self.app.push_screen(HistoryScreen(self.session.store.path, auth_refused=auth, zone=self._zone()))

    def _zone(self) -> tzinfo | None:
        """The zone screens draw times in (the config's display_timezone; None: local). Storage keeps UTC."""
        return display_zone(self.session.config.display_timezone)
