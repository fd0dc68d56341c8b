"""Column widths for a list whose columns are as wide as what they hold.

Each column says its header, the fewest and most cells it takes, and whether it takes the room left over; the list
measures its widest value among the rows it shows (a page, not the whole queue) and `fit_columns` does the rest. A
column whose `least` is 0 disappears, separator and all, while no row shown has a value for it. Columns are
separated by one space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.cells import cell_len

__all__ = ["Column", "fit_columns"]


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    least: int  # cells at least; 0: the column disappears while empty
    most: int  # cells at most, however wide its values (the room left over may still widen a growing column)
    grows: bool = False  # takes the room left over
    right: bool = False  # values and header flush right


def fit_columns(columns: Sequence[Column], widest: Mapping[str, int], width: int) -> dict[str, int]:
    """Each column's width in cells for a line of `width` cells, given the widest value of each (absent: fixed).

    A column wants its widest value or its header, whichever is wider, within `least` and `most`; a column whose
    `least` equals its `most` is fixed. When the wants do not fit, the widest columns give up cells first, never below
    their `least` (a line that still does not fit is cut by its renderer). Room left over goes to the growing column.
    """
    wants: dict[str, int] = {}
    for column in columns:
        value = widest.get(column.name, 0)
        if column.least == 0 and value == 0:
            wants[column.name] = 0
            continue
        wanted = max(value, cell_len(column.header))
        wants[column.name] = max(column.least, min(column.most, wanted))
    shown = [c for c in columns if wants[c.name] > 0]
    used = sum(wants[c.name] for c in shown) + max(0, len(shown) - 1)
    if used > width:
        # A column that may disappear when empty keeps its header's width while it has values to show.
        floors = {c.name: c.least or min(wants[c.name], cell_len(c.header)) for c in shown}
        _shrink(shown, wants, floors, used - width)
    else:
        growing = next((c for c in shown if c.grows), None)
        if growing is not None:
            wants[growing.name] += width - used
    return wants


def _shrink(columns: Sequence[Column], wants: dict[str, int], floors: Mapping[str, int], over: int) -> None:
    """Take `over` cells from the widest columns first (a level no column stays above), none below its floor."""
    shrinkable = [c for c in columns if wants[c.name] > floors[c.name]]
    while over > 0 and shrinkable:
        top = max(wants[c.name] for c in shrinkable)
        widest = [c for c in shrinkable if wants[c.name] == top]
        below = max([wants[c.name] for c in shrinkable if wants[c.name] < top] + [max(floors[c.name] for c in widest)])
        # Bring the widest down to the next level (or their floor), one cell per column per step.
        step = max(1, min(top - below, -(-over // len(widest))))
        for column in widest:
            cut = min(step, wants[column.name] - floors[column.name], over)
            wants[column.name] -= cut
            over -= cut
        shrinkable = [c for c in shrinkable if wants[c.name] > floors[c.name]]
