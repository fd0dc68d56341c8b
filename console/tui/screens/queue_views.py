"""What the queue lists and in what order: sort, grouping and collapsed groups, the typed filter (with its history), and
the saved views as tabs with their live counts. A layer of the main screen, as marks are (marking.py): the queue
screen (queue_screen.py) shows the list these choose, and the main screen binds the keys (main.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from textual import on, work
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

from console.engine import filter_history
from console.engine.session import Session
from console.engine.views import ViewCounts
from console.tui.keymap import hint
from console.tui.screens.queue_screen import QueueScreen
from storage.queue import Grouping, GroupOrder, QueueView, SortOrder
from widgets.filter_input import FilterInput
from widgets.view_tabs import ViewTab

# The saved views' counts are found at most this often, in a worker thread: a burst of changes is counted once, and
# no key waits for a count (at 100k items each is one index or full-text count).
RECOUNT_SECONDS = 0.5
_SORTS = tuple(SortOrder)
_GROUPINGS = tuple(Grouping)
_GROUP_ORDER_WORDS = {GroupOrder.name: "by name", GroupOrder.urgency: "most urgent first"}


def _next(values: tuple[Any, ...], current: Any) -> Any:
    return values[(values.index(current) + 1) % len(values)]


class QueueViewsScreen(QueueScreen):
    """The queue screen plus the keys that change its view, and the saved views' counts on their tabs."""

    def __init__(self, session: Session, now: Callable[[], float] = time.time) -> None:
        super().__init__(session, now)
        self._view_counts = ViewCounts(session.store_path, self.saved_views)
        self._counts_stale = True
        self._counting = False

    # Textual runs every class's on_mount and on_unmount, the queue screen's too: no super() call.
    def on_mount(self) -> None:
        self.set_interval(RECOUNT_SECONDS, self._recount_views)  # the first count too: after the first paint

    def on_unmount(self) -> None:
        self._view_counts.close()

    def queue_changed(self) -> None:
        if self._ready:
            self._counts_stale = True  # counted at the next tick, off this path
        super().queue_changed()

    # ------------------------------------------------------ order and filter
    def _apply_view(self, view: QueueView) -> None:
        self.session.queue.view = view
        self.queue_list.refresh_rows()  # keeps the cursor on the same item when the new view holds it
        self._follow_highlight()
        self._update_queue_bar()
        self._update_rank()
        self._refresh_empty()  # a filter typed into an empty view changes why it is empty

    def action_sort(self) -> None:
        self._apply_view(replace(self.view, order=_next(_SORTS, self.view.order)))

    def action_group(self) -> None:
        # Collapsed groups were groups of the grouping left: none of the next one starts collapsed.
        self._apply_view(replace(self.view, grouping=_next(_GROUPINGS, self.view.grouping), collapsed=frozenset()))

    def action_group_order(self) -> None:
        order = GroupOrder.name if self.view.group_order is GroupOrder.urgency else GroupOrder.urgency
        self._apply_view(replace(self.view, group_order=order))
        if self.view.grouping is Grouping.none:
            grouped = hint(self.app, "once grouped ({group:1})")
            self.notify(f"Groups will come {_GROUP_ORDER_WORDS[order]} {grouped}.", markup=False, timeout=3)

    def action_toggle_group(self) -> None:
        """Collapse the group under the cursor, or expand it if it is collapsed."""
        group = self.queue_list.current_group
        if group is None:
            why = hint(self.app, "The queue is not grouped: {group:1} groups it by source or by agent.")
            self.notify(why, markup=False, timeout=3)
            return
        self._apply_view(self.view.toggled(group.label))

    def action_collapse_group(self) -> None:
        group = self.queue_list.current_group
        if group is not None and not group.collapsed:
            self._apply_view(self.view.toggled(group.label))

    def action_expand_group(self) -> None:
        group = self.queue_list.current_group
        if group is not None and group.collapsed:
            self._apply_view(self.view.toggled(group.label))

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter", Input)
        if not field.display and not self._typed:
            return
        field.value = ""  # Input.Changed applies the empty filter
        field.display = False
        self.query_one("#filter-hint", Static).display = False
        self._typed = ""
        self._apply_view(replace(self.view, filter_text=self._refined("")))
        self.queue_list.focus()

    def _refined(self, typed: str) -> str:
        """The filter in force: the active saved view's, then what the operator typed (every term must hold)."""
        base = self.saved_views[self.active_view].view.filter_text if self.saved_views else ""
        return f"{base} {typed}" if base and typed.strip() else base or typed

    @on(Input.Changed, "#filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        if event.value != self._typed:
            self._typed = event.value
            self._apply_view(replace(self.view, filter_text=self._refined(event.value)))

    @on(Input.Submitted, "#filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        field = self.query_one("#filter", FilterInput)
        if field.remember(event.value):  # up and down in the field bring it back, after a restart too
            filter_history.save(self.session.data_dir, field.history)
        field.display = bool(event.value)  # an active filter stays in sight
        self.queue_list.focus()

    # ----------------------------------------------------------- saved views
    def action_switch_view(self, number: int) -> None:
        """Key `number`: the saved view's order, grouping and filter (refined by what is typed in the filter)."""
        if not 1 <= number <= len(self.saved_views):
            self.notify(
                f"No view {number}: there are {len(self.saved_views)} (the config's [[views]] blocks).",
                severity="warning",
                timeout=4,
                markup=False,
            )
            return
        self.active_view = number - 1
        saved = self.saved_views[self.active_view].view
        self._apply_view(QueueView(saved.order, saved.grouping, self._refined(self._typed)))

    def _recount_views(self) -> None:
        """Count the saved views again if the queue changed since the last count, in a thread (never on a key)."""
        if not self._counts_stale or self._counting or not self.saved_views:
            return
        self._counts_stale = False
        self._counting = True
        self._count_views()

    @work(thread=True, group="view-counts", exit_on_error=False)
    def _count_views(self) -> tuple[int, ...] | None:
        return self._view_counts.count()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "view-counts" or not event.worker.is_finished:
            return
        self._counting = False
        counts = event.worker.result if event.state is WorkerState.SUCCESS else None
        if counts is None:  # closed, or the database could not be read now: counted again at the next change
            return
        self.view_tabs = tuple(ViewTab(saved.name, n) for saved, n in zip(self.saved_views, counts, strict=True))
