"""The virtual queue list: one line per pending item, painted on demand, fed by SQL through a RowProvider
(widgets/queue_provider.py).

Only the lines on screen are rendered (`render_line`), and rows are fetched in pages of `PAGE_SIZE` around
them, so 100,000 items cost what one screen costs. The provider owns order and filter (it runs SQL); the list
owns the cursor, the viewport and the paint.

The column header is line 0 of the widget itself: `render_line(0)` always paints it, whatever the scroll
offset, so it stays put and shares the list's width (and so its column layout) with the rows.

When the provider groups its rows (`GroupedRowProvider`: rows come ordered by group, and `groups()` says how many
each holds), a header line opens each group. Header lines are not rows: the cursor skips them, and the mapping
between row indexes and lines is a bisect over the groups' first rows, so it costs nothing per row. A collapsed
group is its header alone (the provider lists none of its rows): the cursor stops on it, so it can be expanded.

Columns are as wide as what the rows on screen hold (widgets/columns.py): the widest value of each is measured once
per page of rows fetched, and the layout is fitted to the pages on screen. The columns and how each line is drawn
are widgets/queue_rows.py's; this module owns the cursor, the viewport, the pages of rows and the messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from storage.records import QueueGroup, QueueRow

from .badges import URGENT_SECONDS
from .list_lines import ListLines
from .queue_provider import GroupedRowProvider, RowKey, RowProvider
from .queue_rows import COMPONENTS, NEAR_MARK, ROW_META, SELF_APPROVES_MARK, RowLayout, RowPainter, RowStyles
from .safe_text import one_line

__all__ = ["NEAR_MARK", "SELF_APPROVES_MARK", "GroupedRowProvider", "QueueList", "RowKey", "RowProvider"]


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

    COMPONENT_CLASSES: ClassVar[set[str]] = set(COMPONENTS)  # the classes the lines are drawn with

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
        """The highlighted item changed (by source and id); `row` is None when nothing is highlighted, and `group`
        says which collapsed group's header the cursor is on, if it is on one."""

        def __init__(
            self, row: QueueRow | None, queue_list: QueueList | None = None, group: QueueGroup | None = None
        ) -> None:
            super().__init__()
            self.row = row
            self.queue_list = queue_list
            self.group = group

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
        self._provider = provider
        self._now = now
        self._lines = ListLines()
        self._cursor = 0
        self._cursor_group: int | None = None  # the collapsed group whose header the cursor is on
        self._announced: RowKey | None = None
        self._announced_group: str | None = None  # the group of the row announced, or the collapsed one
        self._announced_once = False
        self._pages: LRUCache[int, tuple[QueueRow, ...]] = LRUCache(self.MAX_PAGES)
        self._widest: dict[int, dict[str, int]] = {}  # page -> its widest value per measured column
        self._strips: LRUCache[tuple[int, int, bool, int], Strip] = LRUCache(512)
        self._styles = RowStyles(self)
        # Claims held by this operator are not marked; a deadline closer than `warning_seconds` is near.
        self._painter = RowPainter(self._styles, operator, warning_seconds)
        self._layout: RowLayout | None = None
        self._layout_key: tuple[int, int, int] | None = None  # (width, first page, last page) it was fitted to
        self._empty_text = "Queue is empty"
        self._marks: Container[RowKey] = ()

    # -- public API -------------------------------------------------------------------------------------

    @property
    def provider(self) -> RowProvider:
        return self._provider

    @property
    def row_count(self) -> int:
        """Rows listed in the current order, as of the last `refresh_rows()` (collapsed groups' rows are not)."""
        return self._lines.rows

    @property
    def item_count(self) -> int:
        """Items in the current order, those in collapsed groups included."""
        groups = self._lines.groups
        return sum(g.size for g in groups) if groups else self._lines.rows

    @property
    def cursor(self) -> int:
        """Index of the highlighted row (0 when the list is empty); on a collapsed group, the row after it."""
        return self._cursor

    @property
    def highlighted(self) -> QueueRow | None:
        return None if self._cursor_group is not None else self._row(self._cursor)

    @property
    def header(self) -> QueueGroup | None:
        """The collapsed group whose header the cursor is on, if it is on one."""
        group = self._cursor_group
        return None if group is None else self._lines.groups[group]

    @property
    def current_group(self) -> QueueGroup | None:
        """The group under the cursor: the collapsed one whose header it is on, or the highlighted row's."""
        lines = self._lines
        group = self._cursor_group if self._cursor_group is not None else lines.group_of(self._cursor)
        return None if group is None or not (0 <= group < len(lines.groups)) else lines.groups[group]

    def refresh_rows(self) -> None:
        """The data changed: re-read the count, drop cached rows, keep the cursor on the same item if present.

        When the highlighted item left the order, the cursor keeps its index (clamped), so the next item takes
        its place. Posts `Highlighted` if the highlighted item changed.
        """
        key, on_group = self._announced, self._announced_group
        groups = self._provider.groups() if isinstance(self._provider, GroupedRowProvider) else []
        # One query answers both the groups and the count, so the header lines match the rows.
        lines = self._lines = ListLines(groups) if groups else ListLines(rows=self._provider.count())
        self._pages.clear()
        self._widest.clear()
        self._layout_key = None
        self._strips.clear()
        index, on_header, self._cursor_group = self._cursor, self._cursor_group is not None, None
        found = self._provider.index_of(*key) if key is not None and lines.rows else None
        group = lines.find(on_group) if on_group is not None else None
        if found is not None and 0 <= found < lines.rows:
            index = found
        elif group is not None and (on_header or lines.groups[group].collapsed):
            # The cursor's group, collapsed (the item the cursor was on is in it): the cursor is on its header.
            # Just expanded from its header: on its first row.
            index = lines.starts[group]
            self._cursor_group = group if lines.groups[group].collapsed else None
        self._cursor = self._clamp(index)
        self.virtual_size = Size(0, lines.total + 1)  # +1: the column header
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
        self._go_to_line(self._lines.stop(self._cursor_line() + 1, 1))

    def action_cursor_up(self) -> None:
        self._go_to_line(self._lines.stop(self._cursor_line() - 1, -1))

    def action_cursor_page_down(self) -> None:
        page = self._body_height()
        self._go_to_line(self._lines.nearest_stop(self._cursor_line() + page, 1), scroll_by=page)

    def action_cursor_page_up(self) -> None:
        page = self._body_height()
        self._go_to_line(self._lines.nearest_stop(self._cursor_line() - page, -1), scroll_by=-page)

    def action_cursor_first(self) -> None:
        self._go_to_line(self._lines.stop(0, 1))

    def action_cursor_last(self) -> None:
        self._go_to_line(self._lines.stop(self._lines.total - 1, -1))

    # -- events -----------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.refresh_rows()
        # Age and time-left change every second: repaint the visible lines, no fetch (rows are cached).
        self.set_interval(1.0, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get(ROW_META)
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
        if self._lines.total and not self._cursor_visible():
            top = self.scroll_offset.y
            if self._cursor_line() < top:
                line = self._lines.stop(top, 1)
            else:
                line = self._lines.stop(top + self._body_height() - 1, -1)
            if line is not None and top <= line < top + self._body_height():
                self._go_to_line(line, scroll=False)

    # -- rendering --------------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width <= 0:
            return Strip.blank(0)
        if y == 0:
            return self._header_strip(width)
        layout = self._layout_for(width)  # before any row's strip: a new layout drops the cached ones
        index, group = self._lines.at_line(self.scroll_offset.y + y - 1)
        if group is not None:
            return self._group_strip(group, width)
        if index >= self._lines.rows:
            if index == 0 and not self._lines.groups:
                return self._empty_strip(width)
            return Strip.blank(width, self.rich_style)
        cursor = index == self._cursor and self._cursor_group is None
        now = self._now()
        key = (index, width, cursor, int(now))
        strip = self._strips.get(key)
        if strip is None:
            strip = self._row_strip(index, layout, cursor, now)
            self._strips[key] = strip
        return strip

    def _layout_for(self, width: int) -> RowLayout:
        """The columns fitted to the pages of rows on screen (measured once per page fetched)."""
        top = self.scroll_offset.y
        first = self._lines.row_at_or_after(top)
        last = min(self._lines.rows, self._lines.row_at_or_after(top + self._body_height())) - 1
        key = (width, first // self.PAGE_SIZE, last // self.PAGE_SIZE if last >= first else -1)
        if self._layout is None or key != self._layout_key:
            widest: dict[str, int] = {}
            for page in range(key[1], key[2] + 1):
                for name, cells in self._page_widest(page).items():
                    widest[name] = max(widest.get(name, 0), cells)
            layout = RowLayout.fit(width, widest)
            if layout != self._layout:
                self._strips.clear()  # painted with other widths
            self._layout, self._layout_key = layout, key
        return self._layout

    def _page_widest(self, page: int) -> dict[str, int]:
        """The widest value on one page of rows of each column sized by what it holds."""
        widest = self._widest.get(page)
        if widest is None:
            widest = self._widest[page] = self._painter.widest(self._page(page))
        return widest

    def _header_strip(self, width: int) -> Strip:
        return self._to_strip(self._painter.header(self._layout_for(width)), width)

    def _group_strip(self, group: int, width: int) -> Strip:
        return self._to_strip(self._painter.group(self._lines.groups[group], group == self._cursor_group, width), width)

    def _empty_strip(self, width: int) -> Strip:
        said = one_line(self._empty_text, max(1, width - 2))
        text = Text(f"  {said}", style=self._styles("queue-list--muted", False), end="")
        return self._to_strip(text, width)

    def _row_strip(self, index: int, layout: RowLayout, cursor: bool, now: float) -> Strip:
        row = self._row(index)
        base = self._styles("", cursor) + Style.from_meta({ROW_META: index})
        if row is None:  # the provider returned fewer rows than it counted (data changed under us)
            return self._to_strip(Text("  …", style=base, end=""), layout.width)
        marked = (row.source, row.id) in self._marks
        return self._to_strip(self._painter.row(row, layout, base, cursor=cursor, marked=marked, now=now), layout.width)

    def _to_strip(self, text: Text, width: int) -> Strip:
        text.truncate(width, overflow="crop", pad=True)  # exactly `width` cells
        # Text.render leaves the base style off span-less text: make it a span so padding is styled too.
        text.stylize_before(text.style, 0, len(text))
        return Strip(text.render(self.app.console), width)

    # -- data and cursor --------------------------------------------------------------------------------

    def _row(self, index: int) -> QueueRow | None:
        if not 0 <= index < self._lines.rows:
            return None
        page, offset = divmod(index, self.PAGE_SIZE)
        rows = self._page(page)
        return rows[offset] if offset < len(rows) else None

    def _page(self, page: int) -> tuple[QueueRow, ...]:
        rows = self._pages.get(page)
        if rows is None:
            rows = tuple(self._provider.rows(page * self.PAGE_SIZE, self.PAGE_SIZE))
            self._pages[page] = rows
        return rows

    def _clamp(self, index: int) -> int:
        rows = self._lines.rows
        return max(0, min(index, rows - 1)) if rows else 0

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # minus the header line

    def _cursor_line(self) -> int:
        """The body line (0 = first below the column header) the cursor is on."""
        if self._cursor_group is not None:
            return self._lines.headers[self._cursor_group]
        return self._lines.line_of(self._cursor)

    def _cursor_visible(self) -> bool:
        top = self.scroll_offset.y
        return top <= self._cursor_line() < top + self._body_height()

    def _scroll_cursor_into_view(self) -> None:
        if not self._lines.total:
            return
        top = self.scroll_offset.y
        body = self._body_height()
        line = self._cursor_line()
        header_above = self._cursor_group is None and line > 0 and self._lines.at_line(line - 1)[1] is not None
        if line < top or (header_above and line - 1 < top):
            # Keep the group's header on screen with its first row.
            self.scroll_to(y=line - 1 if header_above else line, animate=False, immediate=True)
        elif line >= top + body:
            self.scroll_to(y=line - body + 1, animate=False, immediate=True)

    def _set_cursor(self, index: int, *, scroll_by: int = 0, scroll: bool = True) -> None:
        """Highlight row `index` (clamped)."""
        self._place(self._clamp(index), None, scroll_by=scroll_by, scroll=scroll)

    def _go_to_line(self, line: int | None, *, scroll_by: int = 0, scroll: bool = True) -> None:
        """Put the cursor on a stop line (a row or a collapsed group's header); None: it stays, scrolled into view."""
        if line is None:
            self._place(self._cursor, self._cursor_group, scroll=scroll)
            return
        index, group = self._lines.at_line(line)
        self._place(self._clamp(index if group is None else self._lines.starts[group]), group, scroll_by, scroll)

    def _place(self, index: int, group: int | None, scroll_by: int = 0, scroll: bool = True) -> None:
        old = self._cursor_line()
        self._cursor, self._cursor_group = index, group
        new = self._cursor_line()
        if new != old:
            self.refresh_line(old + 1)  # +1: lines start below the column header
            self.refresh_line(new + 1)
        if scroll:
            if scroll_by:
                # Paging moves the view with the cursor, so the cursor keeps its place on screen.
                self.scroll_to(y=self.scroll_offset.y + scroll_by, animate=False, immediate=True)
            self._scroll_cursor_into_view()
        self._announce()

    def _announce(self) -> None:
        row = self.highlighted
        key = None if row is None else (row.source, row.id)
        current = self.current_group
        on_group = current.label if current is not None else None
        if self._announced_once and key == self._announced and on_group == self._announced_group:
            return
        self._announced_once = True
        self._announced, self._announced_group = key, on_group
        self.post_message(self.Highlighted(row, self, self.header))

    def _tick(self) -> None:
        if self._lines.rows:
            self.refresh()

    def _drop_render_caches(self) -> None:
        self._strips.clear()
        self._styles.clear()
        self.refresh()
