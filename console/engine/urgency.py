"""What is worth someone's attention, once: a new item of an urgent risk, and a deadline about to pass.

The one home of that rule. The app's alerts (bell, toast, desktop) and the pager (a webhook when the operator is away)
each keep their own `UrgencyWatch`, so each says every item once in its own channel; what they say is theirs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final, Protocol

from storage.records import QueueRow, Risk

OVERLAP_SECONDS: Final = 5.0
URGENT_RISKS: Final = frozenset({Risk.high, Risk.critical})


class UrgencyReads(Protocol):
    """The two queue reads the watch needs (the session and storage's queue reads provide them)."""

    def new_urgent(self, since: float, ranks: int = 2) -> list[QueueRow]: ...

    def deadlines_between(self, after: float, until: float) -> list[QueueRow]: ...


class UrgencyWatch:
    """New items of `risks` since the last look, and deadlines within `deadline_seconds`; each item once as new and
    once as due."""

    def __init__(self, started_at: float, deadline_seconds: float, risks: Collection[Risk] = URGENT_RISKS) -> None:
        self.deadline_seconds = deadline_seconds
        self.risks = frozenset(risks)
        # The reads take "the top N ranks": enough to cover the least urgent risk watched, filtered below.
        self._ranks = 4 - min((risk.rank for risk in self.risks), default=4)
        self._seen_since = started_at
        self._announced_new: set[tuple[str, str]] = set()
        self._announced_due: set[tuple[str, str]] = set()

    def new_items(self, reads: UrgencyReads, now: float) -> list[QueueRow]:
        """Items of the watched risks first seen since the last look, not said before (first seen first)."""
        if not self._ranks:
            return []
        found = reads.new_urgent(self._seen_since, self._ranks)
        rows = [r for r in found if r.risk in self.risks and (r.source, r.id) not in self._announced_new]
        # The next look starts a little before this one: a write stamped just before `now` but committed after the
        # query is still found, and the set keeps it from being said twice.
        self._seen_since = max(self._seen_since, now - OVERLAP_SECONDS)
        self._announced_new.update((r.source, r.id) for r in rows)
        return rows

    def deadlines(self, reads: UrgencyReads, now: float) -> list[QueueRow]:
        """Items whose deadline is within `deadline_seconds` from now, not said before (soonest first)."""
        if self.deadline_seconds <= 0:
            return []
        rows = []
        for row in reads.deadlines_between(now, now + self.deadline_seconds):
            key = (row.source, row.id)
            if key in self._announced_due or row.expires_at is None:
                continue
            self._announced_due.add(key)
            rows.append(row)
        return rows
