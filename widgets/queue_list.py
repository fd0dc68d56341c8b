"""The virtual queue list: one line per pending item, painted on demand, fed by SQL through a RowProvider.

Only the lines on screen are rendered (`render_line`), and rows are fetched in pages of `PAGE_SIZE` around
them, so 100,000 items cost what one screen costs. The provider owns order and filter (it runs SQL); the list
owns the cursor, the viewport and the paint.

The column header is line 0 of the widget itself: `render_line(0)` always paints it, whatever the scroll
offset, so it stays put and shares the list's width (and so its column layout) with the rows.

When the provider groups its rows (`GroupedRowProvider`: rows come ordered by group, and `groups()` says how many
each holds), a header line opens each group. Header lines are not rows: the cursor skips them, and the mapping
between row indexes and lines is a bisect over the groups' first rows, so it costs nothing per row.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar, Final, Protocol, runtime_checkable

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from storage.records import KIND_LABELS, QueueRow

from .approvals import approvals_mark
from .badges import (
    CONFIDENCE_WIDTH,
    METER_CELLS,
    RISK_WIDTH,
    TIME_WIDTH,
    URGENT_SECONDS,
    confidence_text,
    format_age,
    format_left,
    is_low_confidence,
    risk_label,
)
from .contrast import readable
from .safe_text import one_line

__all__ = ["GroupedRowProvider", "QueueList", "RowKey", "RowProvider"]

RowKey = tuple[str, str]  # (source, item id): what "the same item" means across refreshes

_ROW_META: Final = "queue_row"  # style meta key carrying the row index, read back on click
_KIND_WIDTH: Final = max(4, *(len(label) for label in KIND_LABELS.values()))  # the labels `kind:` accepts
_WIDE: Final = 72  # below this width the confidence meter shrinks to its number
_CLAIM_WIDTH: Final = 9  # "⚑ bob" : who else holds a claim on the item
_CLAIM_MARK: Final = "⚑ "
# In the LEFT column: the deadline is inside the warning window; the agent approves by itself when nobody decides.
NEAR_MARK: Final = "⚠"
SELF_APPROVES_MARK: Final = "✔"
_MARKED: Final = "●"  # marked for bulk work: one cell right of the cursor's ">"


class RowProvider(Protocol):
    """Where the list gets its rows. Implemented by the app over SQLite; must be cheap for small `limit`."""

    def count(self) -> int:
        """How many rows the current order/filter holds."""
        ...

    def rows(self, offset: int, limit: int) -> Sequence[QueueRow]:
        """Rows `offset .. offset+limit-1` in display order (sorted and filtered by the provider)."""
        ...

    def index_of(self, source: str, item_id: str) -> int | None:
        """Position of an item in the current order, or None when it is not in it."""
        ...


@runtime_checkable
class GroupedRowProvider(RowProvider, Protocol):
    """A provider whose rows come in groups: `groups()` lists (label, row count) in display order, or nothing."""

    def groups(self) -> Sequence[tuple[str, int]]: ...


@dataclass(frozen=True)
class _Layout:
    """Column widths for one list width. Columns are separated by one space."""

    width: int
    meter: bool  # the full "▰▰▱▱▱ 0.41" meter, or just "0.41"
    agent: int
    action: int

    @property
    def confidence(self) -> int:
        return CONFIDENCE_WIDTH if self.meter else 4

    @classmethod
    def for_width(cls, width: int) -> _Layout:
        meter = width >= _WIDE
        confidence = CONFIDENCE_WIDTH if meter else 4
        # marker, mark, risk, confidence, kind, agent, action, claim, age, left + 8 separators
        fixed = 2 + RISK_WIDTH + confidence + _KIND_WIDTH + _CLAIM_WIDTH + TIME_WIDTH + TIME_WIDTH + 8
        flexible = max(0, width - fixed)
        agent = max(5, flexible * 2 // 5)
        return cls(width=width, meter=meter, agent=agent, action=max(5, flexible - agent))


def _fit(text: str, width: int) -> str:
    """Cleaned single-line text padded or cut to exactly `width` cells."""
    cut = one_line(text, width)
    return cut + " " * max(0, width - cell_len(cut))


class QueueList(ScrollView, can_focus=True):
    """A virtual list of queue rows with a cursor.

    Posts `QueueList.Highlighted` whenever the highlighted item (by source and id) changes, including the first
    time data is shown (and `Highlighted(None)` when the queue is empty). Call `refresh_rows()` when the data
    changed; the time columns repaint by themselves every second.
    """

    PAGE_SIZE: ClassVar[int] = 200
    MAX_PAGES: ClassVar[int] = 8  # rows kept in memory: MAX_PAGES * PAGE_SIZE

    BINDINGS: ClassVar[list[BindingType]] = [
        # Not in the footer: everyone finds the arrows, and 80 columns are needed for the decision keys.
        Binding("j", "cursor_down", "Down", show=False, id="cursor_down"),
        Binding("k", "cursor_up", "Up", show=False, id="cursor_up"),
        Binding("down", "cursor_down", "Down", show=False, id="cursor_down"),
        Binding("up", "cursor_up", "Up", show=False, id="cursor_up"),
        Binding("pagedown", "cursor_page_down", "Page down", show=False, id="cursor_page_down"),
        Binding("pageup", "cursor_page_up", "Page up", show=False, id="cursor_page_up"),
        Binding("home", "cursor_first", "First", show=False, id="cursor_first"),
        Binding("end", "cursor_last", "Last", show=False, id="cursor_last"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "queue-list--header",
        "queue-list--cursor",
        "queue-list--risk-critical",
        "queue-list--risk-high",
        "queue-list--risk-medium",
        "queue-list--risk-low",
        "queue-list--confidence",
        "queue-list--confidence-low",
        "queue-list--confidence-empty",
        "queue-list--kind",
        "queue-list--muted",
        "queue-list--urgent",
        "queue-list--expired",
        "queue-list--group",
        "queue-list--claim",
        "queue-list--self-approves",
        "queue-list--marked",
    }

    DEFAULT_CSS = """
    QueueList {
        height: 1fr;
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        & > .queue-list--header { background: $panel; color: $text-muted; text-style: bold; }
        & > .queue-list--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .queue-list--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .queue-list--risk-critical { background: $error; color: $text; text-style: bold; }
        & > .queue-list--risk-high { color: $text-error; text-style: bold; }
        & > .queue-list--risk-medium { color: $text-warning; }
        & > .queue-list--risk-low { color: $text-muted; }
        & > .queue-list--confidence { color: $text-primary; }
        & > .queue-list--confidence-low { color: $text-warning; text-style: bold; }
        & > .queue-list--confidence-empty { color: $text-muted; }
        & > .queue-list--kind { color: $text-accent; text-style: bold; }
        & > .queue-list--muted { color: $text-muted; }
        & > .queue-list--urgent { color: $text-error; text-style: bold; }
        & > .queue-list--expired { color: $text-error; }
        & > .queue-list--group { background: $boost; color: $text-secondary; text-style: bold; }
        & > .queue-list--claim { color: $text-warning; text-style: italic; }
        & > .queue-list--self-approves { color: $text-warning; text-style: bold; }
        & > .queue-list--marked { color: $text-accent; text-style: bold; }
    }
    """

    class Highlighted(Message):
        """The highlighted item changed (by source and id); `row` is None when nothing is highlighted."""

        def __init__(self, row: QueueRow | None, queue_list: QueueList | None = None) -> None:
            super().__init__()
            self.row = row
            self.queue_list = queue_list

        @property
        def control(self) -> QueueList | None:
            return self.queue_list

        def can_replace(self, message: Message) -> bool:
            # Only the latest highlight matters: a burst of j presses delivers one message, not fifty.
            return isinstance(message, QueueList.Highlighted) and message.queue_list is self.queue_list

    def __init__(
        self,
        provider: RowProvider,
        *,
        now: Callable[[], float] = time.time,
        operator: str | None = None,
        warning_seconds: float = URGENT_SECONDS,
        id: str | None = None,
    ) -> None:
        """`warning_seconds`: a deadline closer than this is marked near (the config's deadline_warning)."""
        super().__init__(id=id)
        self._warning_seconds = warning_seconds
        self._provider = provider
        self._now = now
        self._operator = operator  # claims held by this operator are not marked
        self._count = 0
        self._group_labels: list[str] = []
        self._group_starts: list[int] = []  # first row index of each group
        self._group_lines: list[int] = []  # line of each group's header
        self._cursor = 0
        self._announced: RowKey | None = None
        self._announced_once = False
        self._pages: LRUCache[int, tuple[QueueRow, ...]] = LRUCache(self.MAX_PAGES)
        self._strips: LRUCache[tuple[int, int, bool, int], Strip] = LRUCache(512)
        self._styles: dict[tuple[str, bool], Style] = {}
        self._layout: _Layout | None = None
        self._empty_text = "Queue is empty"
        self._marks: Container[RowKey] = ()

    # -- public API -------------------------------------------------------------------------------------

    @property
    def provider(self) -> RowProvider:
        return self._provider

    @property
    def row_count(self) -> int:
        """Rows in the current order, as of the last `refresh_rows()`."""
        return self._count

    @property
    def cursor(self) -> int:
        """Index of the highlighted row (0 when the list is empty)."""
        return self._cursor

    @property
    def highlighted(self) -> QueueRow | None:
        return self._row(self._cursor)

    def refresh_rows(self) -> None:
        """The data changed: re-read the count, drop cached rows, keep the cursor on the same item if present.

        When the highlighted item left the order, the cursor keeps its index (clamped), so the next item takes
        its place. Posts `Highlighted` if the highlighted item changed.
        """
        key = self._announced
        groups = self._provider.groups() if isinstance(self._provider, GroupedRowProvider) else []
        if groups:
            # One query answers both the groups and the count, so the header lines match the rows.
            counts = [max(0, n) for _, n in groups]
            self._group_labels = [label for label, _ in groups]
            self._group_starts = [0, *accumulate(counts)][:-1]
            self._group_lines = [start + g for g, start in enumerate(self._group_starts)]
            self._count = sum(counts)
        else:
            self._group_labels, self._group_starts, self._group_lines = [], [], []
            self._count = max(0, self._provider.count())
        self._pages.clear()
        self._strips.clear()
        index = self._cursor
        if key is not None and self._count:
            found = self._provider.index_of(*key)
            if found is not None and 0 <= found < self._count:
                index = found
        self._cursor = self._clamp(index)
        self.virtual_size = Size(0, self._count + len(self._group_lines) + 1)  # +1: the column header
        self._scroll_cursor_into_view()
        self.refresh()
        self._announce()

    def set_empty_text(self, text: str) -> None:
        """What the list says when it holds no row (why it is empty: a filter, sources down, or nothing pending)."""
        if text != self._empty_text:
            self._empty_text = text
            self.refresh()

    def show_marks(self, marks: Container[RowKey]) -> None:
        """Rows whose (source, id) is in `marks` show the mark glyph; call again whenever the marks change."""
        self._marks = marks
        self._strips.clear()
        self.refresh()

    def move_to(self, index: int) -> None:
        """Highlight row `index` (clamped) and scroll it into view."""
        self._set_cursor(index)

    # -- actions ----------------------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self._set_cursor(self._cursor + 1)

    def action_cursor_up(self) -> None:
        self._set_cursor(self._cursor - 1)

    def action_cursor_page_down(self) -> None:
        page = self._body_height()
        self._set_cursor(self._cursor + page, scroll_by=page)

    def action_cursor_page_up(self) -> None:
        page = self._body_height()
        self._set_cursor(self._cursor - page, scroll_by=-page)

    def action_cursor_first(self) -> None:
        self._set_cursor(0)

    def action_cursor_last(self) -> None:
        self._set_cursor(self._count - 1)

    # -- events -----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.refresh_rows()
        # Age and time-left change every second: repaint the visible lines, no fetch (rows are cached).
        self.set_interval(1.0, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get(_ROW_META)
        if isinstance(index, int):
            self._set_cursor(index)

    def on_focus(self, event: events.Focus) -> None:
        self._drop_render_caches()

    def on_blur(self, event: events.Blur) -> None:
        self._drop_render_caches()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drop_render_caches()  # theme or focus changed: cached strips hold old colours

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Wheel and scrollbar scrolling drag the cursor along, so the highlighted row (the one the detail shows
        # and a key would decide) is always on screen.
        if self._count and not self._cursor_visible():
            top = self.scroll_offset.y
            first = self._row_at_or_after(top)
            last = self._row_at_or_after(top + self._body_height()) - 1
            self._set_cursor(min(max(self._cursor, first), max(first, last)), scroll=False)

    # -- rendering --------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width <= 0:
            return Strip.blank(0)
        if y == 0:
            return self._header_strip(width)
        index, group = self._at_line(self.scroll_offset.y + y - 1)
        if group is not None:
            return self._group_strip(group, width)
        if index >= self._count:
            if index == 0:
                return self._empty_strip(width)
            return Strip.blank(width, self.rich_style)
        cursor = index == self._cursor
        now = self._now()
        key = (index, width, cursor, int(now))
        strip = self._strips.get(key)
        if strip is None:
            strip = self._row_strip(index, width, cursor, now)
            self._strips[key] = strip
        return strip

    def _layout_for(self, width: int) -> _Layout:
        if self._layout is None or self._layout.width != width:
            self._layout = _Layout.for_width(width)
        return self._layout

    def _style(self, name: str, cursor: bool) -> Style:
        """A component style, laid over the cursor's background on the cursor row (unless it has its own), with
        its text at least 4.5:1 against its background."""
        key = (name, cursor)
        style = self._styles.get(key)
        if style is None:
            style = self.get_component_rich_style(name) if name else self.rich_style
            if cursor:
                cursor_style = self.get_component_rich_style("queue-list--cursor")
                if not name:
                    style = cursor_style
                elif style.bgcolor == self.rich_style.bgcolor:
                    style = cursor_style + style + Style(bgcolor=cursor_style.bgcolor)
            # Every badge and column must read on every row state, in any theme: a risk or confidence colour chosen
            # for the list's background can vanish on the cursor's (1.5:1 in textual-dark).
            style = readable(style)
            self._styles[key] = style
        return style

    def _header_strip(self, width: int) -> Strip:
        layout = self._layout_for(width)
        columns = [
            "  ",
            "RISK",
            ("CONFIDENCE" if layout.meter else "CONF").ljust(layout.confidence),
            "KIND",
            "AGENT".ljust(layout.agent),
            "ACTION".ljust(layout.action),
            "CLAIMED".ljust(_CLAIM_WIDTH),
            "AGE".rjust(TIME_WIDTH),
            "LEFT".rjust(TIME_WIDTH),
        ]
        text = Text(" ".join(columns)[1:], style=self._style("queue-list--header", False), end="")
        return self._to_strip(text, width)

    def _group_strip(self, group: int, width: int) -> Strip:
        starts = self._group_starts
        size = (starts[group + 1] if group + 1 < len(starts) else self._count) - starts[group]
        label = one_line(self._group_labels[group], max(1, width - 20))
        text = Text(f" ▾ {label}  ({size})", style=self._style("queue-list--group", False), end="")
        return self._to_strip(text, width)

    def _empty_strip(self, width: int) -> Strip:
        said = one_line(self._empty_text, max(1, width - 2))
        text = Text(f"  {said}", style=self._style("queue-list--muted", False), end="")
        return self._to_strip(text, width)

    def _row_strip(self, index: int, width: int, cursor: bool, now: float) -> Strip:
        row = self._row(index)
        base = self._style("", cursor) + Style.from_meta({_ROW_META: index})
        if row is None:  # the provider returned fewer rows than it counted (data changed under us)
            return self._to_strip(Text("  …", style=base, end=""), width)
        layout = self._layout_for(width)
        text = Text(style=base, end="", no_wrap=True)

        def add(value: str, component: str = "") -> None:
            text.append(value, self._style(component, cursor) if component else None)

        add(">" if cursor else " ")
        add(_MARKED if (row.source, row.id) in self._marks else " ", "queue-list--marked")
        add(risk_label(row.risk), f"queue-list--risk-{row.risk.value}")
        add(" ")
        confidence = row.confidence
        confidence_style = "queue-list--confidence-low" if is_low_confidence(confidence) else "queue-list--confidence"
        if confidence is None:
            add(confidence_text(None)[: layout.confidence], "queue-list--confidence-empty")
        elif layout.meter:
            meter = confidence_text(confidence)
            filled = meter.count("▰")
            add(meter[:filled], confidence_style)
            add(meter[filled:METER_CELLS], "queue-list--confidence-empty")
            add(meter[METER_CELLS:], confidence_style)
        else:
            add(f"{confidence:.2f}", confidence_style)
        add(" ")
        add(KIND_LABELS.get(row.kind, row.kind[:_KIND_WIDTH]).ljust(_KIND_WIDTH), "queue-list--kind")
        add(" ")
        add(_fit(row.agent, layout.agent))
        add(" ")
        add(_fit(row.action, layout.action))
        add(" ")
        holder = row.claimed_by if row.claimed_by and row.claimed_by != self._operator else None
        if holder:
            add(_fit(_CLAIM_MARK + holder, _CLAIM_WIDTH), "queue-list--claim")
        else:  # a two-person item shows how far it has come ("1 of 2") where a claim would be
            add(_fit(approvals_mark(row.approvals_required, row.approvals), _CLAIM_WIDTH), "queue-list--claim")
        add(" ")
        add(format_age(now - row.created_at).rjust(TIME_WIDTH), "queue-list--muted")
        add(" ")
        self._add_left(row, now, add)
        return self._to_strip(text, width)

    def _add_left(self, row: QueueRow, now: float, add: Callable[[str, str], None]) -> None:
        """The LEFT column: time to the deadline, marked when it is near (⚠) and when the agent then approves (✔)."""
        if row.expires_at is None:
            add(format_left(None).rjust(TIME_WIDTH), "queue-list--muted")
            return
        left = row.expires_at - now
        near = 0 < left <= self._warning_seconds
        component = "queue-list--expired" if left <= 0 else "queue-list--urgent" if near else ""
        shown = format_left(left)
        marks = (SELF_APPROVES_MARK if row.on_expiry == "approve" else "") + (NEAR_MARK if near else "")
        add(" " * max(0, TIME_WIDTH - len(marks) - len(shown)), "")
        if row.on_expiry == "approve":
            add(SELF_APPROVES_MARK, "queue-list--self-approves")
        if near:
            add(NEAR_MARK, component)
        add(shown, component)

    def _to_strip(self, text: Text, width: int) -> Strip:
        text.truncate(width, overflow="crop", pad=True)  # exactly `width` cells
        # Text.render leaves the base style off span-less text: make it a span so padding is styled too.
        text.stylize_before(text.style, 0, len(text))
        return Strip(text.render(self.app.console), width)

    # -- data and cursor --------------------------------------------------------------------------------

    def _row(self, index: int) -> QueueRow | None:
        if not 0 <= index < self._count:
            return None
        page, offset = divmod(index, self.PAGE_SIZE)
        rows = self._pages.get(page)
        if rows is None:
            rows = tuple(self._provider.rows(page * self.PAGE_SIZE, self.PAGE_SIZE))
            self._pages[page] = rows
        return rows[offset] if offset < len(rows) else None

    def _clamp(self, index: int) -> int:
        return max(0, min(index, self._count - 1)) if self._count else 0

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # minus the header line

    def _line_of(self, index: int) -> int:
        """The body line (0 = first below the column header) that shows row `index`."""
        return index + bisect_right(self._group_starts, index)

    def _at_line(self, line: int) -> tuple[int, int | None]:
        """(row index, None) for a row's line, or (-1, group) for a group's header line."""
        groups_above = bisect_right(self._group_lines, line)
        if groups_above and self._group_lines[groups_above - 1] == line:
            return -1, groups_above - 1
        return line - groups_above, None

    def _row_at_or_after(self, line: int) -> int:
        index, group = self._at_line(line)
        return self._group_starts[group] if group is not None else index

    def _cursor_visible(self) -> bool:
        top = self.scroll_offset.y
        return top <= self._line_of(self._cursor) < top + self._body_height()

    def _scroll_cursor_into_view(self) -> None:
        if not self._count:
            return
        top = self.scroll_offset.y
        body = self._body_height()
        line = self._line_of(self._cursor)
        _, group = self._at_line(line - 1) if line else (0, None)
        if line < top or (group is not None and line - 1 < top):
            # Keep the group's header on screen with its first row.
            self.scroll_to(y=line - 1 if group is not None else line, animate=False, immediate=True)
        elif line >= top + body:
            self.scroll_to(y=line - body + 1, animate=False, immediate=True)

    def _set_cursor(self, index: int, *, scroll_by: int = 0, scroll: bool = True) -> None:
        old = self._cursor
        self._cursor = self._clamp(index)
        if self._cursor != old:
            self._refresh_index(old)
            self._refresh_index(self._cursor)
        if scroll:
            if scroll_by:
                # Paging moves the view with the cursor, so the cursor keeps its place on screen.
                self.scroll_to(y=self.scroll_offset.y + scroll_by, animate=False, immediate=True)
            self._scroll_cursor_into_view()
        self._announce()

    def _refresh_index(self, index: int) -> None:
        self.refresh_line(self._line_of(index) + 1)  # +1: rows start below the column header

    def _announce(self) -> None:
        row = self.highlighted
        key = None if row is None else (row.source, row.id)
        if self._announced_once and key == self._announced:
            return
        self._announced_once = True
        self._announced = key
        self.post_message(self.Highlighted(row, self))

    def _tick(self) -> None:
        if self._count:
            self.refresh()

    def _drop_render_caches(self) -> None:
        self._strips.clear()
        self._styles.clear()
        self.refresh()
