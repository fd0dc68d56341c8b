"""Where the queue list gets its rows: the provider protocols the app implements over SQLite (storage/queue.py).

The provider owns order and filter (it runs SQL) and must be cheap for a small `limit`: the list asks only for the
pages of rows on screen. A grouped provider lists its rows ordered by group and says how many each group holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from storage.records import QueueGroup, QueueRow

__all__ = ["GroupedRowProvider", "RowKey", "RowProvider"]

RowKey = tuple[str, str]  # (source, item id): what "the same item" means across refreshes


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
    """A provider whose rows come in groups: `groups()` lists them in display order (label, size, collapsed), or
    nothing; the rows of a collapsed group are not among its rows."""

    def groups(self) -> Sequence[QueueGroup]: ...
