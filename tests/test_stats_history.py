"""The stats screen (`s`) and the decision history (`h`): exact figures on a database filled with known decisions,
the screens driven with Pilot, and snapshots of both (fixed clock, fixed data, fixed size).

The history is built through the real Store (decisions, sync answers, undo, expiry, label answers). The Store stamps
some columns with the wall clock (when an item was first seen, when a row changed); those are pinned afterwards to
known times with plain UPDATEs, so every expected figure below can be worked out by hand.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from console.engine.config import Config
from console.engine.session import Session
from console.tui.app import ApprovalApp
from console.tui.screens.history import PAGE_SIZE, HistoryScreen, remedy, sync_text
from console.tui.screens.main import MainScreen
from console.tui.screens.stats import StatsScreen
from storage.db import DecisionSyncUpdate, Removal, Store
from storage.labels import LabelSyncState, LabelSyncUpdate
from storage.records import Decision, DecisionRow, SyncState, Verdict, item_digest
from storage.stats import WINDOWS, Traffic, read_window_stats, window_stats
from tests.conftest import eventually, screen_text
from tests.factories import item
from widgets.charts import column_rows, resample, share_bar, share_cells, sparkline

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
T = NOW.timestamp()
SIZE = (120, 36)
HOSTILE = "evil\x1b[2J\u202eagent"  # an agent name with a terminal escape and a bidi override
SnapCompare = Callable[..., bool]


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def epoch(minutes: float) -> float:
    return T + minutes * 60


# (id, source, agent, kind, first seen, minutes before NOW)
ITEMS = (
    ("b1", "billing", "billing-agent", "approval", -50),
    ("b2", "billing", "billing-agent", "approval", -30),
    ("b3", "billing", "billing-agent", "approval", -20),
    ("b4", "billing", "billing-agent", "escalation", -120),
    ("b5", "billing", "billing-agent", "approval", -15),
    ("o1", "billing", "billing-agent", "approval", -3 * 1440),
    ("s1", "support", "support-agent", "escalation", -300),
    ("s2", "support", "support-agent", "approval", -10),
    ("s3", "support", "support-agent", "approval", -40),
    ("s4", "support", HOSTILE, "approval", -3),
    ("s5", "support", "support-agent", "approval", -8),
)


class History:
    """The known history: fills a Store, then pins its wall-clock columns."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.items = {
            item_id: item(
                item_id,
                source=source,
                agent=agent,
                kind=kind,
                output={"summary": "draft"} if kind == "escalation" else None,
                risk="medium",
            )
            for item_id, source, agent, kind, _ in ITEMS
        }

    def fill(self) -> None:
        store = self.store
        for source in ("billing", "support"):
            store.items.apply_changes(source, [i for i in self.items.values() if i.source == source], [], "c1")
        with store.db.conn:
            store.db.conn.executemany(
                "UPDATE items SET first_seen_at = ?, updated_at = ? WHERE id = ?",
                [(epoch(seen), epoch(seen), item_id) for item_id, *_, seen in ITEMS],
            )
        self.decide("b1", Verdict.approve, decided=-40, shown=-45)  # 300 s to decide
        self.decide("b2", Verdict.reject, decided=-25, shown=-29, reason_code="wrong_target", comment="wrong customer")
        self.decide("b3", Verdict.edit, decided=-10, shown=-20, edited={"amount": 625.0, "customer_id": "cus_1"})
        self.decide("b4", Verdict.approve, decided=-90, shown=-100)  # 600 s
        self.decide("o1", Verdict.approve, decided=-2 * 1440, shown=-3 * 1440)  # a day; outside 24 h
        self.decide("s5", Verdict.reject, decided=-6, shown=-7, reason_code="unsafe")  # 60 s
        self.decide("s3", Verdict.approve, decided=-35, shown=-38, hold=60)
        store.outbox.undo("d-s3", "alice")  # taken back: no label, the item is pending again
        store.outbox.mark_sending(["d-b1", "d-b2", "d-b3", "d-b4", "d-o1", "d-s5"])
        store.outbox.record_results(
            [
                *(
                    DecisionSyncUpdate(f"d-{i}", SyncState.applied, "applied", "applied")
                    for i in ("b1", "b2", "b4", "o1")
                ),
                DecisionSyncUpdate("d-b3", SyncState.conflict, "stale", "the item changed after you saw it"),
                DecisionSyncUpdate("d-s5", SyncState.failed, "http_400", "the source refused the decision (400)"),
            ]
        )
        store.labels.record([LabelSyncUpdate("d-b1", LabelSyncState.refused, "unknown agent billing-agent")])
        store.items.apply_changes("support", [], [Removal("s1", "expired")], "c2")  # nobody decided it in time
        with store.db.conn:
            store.db.conn.execute("UPDATE items SET updated_at = ? WHERE id = 's1'", (epoch(-180),))
            store.db.conn.execute("UPDATE labels SET decided_at = ? WHERE item_id = 's1'", (epoch(-180),))

    def decide(
        self, item_id: str, verdict: Verdict, decided: float, shown: float, hold: float = 0.0, **details: Any
    ) -> None:
        target = self.items[item_id]
        edited = details.pop("edited", None)
        decision = Decision(
            id=f"d-{item_id}",
            source=target.source,
            item_id=item_id,
            item_digest=target.digest,
            verdict=verdict,
            edited=edited,
            edited_digest=None if edited is None else item_digest(edited),
            operator="alice",
            decided_at=at(decided),
            **details,
        )
        self.store.outbox.record(decision, hold_seconds=hold, first_shown_at=at(shown))
        with self.store.db.conn:
            self.store.db.conn.execute("UPDATE items SET updated_at = ? WHERE id = ?", (epoch(decided), item_id))


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    session = Session(Config(operator="alice"), tmp_path / "data", token_for=lambda _name: None)
    History(session.store).fill()
    yield session
    session.store.close()  # an app run closes them already; the figure tests run none (closing twice is harmless)
    session.background_store.close()


@pytest.fixture
def db(session: Session) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(session.store.path)) as conn:
        yield conn


def depth_steps(steps: dict[int, int], buckets: int = 60) -> tuple[int, ...]:
    """A depth series from the buckets where it changes (0 before the first)."""
    series, level = [], 0
    for bucket in range(buckets):
        level = steps.get(bucket, level)
        series.append(level)
    return tuple(series)


# ------------------------------------------------------------------------------------------------------ figures


def test_rates_and_median_over_a_day(db: sqlite3.Connection) -> None:
    stats = window_stats(db, WINDOWS["24h"], T)
    overall = stats.labels.overall
    # b1, b4 approved; b2, s5 rejected; b3 edited; s1 expired. o1 is older; s3 was undone: no label.
    assert overall.counts == {"approve": 2, "reject": 2, "edit": 1, "timed_out": 1}
    assert (overall.approve_rate, overall.edit_rate, overall.reject_rate) == (0.4, 0.2, 0.4)
    assert overall.timed_out_rate == round(1 / 6, 4)
    assert overall.escalation_rate == round(2 / 6, 4), "b4 and s1 are escalations"
    # Seconds to decide: 60, 240, 300, 600, 600.
    assert (overall.seconds_to_decide.median, overall.seconds_to_decide.p90) == (300.0, 600.0)
    billing, support = stats.labels.by_source["billing"], stats.labels.by_source["support"]
    assert billing.counts == {"approve": 2, "reject": 1, "edit": 1, "timed_out": 0}
    assert support.counts == {"approve": 0, "reject": 1, "edit": 0, "timed_out": 1}
    assert (support.reject_rate, support.timed_out_rate, support.escalation_rate) == (1.0, 0.5, 0.5)
    assert set(stats.labels.by_agent) == {"billing-agent", "support-agent"}
    assert stats.traffic.arrived == 10 and stats.traffic.pending_now == 4  # all but o1; b5, s2, s3, s4 pending
    assert {k: v.arrived for k, v in stats.traffic_by_source.items()} == {"billing": 5, "support": 5}


def test_queue_depth_over_the_last_hour(db: sqlite3.Connection) -> None:
    stats = window_stats(db, WINDOWS["1h"], T)
    assert stats.bucket_seconds == 60.0
    # One bucket a minute from NOW-60m: b1 in at -50, out at -40 when s3 came in (its decision was undone),
    # b2 -30..-25, b3 -20..-10 (when s2 came in), b5 from -15, s5 -8..-6, s4 from -3.
    expected = depth_steps({10: 1, 20: 1, 30: 2, 35: 1, 40: 2, 45: 3, 50: 3, 52: 4, 54: 3, 57: 4})
    assert stats.traffic.depth == expected
    assert stats.traffic_by_agent["billing-agent"] == Traffic(
        arrived=4, depth=depth_steps({10: 1, 20: 0, 30: 1, 35: 0, 40: 1, 45: 2, 50: 1})
    )
    assert stats.traffic_by_agent[HOSTILE].depth[-1] == 1
    assert {k: (v.arrived, v.pending_now) for k, v in stats.traffic_by_source.items()} == {
        "billing": (4, 1),
        "support": (4, 3),
    }
    labels = stats.labels.overall  # b1 approve, b2 reject, b3 edit, s5 reject
    assert labels.counts == {"approve": 1, "reject": 2, "edit": 1, "timed_out": 0}
    assert labels.seconds_to_decide.median == 240.0, "of 60, 240, 300, 600: nearest rank"


def test_a_week_reaches_older_decisions(session: Session) -> None:
    stats = read_window_stats(session.store.path, WINDOWS["7d"], T)
    assert stats.traffic.arrived == 11 and stats.labels.overall.total == 7
    assert stats.labels.overall.seconds_to_decide.median == 300.0, "of 60, 240, 300, 600, 600, 86400"
    assert stats.labels.by_agent["billing-agent"].counts["approve"] == 3
    # Sampled every 2h48m: o1 was pending from 3 days ago (bucket 34) to 2 days ago (bucket 42); b4 came at bucket 59.
    assert stats.traffic_by_agent["billing-agent"].depth[:59] == (0,) * 34 + (1,) * 8 + (0,) * 17


def test_the_window_excludes_what_is_outside_it(db: sqlite3.Connection) -> None:
    later = window_stats(db, WINDOWS["1h"], T + 3 * 3600)
    assert later.labels.overall.total == 0
    assert later.traffic.arrived == 0 and later.traffic.depth == (4,) * 60, "only the pending ones remain"


def test_correct_at_100k_items(tmp_path: Path) -> None:
    """100,000 items over 28 hours; every other one decided 30 s (plus i % 90) after it was first seen."""
    path = tmp_path / "big.db"
    Store(path).close()
    count = 100_000
    spans: list[tuple[float, float | None]] = []
    items, decisions, labels = [], [], []
    for i in range(count):
        seen = T - i - 0.5  # never on a bucket boundary, so the expected depth below needs no tie rule
        decided = seen + 30 + i % 90 if i % 2 == 0 else None
        if decided is not None and decided > T:
            decided = None  # not yet: still pending at NOW
        agent = f"agent-{i % 7}"
        state = "pending" if decided is None else "decided"
        items.append((f"i{i}", "big", state, "approval", agent, "act", "low", 3, seen, decided or seen))
        spans.append((seen, decided))
        if decided is not None:
            stamp = datetime.fromtimestamp(decided, UTC).isoformat()
            verdict = "approve" if i % 4 == 0 else "reject"
            decisions.append((f"d{i}", "big", f"i{i}", "sha256:x", verdict, "alice", stamp, "applied"))
            labels.append(
                (f"d{i}", f"d{i}", "big", f"i{i}", "sha256:x", "approval", agent, verdict, decided, 30 + i % 90)
            )
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO items(id, source, state, kind, agent, action_name, risk, risk_order, first_seen_at,"
            " updated_at, digest, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sha256:x', '{}')",
            items,
        )
        conn.executemany(
            "INSERT INTO decisions(id, source, item_id, item_digest, verdict, operator, decided_at, sync_state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            decisions,
        )
        conn.executemany(
            "INSERT INTO labels(label_id, decision_id, source, item_id, item_digest, kind, agent, verdict, decided_at,"
            " seconds_to_decide, record, sync_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', 'sent')",
            labels,
        )
    stats = read_window_stats(path, WINDOWS["24h"], T)
    since = T - WINDOWS["24h"]
    starts = sorted(s for s, _ in spans)
    stops = sorted(e for _, e in spans if e is not None)
    width = WINDOWS["24h"] / 60
    expected = []
    for bucket in range(60):
        moment = since + (bucket + 1) * width
        upto = bisect_right if bucket == 59 else bisect_left  # the last sample is NOW itself
        expected.append(upto(starts, moment) - upto(stops, moment))
    assert stats.traffic.depth == tuple(expected)
    assert stats.traffic.arrived == sum(1 for s in starts if s > since)
    in_window = [30 + i % 90 for i, (_, stop) in enumerate(spans) if stop is not None and since <= stop < T]
    assert stats.labels.overall.total == len(in_window)
    times = sorted(in_window)
    assert stats.labels.overall.seconds_to_decide.median == times[(len(times) + 1) // 2 - 1]
    assert sum(t.arrived for t in stats.traffic_by_agent.values()) == stats.traffic.arrived
    assert len(stats.traffic_by_agent) == 7


def test_undone_decisions_count_as_nothing(db: sqlite3.Connection) -> None:
    stats = window_stats(db, WINDOWS["1h"], T)
    support = stats.labels.by_agent["support-agent"]
    assert support.counts["approve"] == 0, "s3's approval was undone"
    assert stats.traffic_by_agent["support-agent"].pending_now == 2, "s3 is pending again, and s2"


def test_window_must_be_positive(db: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="positive"):
        window_stats(db, 0, T)


# ------------------------------------------------------------------------------------------------------- charts


def test_charts_from_numbers() -> None:
    assert resample([1, 9, 2, 2, 3, 1], 3) == [9, 2, 3], "each cell keeps its peak"
    assert sparkline([0, 1, 2, 4, 8], 5) == " ▁▂▄█"
    assert sparkline([0, 0], 2) == "  "
    assert column_rows([8, 4, 0, 1], 4, 2) == ["█   ", "██ ▂"], "1 of 8 is 2 eighths of two rows"
    assert share_cells([2, 1, 2, 1], 20) == [7, 3, 7, 3]
    assert share_cells([1000, 1, 0], 10) == [9, 1, 0], "a small non-zero share stays visible"
    assert sum(share_cells([3, 3, 3], 10)) == 10
    assert share_bar([(0, "$success")], 6).plain == "······"
    assert share_bar([(1, "$success"), (1, "$error")], 6).plain == "██████"


# ---------------------------------------------------------------------------------------------- history screen


def test_remedy_for_each_problem() -> None:
    def row(state: SyncState, outcome: str | None, source: str = "billing") -> DecisionRow:
        decision = Decision(
            id="d", source=source, item_id="x", item_digest="sha256:x", verdict=Verdict.approve, operator="alice",
            decided_at=NOW,
        )  # fmt: skip
        return DecisionRow(
            decision=decision, sync_state=state, attempts=1, outcome=outcome, detail="", item_action="a", item_agent="b"
        )

    assert "new version is in the queue" in (remedy(row(SyncState.conflict, "stale")) or "")
    assert "on-expiry action" in (remedy(row(SyncState.conflict, "timed_out")) or "")
    auth = remedy(row(SyncState.pending, None, "sup-port"), auth_refused={"sup-port"}) or ""
    assert "approval-console sources token sup-port" in auth and "APPROVAL_CONSOLE_TOKEN_SUP_PORT" in auth
    assert remedy(row(SyncState.pending, None)) is None, "waiting to sync is not a problem"
    assert remedy(row(SyncState.applied, "applied")) is None
    assert "not retried" in (remedy(row(SyncState.failed, "http_400")) or "")
    assert sync_text(row(SyncState.conflict, "stale")) == "not applied: stale"
    assert sync_text(row(SyncState.pending, None)) == "retrying, 1 attempt"


def test_store_pages_decisions_newest_first(session: Session) -> None:
    store = session.store
    assert store.outbox.decision_count() == 7
    assert [r.decision.item_id for r in store.outbox.decisions(3)] == ["s5", "b3", "b2"]
    assert [r.decision.item_id for r in store.outbox.decisions(3, 3)] == ["s3", "b1", "b4"]
    assert [r.decision.item_id for r in store.outbox.decisions(10, 6)] == ["o1"]
    problems = store.outbox.decisions(10, problems_only=True)
    assert [r.decision.item_id for r in problems] == ["s5", "b3", "b1"], "failed, conflict, label refused"
    assert store.outbox.decision_count(problems_only=True) == 3


def app_over(session: Session) -> ApprovalApp:
    return ApprovalApp(session, now=lambda: T, background=False)


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_history_lists_problems_with_what_to_do(session: Session) -> None:
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        text = screen_text(app)
        assert "7 decisions, newest first" in text and "3 decisions need you" in text
        assert "not applied: stale" in text and "the new version is in the queue" in text
        assert "failed: http_400" in text and "not retried" in text
        assert "label refused: unknown agent billing-agent" in text
        assert "undone" in text and "wrong_target · wrong customer" in text
        await pilot.press("f")
        text = screen_text(app)
        assert "3 decisions that need you" in text and text.count("✗") == 3 and "undone" not in text
        await pilot.press("f", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_history_pages_through_many(session: Session) -> None:
    store = session.store
    extra = [item(f"m{i:03}", source="billing", risk="low") for i in range(2 * PAGE_SIZE)]
    store.items.apply_changes("billing", extra, [], "c9")
    for index, target in enumerate(extra):
        store.outbox.record(
            Decision(
                id=f"m-{index}", source="billing", item_id=target.id, item_digest=target.digest,
                verdict=Verdict.approve, operator="alice", decided_at=at(index / 10),
            )
        )  # fmt: skip
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        assert "page 1 of 3" in screen_text(app) and "m099" in screen_text(app)
        await pilot.press("right", "right", "right")
        assert "page 3 of 3" in screen_text(app) and "o1" in screen_text(app)
        await pilot.press("left")
        assert "page 2 of 3" in screen_text(app)


async def test_history_says_how_to_fix_refused_credentials(session: Session) -> None:
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(HistoryScreen(session.store.path, auth_refused={"support"}))
        await pilot.pause()
        assert "support refuses our credentials" in screen_text(app)
        assert "APPROVAL_CONSOLE_TOKEN_SUPPORT" in screen_text(app)


# ------------------------------------------------------------------------------------------------ stats screen


async def test_stats_screen_switches_windows(session: Session) -> None:
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, StatsScreen)
        await settled(pilot)
        text = screen_text(app)
        assert "as of 2026-11-21 23:00 UTC" in text
        assert "10 arrived · 6 handled" in text and "approve 40%" in text and "4 pending now" in text
        assert "billing-agent" in text and "By source" in text
        assert "\x1b" not in text and "\u202e" not in text and "evil␛[2J⟨U+202E⟩" in text
        await pilot.press("1")
        await settled(pilot)
        assert "8 arrived · 4 handled" in screen_text(app) and "median 4m" in screen_text(app)
        await pilot.press("3")
        await settled(pilot)
        assert "11 arrived · 7 handled" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_stats_screen_reports_an_unreadable_database(tmp_path: Path) -> None:
    session = Session(Config(operator="alice"), tmp_path / "data", token_for=lambda _name: None)
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(StatsScreen(tmp_path / "missing.db", now=lambda: T))
        await settled(pilot)
        await eventually(lambda: "could not be read" in screen_text(app), what="the error on screen")


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_stats_tables_fit_the_screen_without_wrapping(session: Session, size: tuple[int, int]) -> None:
    """Each table row is one screen line at 80 columns and up: narrow screens leave out columns, never wrap."""
    app = app_over(session)
    async with app.run_test(size=size) as pilot:
        await pilot.press("s")
        await settled(pilot)
        for table in ("#by-agent", "#by-source"):
            shown = app.screen.query_one(table, Static)
            rows = str(shown.render()).split("\n")
            assert len(rows) >= 3 and shown.size.height == len(rows), f"{table} wraps"
            shown.scroll_visible(animate=False)
            await pilot.pause()
            lines = screen_text(app).splitlines()
            for row in rows:
                assert any(row.rstrip() in line for line in lines), f"{row!r} is not on one screen line"
        text = screen_text(app)
        assert "billing-agent " in text and "support-agent " in text, "names are not cut at 80 columns"
        assert all(
            f" {heading} " in text for heading in ("arrived", "handled", "approve", "reject", "median", "escal.")
        )


# ---------------------------------------------------------------------------------------------------- snapshots


def open_stats(*keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await pilot.press(*keys)
        await settled(pilot)

    return run


def test_stats_snapshot(snap_compare: SnapCompare, session: Session) -> None:
    assert snap_compare(app_over(session), terminal_size=SIZE, run_before=open_stats("s"))


def test_stats_snapshot_light_theme(snap_compare: SnapCompare, session: Session) -> None:
    assert snap_compare(app_over(session), terminal_size=SIZE, run_before=open_stats("ctrl+t", "s", "1"))


def test_history_snapshot(snap_compare: SnapCompare, session: Session) -> None:
    assert snap_compare(app_over(session), press=("h",), terminal_size=SIZE)


def test_history_detail_snapshot(snap_compare: SnapCompare, session: Session) -> None:
    """The edited decision (b3, second newest) opened: its diff, reason, who, when, sync, and the item as shown."""
    assert snap_compare(app_over(session), press=("h", "down", "enter"), terminal_size=SIZE)
