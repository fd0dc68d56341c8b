"""How the agents are doing over a window of time: what the stats screen shows.

Rates, escalation share and time to decide come from the labels (`storage.label_stats`), so the screen and
`approval-console stats` always give the same figures. What labels cannot say comes from the items and decisions:
how many items arrived, and how many were pending at each moment of the window (the queue depth over time).

An item counts as pending from when this console first saw it (items.first_seen_at) until it was decided here
(the earliest decision on that version that was not undone), or left the queue (items.updated_at of a removed
item), or until now when it is still pending. Depth is sampled at the end of each of `buckets` equal slices of
the window, so the last sample is the queue as it is now.

All of it is aggregated in SQL: one pass over the items for every grouping; the result is O(groups x buckets) numbers,
whatever the size of the database.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Final

from storage.connection import open_readonly
from storage.label_stats import LabelStats, label_stats

__all__ = ["BUCKETS", "DEFAULT_WINDOW", "WINDOWS", "Traffic", "WindowStats", "read_window_stats", "window_stats"]

WINDOWS: Final[dict[str, float]] = {"1h": 3600.0, "24h": 86_400.0, "7d": 7 * 86_400.0}
DEFAULT_WINDOW: Final = "24h"
BUCKETS: Final = 60  # 1 h: a minute each; 24 h: 24 min; 7 d: 2 h 48 min

# When each item stopped being pending (NULL: it still is). decided_at is RFC 3339 text; julianday() reads its offset
# and keeps milliseconds, so the epoch is rounded to them (else 22:20:00 could land a hair before its bucket).
_SPANS: Final = """
SELECT i.agent, i.source, i.first_seen_at AS start,
    CASE WHEN i.state = 'pending' THEN NULL ELSE coalesce(
        (SELECT min(round((julianday(d.decided_at) - 2440587.5) * 86400.0, 3)) FROM decisions d
         WHERE d.source = i.source AND d.item_id = i.id AND d.item_digest = i.digest AND d.sync_state != 'undone'),
        i.updated_at) END AS stop
FROM items i
WHERE i.first_seen_at <= :until AND (i.state = 'pending' OR i.updated_at > :since)
"""
# Per (agent, source): pending at the start of the window ('start'), then arrivals ('in') and departures ('out') per
# bucket. One pass serves both groupings (and the total): Python adds the pairs up.
_EVENTS: Final = f"""
WITH spans AS MATERIALIZED ({_SPANS}),
events(agent, source, what, at) AS (
    SELECT agent, source, 'in', start FROM spans WHERE start > :since
    UNION ALL
    SELECT agent, source, 'out', stop FROM spans WHERE stop > :since AND stop <= :until
)
SELECT agent, source, 'start', -1, count(*) FROM spans
WHERE start <= :since AND (stop IS NULL OR stop > :since) GROUP BY 1, 2
UNION ALL
SELECT agent, source, what, min(:last, CAST((at - :since) / :width AS INTEGER)), count(*) FROM events
GROUP BY 1, 2, 3, 4
"""


@dataclass(frozen=True)
class Traffic:
    """Items that arrived in the window, and the queue depth at the end of each bucket (oldest first)."""

    arrived: int
    depth: tuple[int, ...]

    @property
    def pending_now(self) -> int:
        return self.depth[-1] if self.depth else 0


@dataclass(frozen=True)
class WindowStats:
    since: float
    until: float
    bucket_seconds: float
    labels: LabelStats  # rates per agent and per source: the figures of `approval-console stats`
    traffic: Traffic  # all agents together
    traffic_by_agent: dict[str, Traffic]
    traffic_by_source: dict[str, Traffic]


class _Counter:
    """Adds up the events of one group: items pending at the start, arrivals, and the change of depth per bucket."""

    def __init__(self, buckets: int) -> None:
        self.initial = 0
        self.arrived = 0
        self.deltas = [0] * buckets

    def add(self, what: str, bucket: int, count: int) -> None:
        if what == "start":
            self.initial += count
        elif what == "in":
            self.arrived += count
            self.deltas[bucket] += count
        else:
            self.deltas[bucket] -= count

    def traffic(self) -> Traffic:
        return Traffic(self.arrived, tuple(accumulate(self.deltas, initial=self.initial))[1:])


def _traffic(
    conn: sqlite3.Connection, since: float, until: float, buckets: int
) -> tuple[Traffic, dict[str, Traffic], dict[str, Traffic]]:
    """Traffic in total, per agent and per source."""
    params = {"since": since, "until": until, "width": (until - since) / buckets, "last": buckets - 1}
    total = _Counter(buckets)
    agents: dict[str, _Counter] = {}
    sources: dict[str, _Counter] = {}
    for agent, source, what, bucket, count in conn.execute(_EVENTS, params):
        for counter in (
            total,
            agents.setdefault(agent, _Counter(buckets)),
            sources.setdefault(source, _Counter(buckets)),
        ):
            counter.add(what, bucket, count)
    return (
        total.traffic(),
        {name: agents[name].traffic() for name in sorted(agents)},
        {name: sources[name].traffic() for name in sorted(sources)},
    )


def window_stats(conn: sqlite3.Connection, seconds: float, now: float, buckets: int = BUCKETS) -> WindowStats:
    """Everything the stats screen shows for the window (now - seconds, now]."""
    if seconds <= 0 or buckets <= 0:
        raise ValueError("the window and the number of buckets must be positive")
    since = now - seconds
    total, by_agent, by_source = _traffic(conn, since, now, buckets)
    return WindowStats(
        since=since,
        until=now,
        bucket_seconds=seconds / buckets,
        labels=label_stats(conn, since=since, until=now),
        traffic=total,
        traffic_by_agent=by_agent,
        traffic_by_source=by_source,
    )


def read_window_stats(db_path: Path, seconds: float, now: float, buckets: int = BUCKETS) -> WindowStats:
    """`window_stats` over a read-only connection of its own: safe in a worker thread, never blocks a writer."""
    with closing(open_readonly(db_path)) as conn:
        return window_stats(conn, seconds, now, buckets)
