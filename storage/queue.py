"""How the operator looks at the queue: an order, a grouping and a filter, each turned into SQL.

Everything here is a constant or a bound parameter: the filter text is typed by the operator, and never becomes SQL.
Each order has a partial index (storage/schema.py) so that at 100,000 pending items a screenful, a count and the
position of one item are each one index walk.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Final

from storage.connection import Connection
from storage.queue_groups import ROW_COLUMNS, GroupedView, read_groups
from storage.records import KIND_LABELS, RISK_RANK, QueueGroup, QueueRow, Risk
from storage.search import FILTER_FIELDS, FieldTerm, Filter, parse_filter, search_text

__all__ = [
    "FILTER_FIELDS",
    "KIND_LABELS",
    "RANK_FACTORS",
    "FieldTerm",
    "Filter",
    "GroupOrder",
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


class GroupOrder(StrEnum):
    name = "name"  # groups by their label
    urgency = "urgency"  # the group holding the most urgent item first (risk, then time left)


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
# What each key column ranks by, in the operator's words: the detail's "why is this here" reads the order's own keys
# through this, so it cannot tell a different story than the ORDER BY does. (source, id) only make keys unique.
RANK_FACTORS: Final[dict[str, str]] = {
    "risk_order": "risk",
    "expires_sort": "time left",
    "created_at": "age",
    _CONFIDENCE: "confidence",
    "agent": "agent",
}

_TRIGRAM: Final = 3  # the full-text index holds every three-character run: shorter words cannot be looked up in it
# Columns the urgency index (storage/schema.py) holds: a filter of these fields alone is counted and found in it,
# never in the table (100k items: ~15 ms against ~500 ms). Its first column is risk_order: `risk:` is a range of it.
_URGENCY_COVERS: Final = frozenset({"risk", "kind", "agent", "action_name", "source", "id"})
_NULLABLE: Final = frozenset({"workflow", "claimed_by"})
Param = str | int


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _short(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(w for w in words if len(search_text(w)) < _TRIGRAM)


def _long(words: Sequence[str]) -> list[str]:
    return [search_text(w) for w in words if len(search_text(w)) >= _TRIGRAM]


def _phrases(words: Sequence[str], joiner: str) -> str:
    """An FTS5 query of `words`, each a quoted phrase (so no word is ever read as FTS5 syntax)."""
    return joiner.join('"' + word.replace('"', '""') + '"' for word in words)


def _field_clause(term: FieldTerm) -> tuple[str, list[Param]]:
    """`(column LIKE ? OR ...)` for one field term, or `column IN (...)` for exact values, or its negation; an absent
    value (no workflow, nobody's claim) is matched as empty, so `-claimed:bob` keeps what nobody holds."""
    column = f"ifnull({term.column}, '')" if term.exclude and term.column in _NULLABLE else term.column
    values: list[Param]
    if term.field == "risk":  # as the urgency index holds it: risk_order (0 = critical)
        column, values = "risk_order", [3 - RISK_RANK[Risk(v)] for v in term.values]
        clause = f"{column} IN ({', '.join('?' for _ in values)})"
    elif term.exact:  # kind (resolved by storage/search.py) and claimed: the values as stored
        values = list(term.values)
        clause = f"{column} IN ({', '.join('?' for _ in values)})"
    else:
        clause = "(" + " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in term.values) + ")"
        values = [_like(v) for v in term.values]
    return (f"NOT {clause}" if term.exclude else clause), values


@dataclass(frozen=True)
class QueueView:
    """Order, grouping and filter of the queue list. The default is the whole queue, most urgent first."""

    order: SortOrder = SortOrder.urgency
    grouping: Grouping = Grouping.none
    filter_text: str = ""
    group_order: GroupOrder = GroupOrder.name
    collapsed: frozenset[str] = frozenset()  # labels of the groups shown as their header alone
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

    @property
    def rank_factors(self) -> tuple[str, ...]:
        """What decides a row's place, most significant first ("source", "risk", "time left", ...): the key columns
        in RANK_FACTORS words; the group column counts, (source, id) as mere tie-breakers do not."""
        group = self.group_column
        named = [RANK_FACTORS.get(key, key if key == group else "") for key in self.key_columns]
        return tuple(name for name in named if name)

    def toggled(self, label: str) -> QueueView:
        """This view with the group `label` collapsed, or expanded if it was collapsed."""
        return replace(self, collapsed=self.collapsed ^ {label})

    @property
    def matching(self) -> QueueView:
        """The view as far as which items match goes (what QueueReads keeps the matches of): groups' order and
        collapsing left out, so they change without searching again."""
        return replace(self, group_order=GroupOrder.name, collapsed=frozenset())

    def where(self) -> tuple[str, tuple[Param, ...]]:
        """The WHERE clause over pending items whose own fields match the filter (each word in the search column)."""
        return self._clauses(self.filter.words, self.filter.excluded)

    def match_query(self) -> tuple[str, tuple[Param, ...]]:
        """SQL selecting the rowids of the pending items the filter keeps, in no order, and its parameters.

        A word of three characters or more matches the item's fields, summary or reasoning: it is looked up in the
        trigram index (items_fts). A shorter word cannot be looked up there, and in prose it would match nearly every
        item: it matches the fields, whose small covering index is scanned, never the table (100k items: ~10 ms
        against ~130 ms). A `-word` leaves out what the same word would find. QueueReads runs this once per filter
        and data change, not per screenful.
        """
        words, excluded = self.filter.words, self.filter.excluded
        where, params = self._clauses(_short(words), _short(excluded))
        conditions = [where]
        fts_params: list[Param] = []
        if _long(words):
            conditions.insert(0, "rowid IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
            fts_params.append(_phrases(_long(words), " AND "))
        if _long(excluded):
            conditions.append("rowid NOT IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)")
            params = (*params, _phrases(_long(excluded), " OR "))
        fields = self.filter.fields
        hint = ""
        if (_short(words) or _short(excluded)) and not fields and len(conditions) == 1:
            hint = "INDEXED BY items_search "
        elif fields and not words and not excluded and all(t.column in _URGENCY_COVERS for t in fields):
            hint = "INDEXED BY items_urgency "
        return f"SELECT rowid FROM items {hint}WHERE {' AND '.join(conditions)}", (*fts_params, *params)

    def _clauses(self, words: Sequence[str], excluded: Sequence[str] = ()) -> tuple[str, tuple[Param, ...]]:
        clauses = ["state = 'pending'"]
        params: list[Param] = []
        for term in self.filter.fields:
            clause, values = _field_clause(term)
            clauses.append(clause)
            params += values
        for word in words:
            clauses.append("search LIKE ? ESCAPE '\\'")
            params.append(_like(search_text(word)))
        for word in excluded:
            clauses.append("search NOT LIKE ? ESCAPE '\\'")
            params.append(_like(search_text(word)))
        return " AND ".join(clauses), tuple(params)

    def describe(self) -> str:
        """One line for the operator: "urgency · grouped by agent · filter: agent:billing"."""
        parts = [f"sorted by {self.order.value}"]
        if self.grouping is not Grouping.none:
            urgent = ", most urgent first" if self.group_order is GroupOrder.urgency else ""
            parts.append(f"grouped by {self.grouping.value}{urgent}")
            if self.collapsed:
                parts.append(f"{len(self.collapsed)} collapsed")
        return " · ".join(parts)


_QUEUE_COLUMNS = ROW_COLUMNS
_GROUP_AT = 13  # a grouped read adds the group column after ROW_COLUMNS
_WHOLE_QUEUE = QueueView()


class _Matches:
    """A filtered view at one state of the data: its rowids in a temp table, and those found so far in display order.

    The filter is searched once (QueueView.match_query) into `temp.queue_matches`, keyed by rowid; then the count is
    known, and the rows in order are found by walking the order's index probing that table, only as far as the rows
    asked for (a screenful of a word that matches a fifth of the queue walks about five screenfuls of the index), and
    from where the last walk stopped. A position is one count along the same walk. Few matches are sorted at once.
    """

    SORT_AT_ONCE: ClassVar[int] = 2_000  # up to this many matches, one sort costs less than walking the index

    def __init__(self, conn: sqlite3.Connection, view: QueueView) -> None:
        self._conn = conn
        self._view = view
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS queue_matches(item INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.queue_matches")
        sql, params = view.match_query()
        self.count = max(0, conn.execute(f"INSERT INTO temp.queue_matches(item) {sql}", params).rowcount)
        self._ordered: list[int] = []
        self._positions: dict[int, int] = {}  # rowid -> index, for the matches walked so far
        self._after: tuple[Any, ...] | None = None  # the order key of the last match walked
        self._done = self.count == 0
        if 0 < self.count <= self.SORT_AT_ONCE:
            self._found([r[0] for r in conn.execute(self._in_order(""))])
            self._done = True

    def first(self, count: int) -> list[int]:
        """The first `count` matches in display order (fewer when the view holds fewer)."""
        if len(self._ordered) < count and not self._done:
            self._walk(count - len(self._ordered))
        return self._ordered[:count]

    def index(self, rowid: int) -> int | None:
        known = self._positions.get(rowid)
        if known is not None or self._done:
            return known
        keys = ", ".join(self._view.key_columns)
        key = self._conn.execute(
            f"SELECT {keys} FROM items WHERE rowid = ? AND rowid IN temp.queue_matches", (rowid,)
        ).fetchone()
        if key is None:
            return None
        marks = ", ".join("?" for _ in key)
        return int(self._conn.execute(self._in_order(f"({keys}) < ({marks})", "count(*)"), key).fetchone()[0])

    def _walk(self, limit: int) -> None:
        keys = self._view.key_columns
        after, params = "", ()
        if self._after is not None:
            after, params = f"({', '.join(keys)}) > ({', '.join('?' for _ in keys)})", self._after
        rows = self._conn.execute(self._in_order(after, f"rowid, {', '.join(keys)}") + " LIMIT ?", (*params, limit))
        found = rows.fetchall()
        self._done = len(found) < limit
        if found:
            self._after = tuple(found[-1][1:])
            self._found([r[0] for r in found])

    def _found(self, rowids: list[int]) -> None:
        start = len(self._ordered)
        self._positions.update(zip(rowids, range(start, start + len(rowids)), strict=True))
        self._ordered.extend(rowids)

    def _in_order(self, condition: str, columns: str = "rowid") -> str:
        """The matches in display order: the order's index walked, each entry probed in the temp table (`+rowid`: so
        the walk, not the probe, drives the query and no sort is needed)."""
        extra = f" AND {condition}" if condition else ""
        order = "" if columns.startswith("count(") else f" ORDER BY {', '.join(self._view.key_columns)}"
        return f"SELECT {columns} FROM items WHERE state = 'pending' AND +rowid IN temp.queue_matches{extra}{order}"


class QueueReads:
    """The pending queue as the list shows it: counts, screenfuls, positions and groups in a view, and alerts' picks.

    A filtered view's matches are found once per filter and data change (`QueueView.match_query`) and kept with the
    part of their order found so far (_Matches), so its count, each screenful and an item's position never search
    again. The data has changed when this connection wrote or another one committed (`PRAGMA data_version`).
    """

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._matches: tuple[QueueView, tuple[int, int], _Matches] | None = None
        self._groups: tuple[QueueView, tuple[int, int], list[QueueGroup]] | None = None

    def count(self, view: QueueView = _WHOLE_QUEUE) -> int:
        if view.group_column is not None:
            with self._db.lock:
                return self._grouped(view).count
        if not view.filter.empty:
            with self._db.lock:
                return self._matched(view).count
        with self._db.lock:
            return int(self._db.conn.execute("SELECT count(*) FROM items WHERE state = 'pending'").fetchone()[0])

    def count_apart(self, view: QueueView) -> int:
        """How many pending items `view` keeps, counted on their own: the matches the list keeps (one view's, see
        `count`) stay as they are. For counts of views not on screen (the view tabs)."""
        with self._db.lock:
            params: tuple[Param, ...] = ()
            if view.filter.empty:
                sql = "SELECT count(*) FROM items WHERE state = 'pending'"
            else:
                match, params = view.match_query()
                sql = f"SELECT count(*) FROM ({match})"
            return int(self._db.conn.execute(sql, params).fetchone()[0])

    def rows(self, offset: int, limit: int, view: QueueView = _WHOLE_QUEUE) -> list[QueueRow]:
        """Rows `offset .. offset+limit-1` of the pending queue in `view`'s order and filter."""
        if view.group_column is not None:
            with self._db.lock:
                return [_queue_row(r, group=r[_GROUP_AT]) for r in self._grouped(view).rows(offset, limit)]
        group = "NULL"
        if not view.filter.empty:
            with self._db.lock:
                wanted = self._matched(view).first(max(0, offset) + max(0, limit))[max(0, offset) :]
                found = {
                    r[0]: r[1:]
                    for r in self._db.conn.execute(
                        f"SELECT rowid, {_QUEUE_COLUMNS}, {group} FROM items"
                        " WHERE rowid IN (SELECT value FROM json_each(?))",
                        (json.dumps(wanted),),
                    )
                }
            # A row gone since the matches were found (another connection's write) is left out, as a fresh query would.
            return [_queue_row(found[r], group=found[r][_GROUP_AT]) for r in wanted if r in found]
        where, params = view.where()
        with self._db.lock:
            rows = self._db.conn.execute(
                f"SELECT {_QUEUE_COLUMNS}, {group} FROM items WHERE {where}"
                f" ORDER BY {', '.join(view.key_columns)} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_queue_row(r, group=r[_GROUP_AT]) for r in rows]

    def index_of(self, source: str, item_id: str, view: QueueView = _WHOLE_QUEUE) -> int | None:
        """The item's position in `view`, or None when it is not pending, the filter hides it or its group is
        collapsed."""
        if view.group_column is not None:
            with self._db.lock:
                return self._grouped(view).index_of(source, item_id)
        if not view.filter.empty:
            with self._db.lock:
                row = self._db.conn.execute(
                    "SELECT rowid FROM items WHERE source = ? AND id = ?", (source, item_id)
                ).fetchone()
                return None if row is None else self._matched(view).index(int(row[0]))
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

    def groups(self, view: QueueView) -> list[QueueGroup]:
        """The groups of `view` in display order, each with how many rows it holds (none when not grouping)."""
        if view.group_column is None:
            return []
        with self._db.lock:
            self._grouped(view)
            assert self._groups is not None
            return list(self._groups[2])

    def _grouped(self, view: QueueView) -> GroupedView:
        """A grouped view's groups, read once per view and data change, and its rows' SQL (call with the lock held)."""
        column = view.group_column
        assert column is not None
        conn = self._db.conn
        if view.filter.empty:
            rows = counts = view.where()
        else:
            self._matched(view.matching)  # fills temp.queue_matches
            counts = ("rowid IN temp.queue_matches", ())
            rows = ("state = 'pending' AND +rowid IN temp.queue_matches", ())
        stamp = (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        if self._groups is None or self._groups[:2] != (view, stamp):
            by_urgency = view.group_order is GroupOrder.urgency
            groups = read_groups(conn, column, counts, by_urgency=by_urgency, collapsed=view.collapsed)
            self._groups = (view, stamp, groups)
        return GroupedView(conn, column, view.key_columns, self._groups[2], rows)

    def _matched(self, view: QueueView) -> _Matches:
        """The view's matches at the data as it is now (call with the lock held).

        The data has changed when another connection committed (`PRAGMA data_version`) or this one wrote
        (`total_changes`, read after filling the temp table, which counts too).
        """
        conn = self._db.conn
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._matches is not None:
            kept_view, kept_stamp, matches = self._matches
            if kept_view == view and kept_stamp == (version, conn.total_changes):
                return matches
        matches = _Matches(conn, view)
        self._matches = (view, (version, conn.total_changes), matches)
        return matches

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

    # Marks (the operator's bulk selection) are held by the screen with the digest seen when marked; these give it
    # the digests of many rows at once, so marking all 10k matches of a filter is one query, not 10k.
    def visible_digests(self, view: QueueView = _WHOLE_QUEUE) -> list[tuple[str, str, str]]:
        """(source, id, digest) of every pending item `view` holds, in no order (a filter's matches as found)."""
        with self._db.lock:
            if view.filter.empty:
                rows = self._db.conn.execute("SELECT source, id, digest FROM items WHERE state = 'pending'")
            else:
                self._matched(view)  # its matches are pending items, found at the data as it is now
                rows = self._db.conn.execute(
                    "SELECT i.source, i.id, i.digest FROM temp.queue_matches AS m JOIN items AS i ON i.rowid = m.item"
                )
            found: list[tuple[str, str, str]] = rows.fetchall()
            return found

    def pending_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The current digest of each (source, id) in `keys` that is still pending; the others are left out."""
        if not keys:
            return {}
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT i.source, i.id, i.digest FROM json_each(?) AS k JOIN items AS i"
                " ON i.source = json_extract(k.value, '$[0]') AND i.id = json_extract(k.value, '$[1]')"
                " WHERE i.state = 'pending'",
                (json.dumps([list(key) for key in keys]),),
            ).fetchall()
        return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}


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
        approvals_required=r[10],
        approvals=r[11] or 0,
        on_expiry=r[12] if isinstance(r[12], str) else "reject",
        group=group,
    )
