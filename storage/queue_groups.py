"""Grouped queue views: the groups in display order (by name, or the most urgent first), collapsed groups left out.

A grouped view's rows are read one group at a time, each a walk of its own index (the group column, then the order's
keys; storage/schema.py), so the groups can come in any order at no cost per row, and a collapsed group's rows are
never read: its header and its count are all the list shows. The groups themselves (one GROUP BY, plus one index seek
per group for the urgency order) are read once per view and data change (QueueReads keeps them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from storage.records import QueueGroup
from storage.schema import URGENCY_ORDER

__all__ = ["ROW_COLUMNS", "GroupedView", "read_groups"]

# Columns the queue list reads; the partial index in storage/schema.py covers all but the two-person progress and what
# the agent does at the deadline, which are read from the payload of the rows shown only (a screenful, or an alert's
# hundred).
ROW_COLUMNS: Final = (
    "source, id, kind, agent, action_name, risk, confidence, created_at, expires_at, claimed_by,"
    " coalesce(json_extract(payload, '$.approvals_required'), 1), json_array_length(payload, '$.approvals'),"
    " json_extract(payload, '$.on_expiry')"
)


def read_groups(
    conn: sqlite3.Connection,
    column: str,
    where: tuple[str, tuple[Any, ...]],
    *,
    by_urgency: bool,
    collapsed: frozenset[str],
) -> list[QueueGroup]:
    """The groups of the rows `where` selects, by name, or by their most urgent item (ties by name)."""
    clause, params = where
    rows = conn.execute(
        f"SELECT {column}, count(*) FROM items WHERE {clause} GROUP BY {column} ORDER BY {column}", params
    ).fetchall()
    groups = [QueueGroup(str(label), int(count), str(label) in collapsed) for label, count in rows]
    if by_urgency:
        # The first row of each group in urgency order: one seek in the group's index (items_source, items_agent).
        first = f"SELECT {URGENCY_ORDER} FROM items WHERE {clause} AND {column} = ? ORDER BY {URGENCY_ORDER} LIMIT 1"
        ranks = {g.label: tuple(conn.execute(first, (*params, g.label)).fetchone() or ()) for g in groups}
        groups.sort(key=lambda g: ranks[g.label])  # stable: equal ranks stay by name
    return groups


class GroupedView:
    """Rows and positions of a grouped view, given its groups in display order and the SQL selecting its rows."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        column: str,
        keys: Sequence[str],
        groups: Sequence[QueueGroup],
        where: tuple[str, tuple[Any, ...]],
    ) -> None:
        self._conn = conn
        self._column = column
        self._keys = ", ".join(keys)
        self._groups = groups
        self._where, self._params = where

    @property
    def count(self) -> int:
        """Rows listed: those of the groups that are not collapsed."""
        return sum(g.size for g in self._groups if not g.collapsed)

    def rows(self, offset: int, limit: int) -> list[tuple[Any, ...]]:
        """Rows `offset .. offset+limit-1` of the listed groups, each with its group's value last."""
        found: list[tuple[Any, ...]] = []
        start, end = max(0, offset), max(0, offset) + max(0, limit)
        first = 0  # the index of the current group's first row
        for group in self._groups:
            if first >= end:
                break
            if group.collapsed:
                continue
            last = first + group.size
            if last > start:
                skip = max(0, start - first)
                take = min(last, end) - first - skip
                found += self._conn.execute(
                    f"SELECT {ROW_COLUMNS}, {self._column} FROM items WHERE {self._where} AND {self._column} = ?"
                    f" ORDER BY {self._keys} LIMIT ? OFFSET ?",
                    (*self._params, group.label, take, skip),
                ).fetchall()
            first = last
        return found

    def index_of(self, source: str, item_id: str) -> int | None:
        """The item's position among the listed rows; None when it is not listed (or its group is collapsed)."""
        key = self._conn.execute(
            f"SELECT {self._keys} FROM items WHERE source = ? AND id = ? AND {self._where}",
            (source, item_id, *self._params),
        ).fetchone()
        if key is None:
            return None
        label = str(key[0])  # the group column leads the keys of a grouped view
        before = 0
        for group in self._groups:
            if group.label == label:
                break
            before += 0 if group.collapsed else group.size
        else:
            return None
        if group.collapsed:
            return None
        marks = ", ".join("?" for _ in key)
        within = self._conn.execute(
            f"SELECT count(*) FROM items WHERE {self._where} AND {self._column} = ? AND ({self._keys}) < ({marks})",
            (*self._params, label, *key),
        ).fetchone()[0]
        return before + int(within)
