"""Why the queue shows nothing, and what to do: a filter, sources that cannot be read, or truly nothing pending."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from console.tui.keymap import keys_text
from storage.records import SourceHealth
from widgets.safe_text import one_line
from widgets.status_bar import STATE_LABELS


@dataclass(frozen=True)
class EmptyQueue:
    short: str  # for the queue list itself
    text: str  # for the detail pane: the whole explanation


def explain_empty(
    health: Sequence[SourceHealth],
    filter_text: str,
    pending: Callable[[], int],
    view: str | None = None,
    keymap: Mapping[str, str] | None = None,
) -> EmptyQueue:
    """`pending()` counts the whole queue, whatever the filter (asked only when a filter is set). `view`: the saved
    view whose own filter is the one set (nothing typed): esc would not clear it, another view's key shows more.
    `keymap`: the keys in force (binding id -> "k1,k2"), which the advice names."""
    keymap = keymap or {}
    unread = [h for h in health if h.state not in ("up", "starting")]
    names = ", ".join(f"{one_line(h.name, 30)} ({STATE_LABELS.get(h.state, h.state)})" for h in unread)
    if view is not None and filter_text and (hidden := pending()) > 0:
        short = f"Nothing in the view {one_line(view, 30)}"
        return EmptyQueue(
            short,
            f"{short} ({hidden:,} pending item{'s' if hidden != 1 else ''} in other views)."
            + keys_text(" Press {view_1:1} to {view_9:1} for another view (the tabs on top).", keymap),
        )
    if filter_text and (hidden := pending()) > 0:
        short = "No item matches the filter"
        return EmptyQueue(
            short,
            f"{short} ({hidden:,} pending item{'s' if hidden != 1 else ''} hidden)."
            + keys_text(" Press {clear_filter:1} to clear the filter, or {filter:1} to change it.", keymap),
        )
    if health and len(unread) == len(health):
        short = "Nothing to show: no source can be read now"
        return EmptyQueue(
            short,
            f"{short}: {names}. The status bar says why; items appear here as soon as a source answers."
            " Nothing is lost: what waits at the sources is still there.",
        )
    if not any(h.state == "up" for h in health):
        return EmptyQueue("Waiting for the sources' first answer…", "Waiting for the sources' first answer…")
    if unread:
        return EmptyQueue(
            "Queue is empty here, but a source is down",
            f"Queue is empty, but {names} cannot be read: items waiting there are not shown. The status bar says why.",
        )
    return EmptyQueue(
        "Queue is empty",
        "Queue is empty: every source answered with nothing pending. New items appear here by themselves.",
    )
