"""Retry-After (PROTOCOL.md section 6) is clamped to [1 s, 300 s] for decisions, labels, listings; busy is throttled.

A server's Retry-After of -5, 0 or nan once made decision retries hammer it (over 200 POSTs in 11 s), and inf, 1e400 or
999999999 parked a decision for an hour after the server recovered. Time is simulated: the sync engine's clock and the
poller's sleep are the test's, so these tests count requests and measure their spacing without waiting for it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.cli.doctor import WARN, check_source
from console.engine.config import SourceConfig
from console.engine.session import Session
from console.engine.sources.answers import RETRY_AFTER_CEILING, RETRY_AFTER_FLOOR, retry_after_seconds
from console.engine.sources.native import NativeSource
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.records import SourceHealth, SyncState, Verdict
from tests import factories
from tests.conftest import SOURCE, eventually, make_config, screen_text
from tests.servers import Fault, FaultyProxy, running
from tests.test_labels import Console, fleet_labels
from widgets.status_bar import status_content

DECISIONS = "/v1/items/"
BUSY_ANSWERS = 4


def in_seconds(seconds: float) -> str:
    """An HTTP-date (RFC 9110 IMF-fixdate) this many seconds from now."""
    return formatdate(time.time() + seconds, usegmt=True)


# (header, the least and the most the console may wait). An HTTP-date counts from the console's clock when the answer
# comes, so one two minutes ahead of when the test starts means a wait of at most two minutes (and the floor).
CASES = {
    "-5": ("-5", 1.0, 1.0),
    "0": ("0", 1.0, 1.0),
    "nan": ("nan", 1.0, 1.0),
    "inf": ("inf", 300.0, 300.0),
    "1e400": ("1e400", 300.0, 300.0),
    "999999999": ("999999999", 300.0, 300.0),
    "7": ("7", 7.0, 7.0),
    "HTTP-date in 2 min": (in_seconds(120), 1.0, 120.0),
    "HTTP-date past": ("Sun, 06 Nov 1994 08:49:37 GMT", 1.0, 1.0),
    "HTTP-date in a year": (in_seconds(365 * 86400), 300.0, 300.0),
}

# What a hostile or careless server may put in the header: numbers of every size and sign, float spellings,
# dates of any year, and text. The console's answer is always None (unreadable) or within the bounds.
retry_after_values = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400", "999999999"]),
    st.sampled_from(["", " ", "soon", "0x10", "1_000", "5, 7", "+3", " 12 ", "1.5e2", "Mon, 99 Foo 2026 99:99:99 GMT"]),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda moment: format_datetime(moment.replace(tzinfo=UTC), usegmt=True)
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40),
)


@given(retry_after_values)
def test_any_retry_after_is_unreadable_or_within_the_bounds(value: str) -> None:
    # As bytes off the wire: a header value is any octets, which httpx decodes as Latin-1.
    answer = retry_after_seconds(httpx.Response(503, headers=[(b"Retry-After", value.encode("latin-1"))]))
    assert answer is None or RETRY_AFTER_FLOOR <= answer <= RETRY_AFTER_CEILING
    if answer is not None:
        assert not math.isnan(answer)


@pytest.mark.parametrize(("header", "low", "high"), CASES.values(), ids=CASES.keys())
def test_retry_after_is_clamped(header: str, low: float, high: float) -> None:
    answer = retry_after_seconds(httpx.Response(429, headers={"Retry-After": header}))
    assert answer is not None and low <= answer <= high


@pytest.fixture(scope="module")
def busy_server() -> Iterator[FaultyProxy]:
    with running(FaultyProxy()) as server:
        yield server


# Over a real socket: the header as bytes on the wire, through httpx, into a decision's and a label batch's retry time.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(retry_after_values, st.sampled_from([429, 503]))
def test_hostile_retry_after_on_the_wire_never_hammers_nor_parks(
    busy_server: FaultyProxy, value: str, status: int
) -> None:
    async def send() -> tuple[float | None, float | None]:
        source = NativeSource(SourceConfig(name=SOURCE, url=busy_server.url, timeout=5.0), None)
        try:
            busy_server.inject(Fault(status, b"", {"Retry-After": value}))
            decision = await source.send_decision(factories.decision(factories.item(source=SOURCE)))
            busy_server.inject(Fault(status, b"", {"Retry-After": value}))
            labels = await source.send_labels([])
        finally:
            await source.aclose()
        assert decision.state is None and not labels.sent and not labels.refused, "busy: sent again later"
        return decision.retry_after, labels.retry_after

    for waited in asyncio.run(send()):
        assert waited is None or RETRY_AFTER_FLOOR <= waited <= RETRY_AFTER_CEILING


def test_an_http_date_counts_from_now() -> None:
    now = 1_800_000_000.0
    answer = httpx.Response(503, headers={"Retry-After": formatdate(now + 120, usegmt=True)})
    assert retry_after_seconds(answer, now=now) == 120.0
    assert retry_after_seconds(answer, now=now + 119.5) == RETRY_AFTER_FLOOR
    assert retry_after_seconds(answer, now=now - 600) == RETRY_AFTER_CEILING


def test_unreadable_retry_after_leaves_the_console_its_own_backoff() -> None:
    for value in ("soon", "Mon, 99 Foo 2026 99:99:99 GMT", ""):
        assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": value})) is None


class SimulatedClock:
    """The sync engine's wall clock, moved on by the test to when the engine would wake."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def proxied_session(proxy: FaultyProxy, data_dir: Path) -> Session:
    config = make_config(proxy.url, long_poll=0.0, poll_interval=0.2)
    return Session(config, data_dir, token_for=lambda _n: None)


@pytest.mark.parametrize(("header", "low", "high"), CASES.values(), ids=CASES.keys())
async def test_decision_retries_keep_to_the_clamped_retry_after(
    fleet: Fleet, data_dir: Path, header: str, low: float, high: float
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        session = proxied_session(proxy, data_dir)
        await session.poll_once()
        row = session.store.queue.rows(0, 1)[0]
        item = session.store.items.get(row.source, row.id)[0]  # type: ignore[index]
        proxy.inject(*[Fault(503, b"", {"Retry-After": header}, path_prefix=DECISIONS)] * BUSY_ANSWERS)
        clock = SimulatedClock()
        session.sync.clock = clock
        session.decide(item, Verdict.approve)
        sent_at: list[float] = []
        # Bounded: an engine that retried at once would otherwise stay at one simulated instant for ever.
        for _ in range(BUSY_ANSWERS + 5):
            if await session.sync.drain_once():
                sent_at.append(clock.now)
            if session.store.outbox.waiting_count() == 0:
                break
            due = session.store.outbox.next_due_at([SOURCE])
            assert due is not None
            clock.now = max(clock.now, due)  # what the engine's run loop does: sleep until the next retry is due
        assert len(sent_at) == BUSY_ANSWERS + 1, "four busy answers, then the decision went through"
        gaps = [later - earlier for earlier, later in pairwise(sent_at)]
        assert all(low <= gap <= high for gap in gaps), gaps
        # Counted over simulated time: at most one request a second while busy, and heard within 300 s of recovery.
        assert sum(1 for moment in sent_at if moment - sent_at[0] < 11.0) <= 11
        assert gaps[-1] <= RETRY_AFTER_CEILING
        [decision] = session.store.outbox.decisions()
        assert decision.sync_state is SyncState.applied
        assert [d["item_id"] for d in fleet.applied_decisions()] == [item.id]
        assert fleet.decision_requests(item.id) == 1, "the busy answers never reached the fleet"
        await session.aclose()


@pytest.mark.parametrize(("header", "low", "high"), CASES.values(), ids=CASES.keys())
async def test_label_retries_keep_to_the_clamped_retry_after(
    fleet: Fleet, tmp_path: Path, header: str, low: float, high: float
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        console = Console(tmp_path / "data", proxy.url)
        console.record(fleet_labels(fleet, 1))
        clock = SimulatedClock()
        console.engine.clock = clock
        proxy.inject(Fault(429, b"", {"Retry-After": header}, path_prefix="/v1/feedback"))
        assert await console.engine.drain_labels_once() == 1
        assert await console.engine.drain_labels_once() == 0, "not again at once"
        due = console.engine.labels.next_due_at([SOURCE]) if console.engine.labels else None
        assert due is not None and low <= due - clock.now <= high
        clock.now = due
        assert await console.engine.drain_labels_once() == 1
        assert [state for state, _, _ in console.states().values()] == ["sent"]
        assert len(fleet.feedback()) == 1
        await console.aclose()


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(("header", "low", "high"), CASES.values(), ids=CASES.keys())
async def test_a_busy_listing_is_throttled_not_down_and_polled_at_the_clamped_pace(
    fleet: Fleet, data_dir: Path, status: int, header: str, low: float, high: float
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        session = proxied_session(proxy, data_dir)
        proxy.inject(*[Fault(status, b"", {"Retry-After": header}, path_prefix="/v1/items")] * BUSY_ANSWERS)

        def listings() -> int:
            return sum(1 for path in proxy.requests if path.startswith("/v1/items"))

        pauses: list[tuple[float, int, SourceHealth, str]] = []

        async def simulated_sleep(seconds: float) -> None:
            health = session.poller.health[SOURCE]
            shown = status_content([health], 0, 0, "alice", time.time()).plain
            pauses.append((seconds, listings(), health, shown))
            await asyncio.sleep(0)

        session.poller.sleep = simulated_sleep
        polling = asyncio.create_task(session.poller.run())
        try:
            await eventually(
                lambda: session.poller.health[SOURCE].state == "up" and session.store.queue.count() == 6,
                what="the listing after the busy answers",
            )
        finally:
            polling.cancel()
        # One pause after each busy answer, before the next listing: the server's pace, clamped.
        assert [count for _, count, _, _ in pauses[:BUSY_ANSWERS]] == list(range(1, BUSY_ANSWERS + 1))
        assert all(low <= seconds <= high for seconds, _, _, _ in pauses[:BUSY_ANSWERS])
        assert {health.state for _, _, health, _ in pauses[:BUSY_ANSWERS]} == {"throttled"}
        assert all(health.error == f"busy ({status})" for _, _, health, _ in pauses[:BUSY_ANSWERS])
        assert all("throttled" in shown and "down" not in shown for _, _, _, shown in pauses[:BUSY_ANSWERS])
        await session.aclose()


async def test_doctor_reports_a_throttling_source_as_a_warning_not_a_failure() -> None:
    with running(FaultyProxy()) as server:
        server.inject(Fault(429, b"", {"Retry-After": "nan"}, path_prefix="/v1/items"))
        check = await check_source(SourceConfig(name=SOURCE, url=server.url, timeout=5.0), None)
    assert (check.status, check.fix) == (WARN, "the console asks again in 1 s")
    assert "throttling: busy (429)" in check.detail


async def test_the_status_bar_shows_a_throttled_source_as_throttled(fleet: Fleet, data_dir: Path) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        proxy.inject(*[Fault(429, b"", {"Retry-After": "1"}, path_prefix="/v1/items")] * 100)
        session = proxied_session(proxy, data_dir)
        app = ApprovalApp(session)
        async with app.run_test(size=(120, 40)) as pilot:
            await eventually(lambda: session.poller.health[SOURCE].state == "throttled", what="a throttled listing")
            await eventually(lambda: "throttled" in screen_text(app), what="the status bar refreshed")
            await pilot.pause()
            status = next(line for line in screen_text(app).splitlines() if SOURCE in line and "throttled" in line)
            assert "down" not in status
