"""Saved views of the queue (the config's [[views]], else a default few): each a name and a QueueView, and their
counts, found on a read-only connection of their own so that counting never waits on, or holds up, the queue's reads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from console.engine.config import Config, block_error
from storage.db import Store
from storage.queue import Grouping, QueueView, SortOrder
from storage.search import FIELD_VALUES, FILTER_FIELDS, parse_filter


@dataclass(frozen=True)
class SavedView:
    name: str
    view: QueueView


def check_views(config: Config) -> None:
    """Raises ConfigError (file, line, fix) for a [[views]] filter the filter itself would refuse."""
    for index, saved in enumerate(config.views):
        parsed = parse_filter(saved.filter)
        if parsed.unknown:
            raise block_error(
                config,
                "views",
                index,
                "filter",
                f"view {saved.name!r}: filter {saved.filter!r} has an unknown field {parsed.unknown[0]}:",
                f"use the fields {', '.join(f'{f}:' for f in FILTER_FIELDS)}, or quote a word that has a colon",
            )
        if parsed.refused:
            field, value = parsed.refused[0]
            raise block_error(
                config,
                "views",
                index,
                "filter",
                f"view {saved.name!r}: filter {saved.filter!r}: {value!r} is not a {field}",
                f"{field}: takes {', '.join(FIELD_VALUES[field])}",
            )


def saved_views(config: Config) -> tuple[SavedView, ...]:
    return tuple(
        SavedView(v.name, QueueView(SortOrder(v.sort), Grouping(v.group), v.filter)) for v in config.saved_views()
    )


class ViewCounts:
    """How many pending items each saved view keeps. `count` runs in a worker thread, one call at a time; each view
    is one count over an index or the full-text index (QueueReads.count_apart), never a load of its rows."""

    def __init__(self, db_path: Path, views: Sequence[SavedView]) -> None:
        self._db_path = db_path
        self._views = tuple(views)
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._closed = False

    def count(self) -> tuple[int, ...] | None:
        """The counts in the views' order; None once closed."""
        with self._lock:
            if self._closed:
                return None
            if self._store is None:
                self._store = Store(self._db_path, readonly=True)
            return tuple(self._store.queue.count_apart(saved.view) for saved in self._views)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._store is not None:
                self._store.close()
                self._store = None
