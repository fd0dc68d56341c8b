"""Bad networks, through a real fault-injecting proxy in front of the demo fleet.

Every transport and protocol fault (5xx, 429/503 with Retry-After, timeouts, resets, truncated, invalid and dripping
bodies) on a decision still ends with the decision applied exactly once; on a listing it is reported and the next poll
recovers. Answers retrying cannot fix are not retried. Backoff is exponential, jittered and capped. The UI answers keys
promptly while the network misbehaves.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.app import ApprovalApp
from console.config import Config, SourceConfig
from console.fleet import Fleet
from console.session import Session
from console.sources.base import SourceError
from console.sync import MAX_DELAY, backoff
from storage.records import Item, SyncState, Verdict
from tests.conftest import SOURCE, eventually
from tests.servers import Fault, FaultyProxy, running

TIMEOUT = 0.6
DECISIONS = "/v1/items/itm_"
_GARBAGE = b'{"outcome": "appl'


@pytest.fixture
def proxy(fleet: Fleet) -> Iterator[FaultyProxy]:
    with running(FaultyProxy(fleet.url)) as server:
        yield server


def _session(proxy: FaultyProxy, data_dir: Path) -> Session:
    config = Config(
        operator="alice",
        sources=(SourceConfig(name=SOURCE, url=proxy.url, long_poll=0.0, timeout=TIMEOUT, poll_interval=0.2),),
        undo_seconds=0.0,
    )
    return Session(config, data_dir, token_for=lambda _n: None)


async def _first_item(session: Session) -> Item:
    await session.poll_once()
    row = session.store.queue_rows(0, 1)[0]
    found = session.store.item(row.source, row.id)
    assert found is not None
    return found[0]


def test_backoff_is_exponential_jittered_and_capped() -> None:
    for attempts in range(1, 12):
        ceiling = min(MAX_DELAY, 0.5 * 2 ** (attempts - 1))
        samples = [backoff(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples), attempts
        assert len(set(samples)) > 150, "jittered: many consoles must not retry in step"
    assert max(backoff(40) for _ in range(100)) <= MAX_DELAY


# Each fault hits the decision once; the engine's own retries then get through. `applied_by_fault`: whether the
# fleet acted on the faulted request (its answer was lost), so the retry must be recognised, not applied again.
DECISION_FAULTS = {
    "500": (Fault(500, b"internal error", path_prefix=DECISIONS), False),
    "502 after applying": (Fault(502, b"<html>bad gateway</html>", path_prefix=DECISIONS, forward=True), True),
    "429 Retry-After": (Fault(429, b"", {"Retry-After": "0.2"}, path_prefix=DECISIONS), False),
    "503 Retry-After": (Fault(503, b"", {"Retry-After": "0.2"}, path_prefix=DECISIONS), False),
    "timeout after applying": (Fault(200, b"{}", delay=TIMEOUT + 0.4, path_prefix=DECISIONS, forward=True), True),
    "connection reset": (Fault(reset=True, path_prefix=DECISIONS), False),
    "reset after applying": (Fault(reset=True, path_prefix=DECISIONS, forward=True), True),
    "truncated body": (
        Fault(200, b'{"outcome": "applied", "decision_id": "x"}', truncate=True, path_prefix=DECISIONS, forward=True),
        True,
    ),
    "invalid body": (Fault(200, _GARBAGE, path_prefix=DECISIONS, forward=True), True),
    "slow drip": (
        Fault(200, b'{"outcome": "applied"}' + b" " * 100, drip=0.02, path_prefix=DECISIONS, forward=True),
        True,
    ),
}


@pytest.mark.parametrize("fault", DECISION_FAULTS, ids=list(DECISION_FAULTS))
async def test_a_decision_survives_each_fault_and_applies_exactly_once(
    fleet: Fleet, proxy: FaultyProxy, data_dir: Path, fault: str
) -> None:
    injected, applied_by_fault = DECISION_FAULTS[fault]
    session = _session(proxy, data_dir)
    item = await _first_item(session)
    proxy.inject(injected)
    decision = session.decide(item, Verdict.approve)
    engine = asyncio.create_task(session.sync.run())  # the real engine: its backoff, its Retry-After
    try:
        await eventually(lambda: session.store.waiting_count() == 0, timeout=20, what="the decision settled")
    finally:
        engine.cancel()
    [row] = session.store.decisions()
    assert (row.sync_state, row.outcome) == (SyncState.applied, "applied"), row.detail
    assert [d["decision_id"] for d in fleet.applied_decisions()] == [decision.id]
    assert fleet.decision_requests(item.id) == (2 if applied_by_fault else 1), "one resend under the same key"
    assert row.attempts == 2
    await session.aclose()


LISTING_FAULTS = {
    "500": (Fault(500, b"oops", path_prefix="/v1/items"), "answered 500"),
    "429": (Fault(429, b"", {"Retry-After": "3"}, path_prefix="/v1/items"), r"busy \(429\)"),
    "timeout": (Fault(200, b"{}", delay=TIMEOUT + 0.4, path_prefix="/v1/items"), "no answer within"),
    "reset": (Fault(reset=True, path_prefix="/v1/items"), "cannot reach|cut off"),
    "truncated": (Fault(200, b'{"items": [], "cursor": "abc"}', truncate=True, path_prefix="/v1/items"), "cut off"),
    "invalid": (Fault(200, b"<html>", path_prefix="/v1/items"), "invalid JSON"),
    "slow drip": (Fault(200, b'{"items": []}' + b" " * 200, drip=0.01, path_prefix="/v1/items"), "no answer within"),
    "redirect": (Fault(302, b"", {"Location": "http://127.0.0.2:1/v1/items"}, path_prefix="/v1/items"), "not followed"),
}


@pytest.mark.parametrize("fault", LISTING_FAULTS, ids=list(LISTING_FAULTS))
async def test_a_listing_fault_is_reported_and_the_next_poll_recovers(
    proxy: FaultyProxy, data_dir: Path, fault: str
) -> None:
    injected, message = LISTING_FAULTS[fault]
    session = _session(proxy, data_dir)
    source = session.sources[SOURCE]
    proxy.inject(injected)
    with pytest.raises(SourceError, match=message) as caught:
        await source.fetch(None)
    if fault == "429":
        assert caught.value.retry_after == 3.0
    page = await source.fetch(None)
    assert len(page.items) == 6
    await session.aclose()


@pytest.mark.parametrize(
    ("status", "body", "final"),
    [
        (400, b'{"error": "bad_json"}', True),
        (400, b'{"error": "idempotency_key_required"}', True),
        # Status and body do not name a known outcome together (PROTOCOL.md section 3): uncertain, so sent again later.
        (400, b'{"error": "bad_request"}', False),
        (404, b"{}", False),
        (405, b"", False),
    ],
)
async def test_answers_are_final_only_when_status_and_body_agree(
    proxy: FaultyProxy, data_dir: Path, status: int, body: bytes, final: bool
) -> None:
    session = _session(proxy, data_dir)
    item = await _first_item(session)
    proxy.inject(Fault(status, body, path_prefix=DECISIONS))
    session.decide(item, Verdict.approve)
    assert await session.sync_once() == 1
    [row] = session.store.decisions()
    assert row.sync_state is (SyncState.failed if final else SyncState.pending) and str(status) in row.detail
    assert await session.sync_once() == 0, "not sent again at once"
    assert bool(session.store.unseen_problems()) is final, "a final refusal is shown to the operator as a problem"
    await session.aclose()


async def test_keys_answer_promptly_while_the_network_misbehaves(
    fleet: Fleet, proxy: FaultyProxy, data_dir: Path
) -> None:
    for _ in range(6):
        fleet.add_item()
    session = _session(proxy, data_dir)
    await session.poll_once()
    # From here on every listing drips or times out, and every decision is answered 503: the background is busy.
    drip = Fault(200, b'{"items": []}' + b" " * 400, drip=0.005, path_prefix="/v1/items")
    proxy.inject(*[drip] * 50, *[Fault(503, b"", {"Retry-After": "0.1"}, path_prefix=DECISIONS)] * 50)
    app = ApprovalApp(session)
    latencies: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(lambda: app.main.shown is not None, what="an item shown")
        for key in ["j"] * 8 + ["k"] * 8:
            before = app.main.shown
            started = time.perf_counter()
            await pilot.press(key)
            await eventually(lambda: app.main.shown is not before, timeout=5, what="the cursor moved")  # noqa: B023
            latencies.append(time.perf_counter() - started)
        assert len(proxy.requests) > 2, "the network was busy failing meanwhile"
    median_ms, max_ms = statistics.median(latencies) * 1000, max(latencies) * 1000
    print(f"keystroke to moved cursor under faults: median {median_ms:.0f} ms, max {max_ms:.0f} ms")
    # A responsiveness bound, not a benchmark: generous for a loaded two-core machine.
    assert statistics.median(latencies) < 0.5, latencies
    assert max(latencies) < 3.0, latencies  # one stall is the machine; a slow median would be the app
