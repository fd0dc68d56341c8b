"""The main screen: the queue and the selected item's detail (queue_screen.py), the keys that decide and undo and
open the other screens, and the item it was asked to open on (`approval-console open SOURCE/ITEM`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual import work
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel

from console.engine.deep_link import copyable
from console.engine.session import CHECKING, Session
from console.tui.screens.confirm import ConfirmCriticalScreen
from console.tui.screens.edit import EditScreen
from console.tui.screens.extend import ExtendScreen
from console.tui.screens.guard import ConfirmHolderScreen, RefusedScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.marking import MarkingScreen
from console.tui.screens.problems import ProblemsScreen
from console.tui.screens.queue_screen import WHY_LEFT, Undoable
from console.tui.screens.reject import Rejection, RejectScreen
from storage.db import DecisionRefused, StorageError, UndoRefused
from storage.records import Item, Risk, Verdict, second_approval_refusal
from widgets.badges import format_left
from widgets.queue_list import QueueList
from widgets.safe_text import clean
from widgets.timefmt import zoned_time

# After a decision the next item slides in; a second press this soon is a bounce or a double tap, not a decision.
REPEAT_GUARD_SECONDS = 0.4
_SWITCH_VIEW = "Switch to a saved view (the tabs on top)"
_PAST = {Verdict.approve: "Approved", Verdict.reject: "Rejected", Verdict.edit: "Edited and approved"}


class MainScreen(MarkingScreen):
    # Footer order is importance order: at 80 columns the decision keys, filter, help, problems and quit all fit.
    # Bindings share `a`, `r`, `e` and `esc`; check_action picks the one that fits (see there): with items marked,
    # `a` and `r` decide the marked ones (as k9s acts on its marks), else the item shown.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approve"),
        Binding("a", "accept", "Accept", id="accept"),  # an escalation's output is accepted, as the README says
        Binding("a", "approve_marked", "Approve marked", id="approve_marked"),
        Binding("r", "reject", "Reject", id="reject"),
        Binding("r", "reject_marked", "Reject marked", id="reject_marked"),
        Binding("e", "edit", "Edit", id="edit"),
        # `e` where edits are not allowed: says why, keeps keys safe
        Binding("e", "edit_refused", show=False, id="edit_refused"),
        Binding("u", "undo", "Undo", id="undo"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("p", "problems", "Problems", id="problems"),
        Binding("q", "app.quit", "Quit", id="quit"),
        # The queue bar names o, g, / and ?; `?` and ctrl+p list the rest.
        Binding("o", "sort", "Sort", show=False, id="sort"),
        Binding("g", "group", "Group", show=False, id="group"),
        Binding("G", "group_order", "Groups by name / most urgent first", show=False, id="group_order"),
        Binding("c", "toggle_group", "Collapse / expand group", show=False, id="toggle_group"),
        Binding("left", "collapse_group", "Collapse group", show=False, id="collapse_group"),
        Binding("right", "expand_group", "Expand group", show=False, id="expand_group"),
        # Marks for bulk work (marking.py). shift+arrows can be swallowed by a terminal: `v` does the same.
        Binding("space", "toggle_mark", "Mark or unmark, then move down", show=False, id="toggle_mark"),
        Binding("asterisk", "mark_all", "Mark all the view shows (again: unmark)", show=False, id="mark_all"),
        Binding("v", "mark_range", "Mark a range: v at one end, v at the other", show=False, id="mark_range"),
        Binding("shift+down", "mark_down", "Mark and move down", show=False, id="mark_down"),
        Binding("shift+up", "mark_up", "Mark and move up", show=False, id="mark_up"),
        Binding("escape", "clear_marks", "Unmark all", show=False, id="clear_marks"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("s", "stats", "Stats", show=False, id="stats"),
        Binding("h", "history", "History", show=False, id="history"),
        Binding("H", "source_health", "Source health", show=False, id="source_health"),
        Binding("y", "copy_link", "Copy the item's link", show=False, id="copy_link"),
        Binding("Y", "copy_id", "Copy the item's id", show=False, id="copy_id"),
        # Only where the item offers more time and no alert is on screen (check_action); else `x` dismisses alerts.
        Binding("x", "extend", "More time before the deadline", show=False, id="extend"),
        # The saved views (the tabs on top): one key each, so the config's [keymap] can move any of them.
        *(Binding(str(n), f"switch_view({n})", _SWITCH_VIEW, show=False, id=f"view_{n}") for n in range(1, 10)),
    ]

    def __init__(
        self, session: Session, now: Callable[[], float] = time.time, open_on: tuple[str, str] | None = None
    ) -> None:
        """`open_on` (source, item id): the cursor moves to that item once it is listed; if it is not pending once its
        source has answered, a notice says so."""
        super().__init__(session, now)
        self._open_on = open_on

    def queue_changed(self) -> None:
        super().queue_changed()
        self._seek_open_on()

    def refresh_status(self) -> None:
        super().refresh_status()
        self._seek_open_on()  # a source that answers with nothing new never reports a change

    def _seek_open_on(self) -> None:
        target = self._open_on
        if target is None or not self._ready:
            return
        index = self.session.queue.index_of(*target)
        if index is not None:
            self._open_on = None
            self._moving_on = False  # asked for by name: shown even when someone else holds it
            self.queue_list.move_to(index)
            return
        found = self.session.item(*target)
        health = self.session.health().get(target[0])
        if found is None and (health is None or health.last_ok_at is None):
            return  # its source has not answered yet: it may still be listed
        if found is not None and found[1] == "pending":
            return  # pending, hidden by the filter: found once the filter lets it through
        self._open_on = None
        source, item_id = target
        if found is None:
            why = f"{source} does not list it (gone before this console saw it, or no such item)"
        else:
            why = WHY_LEFT.get(self.session.removed_reason(source, item_id) or "", "it is no longer pending")
        self.app.bell()
        self.notify(
            clean(f"{source}/{item_id} is not pending: {why}.", multiline=False),
            title="Cannot open that item",
            severity="warning",
            timeout=30,
            markup=False,
        )

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
        marked = len(self.marks) > 0
        if action in ("approve_marked", "reject_marked"):
            return marked
        if action == "clear_marks":
            typing = self.focused is not None and self.focused.id == "filter"  # there `esc` leaves the filter
            return (marked or self._range_from is not None) and not typing
        if action == "reject":
            return not marked
        if action == "approve":
            return not escalation and not marked
        if action == "accept":
            return escalation and not marked
        if action == "edit":
            return editable
        if action == "edit_refused":
            return not editable
        if action == "extend":
            # Alerts on screen are dismissed by `x` first (the app's binding); with none, `x` gives more time.
            return item is not None and item.extendable_seconds > 0 and not self.query("Toast")
        return True

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
        if not self.session.database_checked:  # held until the integrity check passes; refused if it failed
            problem = self.session.database_problem
            why = f"Decisions are refused: {problem}" if problem else f"{CHECKING[0].upper()}{CHECKING[1:]}."
            self._refuse(verdict, why, typing=typing, severity="error" if problem else "warning")
            return None
        if not item.allows(verdict):
            allowed = ", ".join(v.value for v in item.allowed_decisions) or "nothing"
            self._refuse(
                verdict, f"The source does not allow {verdict.value} here (allowed: {allowed}).", typing=typing
            )
            return None
        twice = second_approval_refusal(item, self.session.config.operator, verdict)
        if twice is not None:  # a two-person item this operator already approved: never sent
            self._refuse(verdict, f"{twice[0].upper()}{twice[1:]}.", typing=typing, severity="warning")
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
            self._update_undo_prompt()
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
            for other in latest.batch:  # the rest of a bulk decision, taken back with it
                self.session.undo(other.id)
            decision = self.session.undo(latest.decision.id)
        except UndoRefused as exc:
            self.app.bell()
            self.notify(f"Cannot undo: {exc}.", severity="error", markup=False)
            self.queue_changed()
            return
        except (StorageError, OSError) as exc:
            self.app.bell()
            self.notify(f"Cannot undo, the database could not be written: {exc}", severity="error", markup=False)
            self.queue_changed()
            return
        self._update_undo_prompt()
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

    def action_extend(self) -> None:
        """More time before the shown item's deadline, where its source allows it (PROTOCOL.md section 10)."""
        item = self.shown
        if item is None or item.expires_at is None:
            return
        allowed = item.extendable_seconds
        if allowed <= 0:
            self.app.bell()
            self.notify("The source allows no more time for this item.", severity="warning", markup=False)
            return

        def chosen(seconds: int | None) -> None:
            if seconds is not None:
                self._extend(item, seconds)

        left = item.expires_at.timestamp() - self._now()
        title = f"{item.headline} ({item.agent})"
        self.app.push_screen(ExtendScreen(title, left, allowed), chosen)

    @work(group="extend", exclusive=True, exit_on_error=False)
    async def _extend(self, item: Item, seconds: int) -> None:
        answer = await self.session.extend(item, seconds)
        new = answer.item
        if new is None:
            self.app.bell()
            self.notify(clean(f"No more time: {answer.detail}.", multiline=False), severity="warning", markup=False)
            return
        if self.shown is not None and (self.shown.source, self.shown.id) == (item.source, item.id):
            # Our own change: the new version is shown as it is, without the "changed under you" hold.
            self._show(new, notice=f"Deadline moved {format_left(float(seconds))} later.")
        seen = self._first_shown.get((item.source, item.id, item.digest))
        if seen is not None:  # the time to decide counts from the first look, not from the extension
            self._first_shown[(new.source, new.id, new.digest)] = seen
        deadline = zoned_time(new.expires_at, self._zone()) if new.expires_at is not None else "none"
        self.notify(clean(f"More time for {item.headline}: deadline {deadline}.", multiline=False), markup=False)
        self.queue_changed()

    def action_problems(self) -> None:
        self.app.push_screen(ProblemsScreen(self.session, self._zone()), lambda _: self.refresh_status())

    def action_stats(self) -> None:
        from console.tui.screens.stats import StatsScreen

        self.app.push_screen(StatsScreen(self.session.store_path, now=self._now, zone=self._zone()))

    def action_history(self) -> None:
        from console.tui.screens.history import HistoryScreen

        auth = [h.name for h in self.session.health().values() if h.state == "auth"]
        self.app.push_screen(HistoryScreen(self.session.store_path, auth_refused=auth, zone=self._zone()))

    def action_source_health(self) -> None:
        from console.tui.screens.health import HealthScreen

        self.app.push_screen(HealthScreen(self.session, now=self._now, zone=self._zone()))

    def action_copy_link(self) -> None:
        self._copy(link=True)

    def action_copy_id(self) -> None:
        self._copy(link=False)

    def _copy(self, *, link: bool) -> None:
        """Through the clipboard escape (OSC 52): only our own printable ASCII, never the agent's raw text."""
        item = self.shown
        what = "link" if link else "id"
        if item is None:
            self.app.bell()
            self.notify(f"Nothing selected: no {what} to copy.", severity="warning", markup=False)
            return
        text = copyable(item.source, item.id, link=link)
        if text is None:
            self.app.bell()
            self.notify(f"Not copied: this item's {what} cannot be written as ASCII.", severity="error", markup=False)
            return
        self.app.copy_to_clipboard(text)
        encoded = " (percent-encoded: the id holds characters a clipboard should not carry)" if text != item.id else ""
        self.notify(f"Copied the {what}: {text}{encoded if not link else ''}", markup=False, timeout=4)
