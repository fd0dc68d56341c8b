"""The queue list's columns and lines: which columns fit a width, and how the header, a group's line and a row are
drawn (widgets/queue_list.py owns the cursor, the viewport and the pages of rows).

Columns are as wide as what the rows on screen hold (widgets/columns.py): `RowPainter.widest` measures a page of rows
once, and `RowLayout.fit` fits the columns to the widest values on screen. Every line is a Text of plain strings with
component styles, never markup: agent text is cleaned and cut by `one_line`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from storage.records import KIND_LABELS, QueueGroup, QueueRow

from .approvals import approvals_mark
from .badges import (
    CONFIDENCE_WIDTH,
    METER_CELLS,
    RISK_WIDTH,
    TIME_WIDTH,
    confidence_text,
    format_age,
    format_left,
    is_low_confidence,
    risk_label,
)
from .columns import Column, fit_columns
from .contrast import readable
from .safe_text import one_line

__all__ = ["COMPONENTS", "NEAR_MARK", "ROW_META", "SELF_APPROVES_MARK", "RowLayout", "RowPainter", "RowStyles"]

# The component classes lines are drawn with (QueueList.COMPONENT_CLASSES; their styles are in its DEFAULT_CSS).
COMPONENTS: Final = (
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
)
ROW_META: Final = "queue_row"  # style meta key carrying the row index, read back on click
_KIND_WIDTH: Final = max(4, *(len(label) for label in KIND_LABELS.values()))  # the labels `kind:` accepts
_WIDE: Final = 72  # below this width the confidence meter shrinks to its number
_CLAIM_MARK: Final = "⚑ "
# In the LEFT column: the deadline is inside the warning window; the agent approves by itself when nobody decides.
NEAR_MARK: Final = "⚠"
SELF_APPROVES_MARK: Final = "✔"
_MARKED: Final = "●"  # marked for bulk work: one cell right of the cursor's ">"
_LEAD: Final = 2  # the cursor's ">" and the mark, before the first column
# The columns after the cursor marker. AGENT, ACTION and CLAIMED are as wide as their widest value on screen (within
# these bounds); CLAIMED disappears while nobody else holds an item on screen; ACTION takes the room left over.
_COLUMNS: Final = (
    Column("risk", "RISK", RISK_WIDTH, RISK_WIDTH),
    Column("confidence", "CONFIDENCE", CONFIDENCE_WIDTH, CONFIDENCE_WIDTH),
    Column("kind", "KIND", _KIND_WIDTH, _KIND_WIDTH),
    Column("agent", "AGENT", 5, 24),
    Column("action", "ACTION", 6, 48, grows=True),
    Column("claimed", "CLAIMED", 0, 16),
    Column("age", "AGE", TIME_WIDTH, TIME_WIDTH, right=True),
    Column("left", "LEFT", TIME_WIDTH, TIME_WIDTH, right=True),
)
_NARROW_COLUMNS: Final = tuple(
    Column("confidence", "CONF", 4, 4) if c.name == "confidence" else c for c in _COLUMNS
)  # below _WIDE cells: the confidence as its number only


@dataclass(frozen=True)
class RowLayout:
    """Column widths for one list width and the rows on screen (0: a column not shown)."""

    width: int
    meter: bool  # the full "▰▰▱▱▱ 0.41" meter, or just "0.41"
    columns: tuple[Column, ...]
    widths: tuple[int, ...]

    def __getitem__(self, name: str) -> int:
        return self.widths[_INDEX[name]]

    @classmethod
    def fit(cls, width: int, widest: dict[str, int]) -> RowLayout:
        meter = width >= _WIDE
        columns = _COLUMNS if meter else _NARROW_COLUMNS
        fitted = fit_columns(columns, widest, max(0, width - _LEAD))
        return cls(width=width, meter=meter, columns=columns, widths=tuple(fitted[c.name] for c in columns))


_INDEX: Final = {c.name: i for i, c in enumerate(_COLUMNS)}  # the same in _NARROW_COLUMNS


def _fit(text: str, width: int) -> str:
    """Cleaned single-line text padded or cut to exactly `width` cells."""
    cut = one_line(text, width)
    return cut + " " * max(0, width - cell_len(cut))


class RowStyles:
    """A list's component styles by (class name, on the cursor row), cached until `clear()` (theme or focus changed)."""

    def __init__(self, widget: Widget) -> None:
        self._widget = widget
        self._cache: dict[tuple[str, bool], Style] = {}

    def clear(self) -> None:
        self._cache.clear()

    def __call__(self, name: str, cursor: bool) -> Style:
        """A component style, laid over the cursor's background on the cursor row (unless it has its own), with
        its text at least 4.5:1 against its background; "" is the list's own style."""
        key = (name, cursor)
        style = self._cache.get(key)
        if style is None:
            widget = self._widget
            style = widget.get_component_rich_style(name) if name else widget.rich_style
            if cursor:
                cursor_style = widget.get_component_rich_style("queue-list--cursor")
                if not name:
                    style = cursor_style
                elif style.bgcolor == widget.rich_style.bgcolor:
                    style = cursor_style + style + Style(bgcolor=cursor_style.bgcolor)
            # Every badge and column must read on every row state, in any theme: a risk or confidence colour chosen
            # for the list's background can vanish on the cursor's (1.5:1 in textual-dark).
            style = readable(style)
            self._cache[key] = style
        return style


class RowPainter:
    """Draws the list's lines as Text: the column header, a group's line and a row."""

    def __init__(self, style: RowStyles, operator: str | None, warning_seconds: float) -> None:
        """`operator`: claims this operator holds are not shown; `warning_seconds`: a deadline closer is near."""
        self._style = style
        self._operator = operator
        self._warning_seconds = warning_seconds

    def widest(self, rows: Sequence[QueueRow]) -> dict[str, int]:
        """The widest value among `rows` of each column sized by what it holds."""
        return {
            "agent": max((cell_len(r.agent) for r in rows), default=0),
            "action": max((cell_len(r.action) for r in rows), default=0),
            "claimed": max((cell_len(self.claimed(r)) for r in rows), default=0),
        }

    def claimed(self, row: QueueRow) -> str:
        """Who else holds the item ("⚑ bob"); else, on a two-person item, how far it has come ("1 of 2")."""
        holder = row.claimed_by if row.claimed_by and row.claimed_by != self._operator else None
        return _CLAIM_MARK + holder if holder else approvals_mark(row.approvals_required, row.approvals)

    def header(self, layout: RowLayout) -> Text:
        columns = [" "]  # over the cursor marker and the mark
        for column, cells in zip(layout.columns, layout.widths, strict=True):
            if cells:
                columns.append(column.header.rjust(cells) if column.right else _fit(column.header, cells))
        return Text(" ".join(columns), style=self._style("queue-list--header", False), end="")

    def group(self, group: QueueGroup, cursor: bool, width: int) -> Text:
        label, size, collapsed = group
        said = one_line(label, max(1, width - 20))
        line = f"{'>' if cursor else ' '}{'▸' if collapsed else '▾'} {said}  ({size})"
        style = self._style("", True) if cursor else self._style("queue-list--group", False)
        return Text(line, style=style, end="")

    def row(self, row: QueueRow, layout: RowLayout, base: Style, *, cursor: bool, marked: bool, now: float) -> Text:
        """One row's line over `base` (the row's own style, carrying its index for clicks)."""
        text = Text(style=base, end="", no_wrap=True)

        def add(value: str, component: str = "") -> None:
            text.append(value, self._style(component, cursor) if component else None)

        add(">" if cursor else " ")
        add(_MARKED if marked else " ", "queue-list--marked")
        add(risk_label(row.risk), f"queue-list--risk-{row.risk.value}")
        add(" ")
        confidence = row.confidence
        confidence_style = "queue-list--confidence-low" if is_low_confidence(confidence) else "queue-list--confidence"
        if confidence is None:
            add(confidence_text(None)[: layout["confidence"]], "queue-list--confidence-empty")
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
        add(_fit(row.agent, layout["agent"]))
        add(" ")
        add(_fit(row.action, layout["action"]))
        add(" ")
        claimed = layout["claimed"]
        if claimed:
            add(_fit(self.claimed(row), claimed), "queue-list--claim")
            add(" ")
        add(format_age(now - row.created_at).rjust(TIME_WIDTH), "queue-list--muted")
        add(" ")
        self._add_left(row, now, add)
        return text

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
