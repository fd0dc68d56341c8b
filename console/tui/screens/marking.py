"""Marking items for bulk work, and deciding the marked ones: space marks, `*` marks all the view holds, `v` marks
a range, `esc` unmarks; `a` / `r` with marks approve or reject them all after one confirmation (or one reason).

Marks live here, in memory, keyed by (source, id) with the digest seen when marked (console/engine/marks.py). A bulk
decision is planned first (which are skipped, and why), then each item is recorded through `Session.decide`, the
single decisions' path: its own decision, audit record and label. High and critical items are never bulk-approved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual import work
from textual.notifications import SeverityLevel

from console.engine.marks import BulkPlan, Marks, Skipped, plan_bulk
from console.engine.session import CHECKING, Session
from console.tui.keymap import hint
from console.tui.screens.bulk import BulkConfirmScreen, items_word, skipped_lines
from console.tui.screens.queue_screen import Undoable
from console.tui.screens.queue_views import QueueViewsScreen
from console.tui.screens.reject import Rejection, RejectScreen
from storage.db import DecisionRefused, StorageError
from storage.records import Decision, Verdict
from widgets.safe_text import clean

_PAST = {Verdict.approve: "Approved", Verdict.reject: "Rejected"}
_YIELD_EVERY = 20  # decisions recorded between two frames, so a long bulk never freezes the screen
_NOTICE_LISTED = 5  # skipped items named in the notice after a bulk decision
_AFTER_BULK = 0.4  # as after a single decision (main.REPEAT_GUARD_SECONDS): a doubled key does not decide the next


class MarkingScreen(QueueViewsScreen):
    """The queue screen plus marks and bulk decisions; the main screen binds the keys (main.py)."""

    def __init__(self, session: Session, now: Callable[[], float] = time.time) -> None:
        super().__init__(session, now)
        self.marks = Marks()
        self._range_from: tuple[str, str] | None = None  # where `v` started a range
        self._bulk_running = False

    # ------------------------------------------------------------------ marks
    def _marks_changed(self) -> None:
        self.queue_list.show_marks(self.marks)
        self.marked_count = len(self.marks)
        self.refresh_bindings()  # `a` / `r` act on the marks while there are any

    def queue_changed(self) -> None:
        # Marks of items that left the queue (decided, expired, withdrawn) vanish; a changed item keeps its mark
        # with the digest seen when marked, so a bulk approve skips it.
        if self._ready and len(self.marks) and self.marks.keep_pending(self.session.queue.pending_digests):
            self._marks_changed()
        super().queue_changed()

    def _cursor_row(self) -> tuple[str, str, str] | None:
        """(source, id, digest) of the highlighted item: the digest of the version shown in the detail."""
        row = self.queue_list.highlighted
        if row is None:
            return None
        shown = self.shown
        if shown is not None and (shown.source, shown.id) == (row.source, row.id):
            return row.source, row.id, shown.digest
        found = self.session.item(row.source, row.id)
        return None if found is None else (row.source, row.id, found[0].digest)

    def action_toggle_mark(self) -> None:
        row = self._cursor_row()
        if row is None:
            self.app.bell()
            return
        self.marks.toggle(row[:2], row[2])
        self._marks_changed()
        self.queue_list.action_cursor_down()  # the next one, as in file managers: space, space, space

    def _mark_moving(self, step: int) -> None:
        """shift+down / shift+up: mark the highlighted item, move, mark the next one (a range grows as you go)."""
        before = self._cursor_row()
        if before is None:
            self.app.bell()
            return
        self.marks.mark([before])
        self.queue_list.move_to(self.queue_list.cursor + step)
        after = self.queue_list.highlighted
        if after is not None:
            self.marks.mark(self._digests([(after.source, after.id)]))
        self._marks_changed()

    def action_mark_down(self) -> None:
        self._mark_moving(1)

    def action_mark_up(self) -> None:
        self._mark_moving(-1)

    def _digests(self, keys: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        current = self.session.queue.pending_digests(keys)
        return [(*key, current[key]) for key in keys if key in current]

    def action_mark_all(self) -> None:
        """Every item the view holds (after a filter: its matches) is marked; pressed again, they are unmarked."""
        rows = self.session.queue.visible_digests()
        if not rows:
            self.app.bell()
            return
        if not self.marks.mark(rows):
            self.marks.unmark((source, item_id) for source, item_id, _ in rows)
        self._marks_changed()

    def action_mark_range(self) -> None:
        """`v` starts a range at the highlighted item; `v` again marks every row from there to the highlighted one."""
        row = self.queue_list.highlighted
        if row is None:
            self.app.bell()
            return
        start, self._range_from = self._range_from, None
        if start is None:
            self._range_from = (row.source, row.id)
            self.notify(
                hint(self.app, "Range starts here: move, then {mark_range:1} marks every row from here to there."),
                markup=False,
            )
            return
        first = self.session.queue.index_of(*start)
        if first is None:
            self.app.bell()
            self.notify(
                hint(self.app, "The item the range started on left the view; press {mark_range:1} to start again."),
                markup=False,
            )
            return
        low, high = sorted((first, self.queue_list.cursor))
        rows = self.session.queue.rows(low, high - low + 1)
        self.marks.mark(self._digests([(r.source, r.id) for r in rows]))
        self._marks_changed()

    def action_clear_marks(self) -> None:
        self._range_from = None
        if self.marks.clear():
            self._marks_changed()

    # --------------------------------------------------------- bulk decisions
    def _plan(self, verdict: Verdict) -> BulkPlan | None:
        """The plan for deciding the marks with `verdict`, or None (said why) when nothing can be decided now."""
        why = None
        if self._bulk_running:
            why = "A bulk decision is still being recorded."
        elif not self.session.database_checked:
            problem = self.session.database_problem
            why = f"Decisions are refused: {problem}" if problem else f"{CHECKING[0].upper()}{CHECKING[1:]}."
        if why is not None:
            self.app.bell()
            self.notify(why, severity="warning", markup=False)
            return None
        plan = plan_bulk(self.marks, verdict, self.session.item, self.session.config.operator)
        if not plan.decide:
            self.app.bell()
            self.notify(
                clean(f"Nothing to {verdict.value}: {_skipped_text(plan.skipped)}", multiline=False),
                title=f"All {items_word(len(plan.skipped))} marked are skipped",
                severity="warning",
                timeout=12,
                markup=False,
            )
            return None
        return plan

    def action_approve_marked(self) -> None:
        plan = self._plan(Verdict.approve)
        if plan is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:  # cancelled: nothing recorded, the marks stay
                self._record_marked(plan, {})

        self.app.push_screen(BulkConfirmScreen(plan, "Approve"), confirmed)

    def action_reject_marked(self) -> None:
        plan = self._plan(Verdict.reject)
        if plan is None:
            return

        def done(rejection: Rejection | None) -> None:
            if rejection is not None:
                self._record_marked(plan, {"reason_code": rejection.reason_code, "comment": rejection.comment})

        title = f"{items_word(len(plan.decide))} marked"
        if plan.skipped:
            title += f" ({len(plan.skipped):,} skipped: {_skipped_text(plan.skipped, 1)})"
        self.app.push_screen(RejectScreen(title, self.session.config.reject_reasons), done)

    @work(group="bulk", exit_on_error=False)
    async def _record_marked(self, plan: BulkPlan, details: dict[str, Any]) -> None:
        """Each planned item through `Session.decide`, as a single decision would be; one notice at the end."""
        self._bulk_running = True
        recorded: list[Decision] = []
        skipped = list(plan.skipped)
        failure = None
        try:
            for number, item in enumerate(plan.decide, start=1):
                first_shown_at = self._first_shown.pop((item.source, item.id, item.digest), None)
                try:
                    recorded.append(self.session.decide(item, plan.verdict, first_shown_at=first_shown_at, **details))
                except DecisionRefused as exc:  # it changed or left while the dialog was open
                    skipped.append(Skipped((item.source, item.id), item.headline, f"not recorded: {exc}"))
                except (StorageError, OSError) as exc:  # full or read-only disk: stop, say so
                    failure = f"the database could not be written: {exc}"
                    break
                if number % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self._bulk_running = False
        self.marks.clear()
        self._range_from = None
        self._marks_changed()
        self._after_bulk(plan.verdict, recorded, skipped, failure)

    def _after_bulk(
        self, verdict: Verdict, recorded: list[Decision], skipped: list[Skipped], failure: str | None
    ) -> None:
        label = f"{_PAST[verdict]} {items_word(len(recorded))} marked"
        window = self.session.config.undo_seconds
        if recorded and window > 0:
            # One `u` takes the whole bulk back while its window lasts.
            self.undoable.append(Undoable(recorded[-1], time.monotonic() + window, label, tuple(recorded[:-1])))
            self._update_undo_prompt()
        text = f"{label}, each recorded on its own." if recorded else "Nothing was recorded."
        if skipped:
            text += f" Skipped {len(skipped):,}: {_skipped_text(skipped)}"
        if failure:
            text += f" Stopped: {failure}"
        if skipped or failure:
            self.app.bell()
        severity: SeverityLevel = "error" if failure else "warning" if skipped else "information"
        self.notify(clean(text, multiline=False), severity=severity, timeout=12 if skipped else 4, markup=False)
        self._moving_on = True  # the next item slides in: not one someone else holds
        self.queue_changed()
        self._hold(_AFTER_BULK, "That was a key press right after a bulk decision; press again to decide.")
        self.refresh_status()


def _skipped_text(skipped: list[Skipped] | tuple[Skipped, ...], listed: int = _NOTICE_LISTED) -> str:
    return "; ".join(skipped_lines(skipped, listed, width=90)) + "."
