"""Charts made of block characters: sparklines, stacked share bars, and a column chart widget.

The functions return plain strings or `Content` styled with theme variables ("$success", "$primary"...), so the
colours follow the active theme, dark or light. Labels passed in are rendered literally (through `safe_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from .safe_text import one_line

__all__ = ["BLOCKS", "ColumnChart", "column_rows", "resample", "share_bar", "share_cells", "sparkline", "stretch"]

BLOCKS: Final = "▁▂▃▄▅▆▇█"  # one to eight eighths of a cell
_LEVELS: Final = len(BLOCKS)
EMPTY_BAR: Final = "·"


def resample(values: Sequence[float], width: int) -> list[float]:
    """At most `width` values: each keeps the largest of the values it stands for, so a peak is never lost."""
    if width <= 0:
        return []
    if len(values) <= width:
        return list(values)
    count = len(values)
    return [max(values[i * count // width : (i + 1) * count // width]) for i in range(width)]


def stretch(values: Sequence[float], width: int) -> list[float]:
    """Exactly `width` values: fewer are spread over the width (each repeated), more are resampled (peaks kept)."""
    if not values or width <= 0:
        return []
    if len(values) >= width:
        return resample(values, width)
    return [values[i * len(values) // width] for i in range(width)]


def _eighths(value: float, top: float, cells: int) -> int:
    """How many eighths of `cells` rows `value` fills; any value above zero shows at least one."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, min(cells * _LEVELS, round(value / top * cells * _LEVELS)))


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """One line of bars, one cell per value (resampled to `width`); zero is a blank, `top` is a full cell."""
    cells = resample(values, width)
    peak = max(cells, default=0.0) if top is None else top
    return "".join(BLOCKS[n - 1] if (n := _eighths(v, peak, 1)) else " " for v in cells)


def column_rows(values: Sequence[float], width: int, height: int, top: float | None = None) -> list[str]:
    """A column chart `height` rows high, top row first: each value is a column of eighth-blocks."""
    cells = resample(values, width)
    peak = max(cells, default=0.0) if top is None else top
    filled = [_eighths(v, peak, height) for v in cells]
    rows = []
    for row in range(height):
        base = (height - 1 - row) * _LEVELS
        rows.append("".join(BLOCKS[min(_LEVELS, n - base) - 1] if n > base else " " for n in filled))
    return rows


def share_cells(counts: Sequence[int], width: int) -> list[int]:
    """Split `width` cells between `counts` in proportion (largest remainder): the cells always add up to `width`.

    A non-zero count that would round to nothing still gets one cell when there is room, so it stays visible.
    """
    total = sum(counts)
    if total <= 0 or width <= 0:
        return [0] * len(counts)
    exact = [c * width / total for c in counts]
    cells = [int(e) for e in exact]
    by_remainder = sorted(range(len(counts)), key=lambda i: exact[i] - cells[i], reverse=True)
    for i in by_remainder[: width - sum(cells)]:
        cells[i] += 1
    for i, count in enumerate(counts):
        if count and not cells[i]:
            donor = max(range(len(cells)), key=lambda j: cells[j])
            if cells[donor] > 1:
                cells[donor] -= 1
                cells[i] = 1
    return cells


def share_bar(parts: Sequence[tuple[int, str]], width: int, empty_style: str = "$foreground-muted") -> Content:
    """A stacked bar of `width` cells: each (count, style) part gets its share. Nothing counted: a dotted line."""
    cells = share_cells([count for count, _ in parts], width)
    if not any(cells):
        return Content.styled(EMPTY_BAR * width, empty_style)
    return Content.assemble(*((("█" * n), style) for n, (_, style) in zip(cells, parts, strict=True) if n))


class ColumnChart(Widget):
    """A column chart of one series filling the widget: the peak on the left axis, `start`/`end` under the columns.

    `values` and the labels are set together with `plot(...)`; the chart re-renders at any width, keeping peaks.
    """

    DEFAULT_CSS = """
    ColumnChart {
        height: 6;
        width: 1fr;
    }
    """
    AXIS_WIDTH: Final = 7  # the peak value, right-aligned, and a space

    values: reactive[tuple[float, ...]] = reactive(tuple, layout=False)

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        bar_style: str = "$primary",
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.bar_style = bar_style
        self.start_label = ""
        self.end_label = ""

    def plot(self, values: Sequence[float], start_label: str, end_label: str) -> None:
        self.start_label = start_label
        self.end_label = end_label
        self.values = tuple(values)
        self.refresh()

    def render(self) -> Content:
        width = max(1, self.size.width - self.AXIS_WIDTH)
        height = max(1, self.size.height - 1)  # the last line holds the time labels
        peak = max(self.values, default=0.0)
        values = stretch(self.values, width)  # the chart spans the whole width, whatever the number of samples
        rows = column_rows(values, width, height, top=peak)
        axis = "$foreground-muted"
        lines = []
        for index, row in enumerate(rows):
            label = f"{peak:g}" if index == 0 else ("0" if index == height - 1 else "")
            tick = " ┤" if label else " │"
            lines.append(Content.assemble((label.rjust(self.AXIS_WIDTH - 2) + tick, axis), (row, self.bar_style)))
        drawn = min(width, len(values))
        start = one_line(self.start_label, max(0, drawn // 2))
        end = one_line(self.end_label, max(0, drawn - len(start) - 1))
        lines.append(Content.styled(" " * self.AXIS_WIDTH + start + end.rjust(drawn - len(start)), axis))
        return Content("\n").join(lines)
