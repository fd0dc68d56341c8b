"""Which line of a grouped list shows which row or group header, and where its cursor may stop.

Each group's header line comes before its rows; a collapsed group is its header alone. Lines and row indexes map
through a bisect over the groups' first rows, so nothing here costs anything per row. The cursor stops on rows and on
collapsed headers (so a collapsed group can be expanded), and passes over the headers of groups that are open.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

from storage.records import QueueGroup

__all__ = ["ListLines"]


class ListLines:
    def __init__(self, groups: Sequence[QueueGroup] = (), rows: int = 0) -> None:
        """`groups` in display order (none: an ungrouped list of `rows` rows)."""
        self.groups = list(groups)
        if self.groups:
            listed = [0 if g.collapsed else max(0, g.size) for g in self.groups]
            self.starts = [0, *accumulate(listed)][:-1]  # first row index of each group
            self.rows = sum(listed)
        else:
            self.starts, self.rows = [], max(0, rows)
        self.headers = [start + g for g, start in enumerate(self.starts)]  # line of each group's header
        self.total = self.rows + len(self.headers)

    def line_of(self, index: int) -> int:
        """The line that shows row `index`."""
        return index + bisect_right(self.starts, index)

    def at_line(self, line: int) -> tuple[int, int | None]:
        """(row index, None) for a row's line, or (-1, group) for a group's header line."""
        above = bisect_right(self.headers, line)
        if above and self.headers[above - 1] == line:
            return -1, above - 1
        return line - above, None

    def row_at_or_after(self, line: int) -> int:
        index, group = self.at_line(line)
        return self.starts[group] if group is not None else index

    def group_of(self, index: int) -> int | None:
        """The group that row `index` is in (None when ungrouped)."""
        return bisect_right(self.starts, index) - 1 if self.starts else None

    def find(self, label: str) -> int | None:
        return next((g for g, group in enumerate(self.groups) if group.label == label), None)

    def stop(self, line: int, step: int) -> int | None:
        """The first line from `line` on, going `step` (1 or -1), that the cursor may stop on; None past the end."""
        while 0 <= line < self.total:
            _, group = self.at_line(line)
            if group is None or self.groups[group].collapsed:
                return line
            line += step
        return None

    def nearest_stop(self, line: int, step: int) -> int | None:
        """A stop from `line` on going `step`, else the nearest one the other way."""
        line = max(0, min(line, self.total - 1))
        found = self.stop(line, step)
        return found if found is not None else self.stop(line, -step)
