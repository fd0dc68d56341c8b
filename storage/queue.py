"""How the operator looks at the queue: an order, a grouping and a filter, each turned into SQL.

Everything here is a constant or a bound parameter: the filter text is typed by the operator, and never becomes SQL.
Each order has a partial index (storage/schema.py) so that at 100,000 pending items a screenful, a count and the
position of one item are each one index walk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from storage.connection import Connection
from storage.records import KIND_LABELS, QueueRow, Risk

__all__ = [
    "FILTER_FIELDS",
    "KIND_LABELS",
    "Filter",
    "Grouping",
    "QueueReads",
    "QueueView",
    "SortOrder",
    "parse_filter",
    "search_text",
]


class SortOrder(StrEnum):
    urgency = "urgency"  # risk, then time left: the default
    age = "age"  # oldest first
    confidence = "confidence"  # least sure first; an item without a confidence is the least sure of all
    agent = "agent"  # by agent name, then urgency


class Grouping(StrEnum):
    none = "none"
    source = "source"
    agent = "agent"


# Each order's key columns, most significant first, all ascending; (source, id) makes every key unique, so
# "the rows before this one" is a row-value comparison and an item's position is a count over the index.
_URGENCY_TAIL: Final = ("risk_order", "expires_sort", "created_at", "source", "id")
_CONFIDENCE: Final = "ifnull(confidence, -1.0)"  # no confidence sorts before every real one (0..1)
ORDER_KEYS: Final[dict[SortOrder, tuple[str, ...]]] = {
    SortOrder.urgency: _URGENCY_TAIL,
    SortOrder.age: ("created_at", "source", "id"),
    SortOrder.confidence: (_CONFIDENCE, "created_at", "source", "id"),
    SortOrder.agent: ("agent", *_URGENCY_TAIL),
}
_GROUP_COLUMN: Final[dict[Grouping, str]] = {Grouping.source: "source", Grouping.agent: "agent"}

# Filter tokens `field:value`; a plain word matches any of these fields.
FILTER_FIELDS: Final[dict[str, str]] = {
    "agent": "agent",
    "action": "action_name",
    "source": "source",
    "kind": "kind",
    "risk": "risk",
    "workflow": "workflow",
    "id": "id",
}
_KIND_BY_LABEL: Final = {label.casefold(): kind for kind, label in KIND_LABELS.items()}
_TOKEN: Final = re.compile(r'(?:(\w+):)?(?:"([^"]*)"?|(\S+))')


@dataclass(frozen=True)
class Filter:
    """A parsed filter: (column, value) pairs that must each match, and words that must each match somewhere."""

    fields: tuple[tuple[str, str], ...] = ()
    words: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()  # `name:` prefixes that are no field (their tokens are matched as words)

    @property
    def empty(self) -> bool:
        return not self.fields and not self.words


def parse_filter(text: str) -> Filter:
    """`agent:billing refund "two words"`: field tokens narrow one column, other words match any column.

    Every match is a case-insensitive substring. An unknown `name:` prefix is taken as part of a plain word, and
    named in `unknown` so the operator can be told. `kind:` takes the KIND column's label (`ESC`) too.
    """
    fields: list[tuple[str, str]] = []
    words: list[str] = []
    unknown: list[str] = []
    for match in _TOKEN.finditer(text):
        name, quoted, bare = match.group(1), match.group(2), match.group(3)
        value = quoted if quoted is not None else bare or ""
        column = FILTER_FIELDS.get(name.lower()) if name else None
        if column is not None:
            if column == "kind":
                value = _KIND_BY_LABEL.get(value.casefold(), value)
            if value:
                fields.append((column, value))
        elif name:
            if name not in unknown:
                unknown.append(name)
            words.append(f"{name}:{value}")
        elif value:
            words.append(value)
    return Filter(tuple(fields), tuple(words), tuple(unknown))


def search_text(*parts: str) -> str:
    """What a plain filter word is matched against: the fields joined and case-folded (stored per item)."""
    return " ".join(parts).casefold()


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class QueueView:
    """Order, grouping and filter of the queue list. The default is the whole queue, most urgent first."""

    order: SortOrder = SortOrder.urgency
    grouping: Grouping = Grouping.none
    filter_text: str = ""
    _filter: Filter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_filter", parse_filter(self.filter_text))

    @property
    def filter(self) -> Filter:
        return self._filter

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The ORDER BY columns: the group column first (when grouping), then the order's key."""
        keys = ORDER_KEYS[self.order]
        group = _GROUP_COLUMN.get(self.grouping)
        if group is None or keys[0] == group:
            return keys
        return (group, *(k for k in keys if k != group))

    @property
    def group_column(self) -> str | None:
        return _GROUP_COLUMN.get(self.grouping)

    def where(self) -> tuple[str, tuple[str, ...]]:
        """The WHERE clause over pending items, and its parameters."""
        clauses = ["state = 'pending'"]
        params: list[str] = []
        for column, value in self.filter.fields:
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(_like(value))
        if self.filter.words:
            # A word can be anywhere in the search column, so no index can seek it; scanning the small covering index
            # of that column finds the matches several times faster than walking the table (100k items: ~10 ms
            # against ~130 ms), and the outer query then walks its order index probing that set.
            words = " AND ".join("search LIKE ? ESCAPE '\\'" for _ in self.filter.words)
            clauses.append(
                f"rowid IN (SELECT rowid FROM items INDEXED BY items_search WHERE state = 'pending' AND {words})"
            )
            params.extend(_like(search_text(word)) for word in self.filter.words)
        return " AND ".join(clauses), tuple(params)

    def count_query(self) -> tuple[str, tuple[str, ...]]:
        """SQL counting the view's rows: words alone are counted on their covering index, never touching the table."""
        if self.filter.words and not self.filter.fields:
            words = " AND ".join("search LIKE ? ESCAPE '\\'" for _ in self.filter.words)
            return (
                f"SELECT count(*) FROM items INDEXED BY items_search WHERE state = 'pending' AND {words}",
                tuple(_like(search_text(word)) for word in self.filter.words),
            )
        where, params = self.where()
        return f"SELECT count(*) FROM items WHERE {where}", params

    def describe(self) -> str:
        """One line for the operator: "urgency · grouped by agent · filter: agent:billing"."""
        parts = [f"sorted by {self.order.value}"]
        if self.grouping is not Grouping.none:
            parts.append(f"grouped by {self.grouping.value}")
        return " · ".join(parts)


# Columns the queue list reads; the partial index in storage/schema.py covers them so a screenful is one index walk.
_QUEUE_COLUMNS = "source, id, kind, agent, action_name, risk, confidence, created_at, expires_at, claimed_by"
_WHOLE_QUEUE = QueueView()


class QueueReads:
    """The pending queue as the list shows it: counts, screenfuls, positions and groups in a view, and alerts' picks."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def count(self, view: QueueView = _WHOLE_QUEUE) -> int:
        sql, params = view.count_query()
        with self._db.lock:
            return int(self._db.conn.execute(sql, params).fetchone()[0])

    def rows(self, offset: int, limit: int, view: QueueView = _WHOLE_QUEUE) -> list[QueueRow]:
        """Rows `offset .. offset+limit-1` of the pending queue in `view`'s order and filter."""
        where, params = view.where()
        group = view.group_column or "NULL"
        with self._db.lock:
            rows = self._db.conn.execute(
                f"SELECT {_QUEUE_COLUMNS}, {group} FROM items WHERE {where}"
                f" ORDER BY {', '.join(view.key_columns)} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_queue_row(r, group=r[10]) for r in rows]

    def index_of(self, source: str, item_id: str, view: QueueView = _WHOLE_QUEUE) -> int | None:
        """The item's position in `view`, or None when it is not pending or the filter hides it."""
        where, params = view.where()
        keys = view.key_columns
        with self._db.lock:
            key = self._db.conn.execute(
                f"SELECT {', '.join(keys)} FROM items WHERE source = ? AND id = ? AND {where}",
                (source, item_id, *params),
            ).fetchone()
            if key is None:
                return None
            marks = ", ".join("?" for _ in keys)
            return int(
                self._db.conn.execute(
                    f"SELECT count(*) FROM items WHERE {where} AND ({', '.join(keys)}) < ({marks})", (*params, *key)
                ).fetchone()[0]
            )

    def groups(self, view: QueueView) -> list[tuple[str, int]]:
        """The groups of `view` in display order, each with how many rows it holds (none when not grouping)."""
        column = view.group_column
        if column is None:
            return []
        where, params = view.where()
        with self._db.lock:
            rows = self._db.conn.execute(
                f"SELECT {column}, count(*) FROM items WHERE {where} GROUP BY {column} ORDER BY {column}", params
            ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def new_urgent(self, since: float, ranks: int = 2) -> list[QueueRow]:
        """Pending items first seen after `since` whose risk is among the top `ranks` (2: high and critical)."""
        return self._first_100("first_seen_at > ? AND risk_order < ?", "first_seen_at", (since, ranks))

    def deadlines_between(self, after: float, until: float) -> list[QueueRow]:
        """Pending items whose deadline falls after `after` and before `until` (soonest first, at most 100).

        The lower bound matters: items already past their deadline (the source has not expired them yet) must not
        fill the 100 and hide the ones about to pass.
        """
        return self._first_100("expires_sort > ? AND expires_sort < ?", "expires_sort", (after, until))

    def _first_100(self, where: str, order: str, params: tuple[float, ...]) -> list[QueueRow]:
        """The first 100 pending items in `order` that `where` (constant SQL, bound `params`) selects: for alerts."""
        with self._db.lock:
            rows = self._db.conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM items WHERE state = 'pending' AND {where} ORDER BY {order} LIMIT 100",
                params,
            ).fetchall()
        return [_queue_row(r) for r in rows]


def _queue_row(r: Sequence[Any], group: str | None = None) -> QueueRow:
    return QueueRow(
        source=r[0],
        id=r[1],
        kind=r[2],
        agent=r[3],
        action=r[4],
        risk=Risk(r[5]),
        confidence=r[6],
        created_at=r[7],
        expires_at=r[8],
        claimed_by=r[9],
        group=group,
    )
