"""Rates computed from labels: what `approval-console stats` prints and what the stats screen can show.

Every decision and every expiry is one label, so the labels table answers "how is this agent doing" on its own:
approval, edit, reject and timed-out rates, escalation share, and time to decide. A decision that lost a conflict
(another operator decided first) is counted apart, in `conflicts_lost`: it is in no verdict count and no rate.
All counting is SQL over the labels_time index; only the percentiles read single rows by offset.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from storage.labels import LABEL_VERDICTS


@dataclass(frozen=True)
class DecideTimes:
    count: int  # labels with a measured time (the operator was shown the item)
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class GroupStats:
    total: int  # every label, conflicts lost included
    counts: dict[str, int]  # per verdict: approve, reject, edit, timed_out (conflicts lost are not counted here)
    escalations: int  # labels of escalations (the rest are approvals)
    approve_rate: float | None  # of the human verdicts (approve + reject + edit)
    edit_rate: float | None
    reject_rate: float | None
    timed_out_rate: float | None  # of all labels: nobody decided before the deadline (never a reject)
    escalation_rate: float | None  # of all labels
    seconds_to_decide: DecideTimes
    conflicts_lost: int = 0  # decisions another operator beat: what was decided here did not happen


@dataclass(frozen=True)
class LabelStats:
    since: float | None
    until: float | None
    overall: GroupStats
    by_agent: dict[str, GroupStats] = field(default_factory=dict)
    by_source: dict[str, GroupStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _window(
    since: float | None, until: float | None, agent: str | None, source: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    wanted = [
        (clause, value)
        for clause, value in (
            ("decided_at >= ?", since),
            ("decided_at < ?", until),
            ("agent = ?", agent),
            ("source = ?", source),
        )
        if value is not None
    ]
    return " AND ".join(["1", *(clause for clause, _ in wanted)]), tuple(value for _, value in wanted)


def _percentile(conn: sqlite3.Connection, where: str, params: tuple[Any, ...], count: int, q: float) -> float | None:
    """Nearest-rank percentile of seconds_to_decide."""
    if count == 0:
        return None
    offset = max(0, min(count - 1, int(q * count + 0.999999) - 1))
    row = conn.execute(
        f"SELECT seconds_to_decide FROM labels WHERE {where} AND seconds_to_decide IS NOT NULL"
        " ORDER BY seconds_to_decide LIMIT 1 OFFSET ?",
        (*params, offset),
    ).fetchone()
    return None if row is None else float(row[0])


def _group(
    conn: sqlite3.Connection, since: float | None, until: float | None, agent: str | None, source: str | None = None
) -> GroupStats:
    where, params = _window(since, until, agent, source)
    counts: dict[str, int] = dict.fromkeys(LABEL_VERDICTS, 0)
    lost = 0
    for verdict, conflict_lost, count in conn.execute(
        f"SELECT verdict, outcome IS 'conflict_lost', count(*) FROM labels WHERE {where} GROUP BY 1, 2", params
    ):
        if conflict_lost:
            lost += count
        else:
            counts[verdict] = count
    escalations, timed = conn.execute(
        f"SELECT count(*) FILTER (WHERE kind = 'escalation'), count(seconds_to_decide) FROM labels WHERE {where}",
        params,
    ).fetchone()
    total = sum(counts.values()) + lost
    judged = counts["approve"] + counts["reject"] + counts["edit"]
    return GroupStats(
        total=total,
        counts=counts,
        escalations=escalations,
        approve_rate=_ratio(counts["approve"], judged),
        edit_rate=_ratio(counts["edit"], judged),
        reject_rate=_ratio(counts["reject"], judged),
        timed_out_rate=_ratio(counts["timed_out"], total),
        escalation_rate=_ratio(escalations, total),
        seconds_to_decide=DecideTimes(
            count=timed,
            median=_percentile(conn, where, params, timed, 0.5),
            p90=_percentile(conn, where, params, timed, 0.9),
        ),
        conflicts_lost=lost,
    )


def label_stats(conn: sqlite3.Connection, since: float | None = None, until: float | None = None) -> LabelStats:
    """Rates over the labels decided in [since, until), overall, per agent and per source."""
    where, params = _window(since, until, None)
    agents = [r[0] for r in conn.execute(f"SELECT DISTINCT agent FROM labels WHERE {where} ORDER BY agent", params)]
    sources = [r[0] for r in conn.execute(f"SELECT DISTINCT source FROM labels WHERE {where} ORDER BY source", params)]
    return LabelStats(
        since=since,
        until=until,
        overall=_group(conn, since, until, None),
        by_agent={agent: _group(conn, since, until, agent) for agent in agents},
        by_source={source: _group(conn, since, until, None, source) for source in sources},
    )
