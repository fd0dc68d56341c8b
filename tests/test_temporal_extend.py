"""More time for Temporal items (PROTOCOL.md, "Temporal workflows"; section 10), against the real Temporal dev server
and a real worker whose workflows wait through the console's helper with `max_extend` (tests/temporal_workflows.py).

The deadline is checked as values (what the workflow answers, what the console lists, the timer the workflow starts),
never as elapsed time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from console.engine.config import Config, SourceConfig
from console.engine.session import Session
from console.engine.sources.base import ExtendAnswer, ExtendingSource, Page
from console.engine.sources.temporal import TemporalSource
from console.engine.sources.temporal_extend import closed_extend_answer, extended_execution
from console.engine.sources.temporal_payloads import Execution
from console.integrations import temporal_convention as convention
from console.integrations.temporal_convention import WAITING
from console.tui.app import ApprovalApp
from console.tui.screens.extend import ExtendScreen
from storage.records import ExtendOffer, Item, Outcome, SyncState, Verdict
from tests import factories
from tests.conftest import eventually
from tests.source_polls import polled_until
from tests.temporal_workflows import Refund
from tests.test_deadlines_app import detail_text as timing_text
from tests.test_temporal import (  # noqa: F401 (the fixtures: one dev server per module, a worker per test)
    API,
    SOURCE,
    Engine,
    engine,
    listed,
    result,
    temporal,
)

OFFER = 600  # seconds of more time each extendable workflow offers in all


async def relisted(source: TemporalSource, cursor: str | None, item: Item, digest: str) -> Item:
    """The item as the source's own polls list it once they show the version with `digest`."""

    def new_version(page: Page) -> list[Item]:
        return [i for i in page.items if i.id == item.id and i.digest == digest]

    found, _ = await polled_until(source, cursor, new_version, attempts=400, pause=0.05, never="never relisted")
    return found


async def timers(engine: Engine, handle: WorkflowHandle[Any, Any], started: int) -> list[dict[str, Any]]:  # noqa: F811
    """The run's history events about timers, once it holds `started` started timers."""
    for _ in range(400):
        response = await engine.api.get(f"{API}/workflows/{handle.id}/history")
        events = [e for e in response.json()["history"]["events"] if "TIMER" in e["eventType"]]
        if sum(e["eventType"] == "EVENT_TYPE_TIMER_STARTED" for e in events) >= started:
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never started {started} timers")


async def test_an_extension_moves_the_deadline_the_console_lists_and_the_workflow_waits_for(engine: Engine) -> None:  # noqa: F811
    handle = await engine.start(Refund.run, {"timeout": 900, "max_extend": OFFER})
    source = engine.source()
    try:
        assert isinstance(source, ExtendingSource)
        item, cursor = await listed(source, handle)
        assert item.extend == ExtendOffer(max_seconds=OFFER, used_seconds=0) and item.extendable_seconds == OFFER
        assert item.expires_at is not None

        answer = await source.extend(item, 300, "alice")
        assert answer.item is not None, answer.detail
        assert answer.detail == "extended" and answer.item.id == item.id and answer.item.digest != item.digest
        assert answer.item.expires_at == item.expires_at + timedelta(seconds=300)
        assert answer.item.extend == ExtendOffer(max_seconds=OFFER, used_seconds=300)
        # An idle poll (only runs newer than the last seen) still sees the new version: ApprovalSince moved on.
        again = await relisted(source, cursor, item, answer.item.digest)
        assert again.expires_at == answer.item.expires_at and again.extendable_seconds == 300

        # The workflow's own timer restarted at the new deadline.
        events = await timers(engine, handle, started=2)
        kinds = [e["eventType"] for e in events]
        assert kinds[:3] == ["EVENT_TYPE_TIMER_STARTED", "EVENT_TYPE_TIMER_CANCELED", "EVENT_TYPE_TIMER_STARTED"]
        first, second = (
            float(e["timerStartedEventAttributes"]["startToFireTimeout"].rstrip("s")) for e in (events[0], events[2])
        )
        assert first <= 900 < second <= 1200

        # A decision made on the version before is stale; one on the new version is applied.
        stale = await source.send_decision(factories.decision(item, Verdict.approve))
        assert stale.outcome == Outcome.stale.value
        applied = await source.send_decision(factories.decision(again, Verdict.approve))
        assert (applied.state, applied.outcome) == (SyncState.applied, Outcome.applied.value), applied
    finally:
        await source.aclose()
    assert (await result(handle))["verdict"] == "approve"


async def test_more_than_the_allowance_leaves_and_a_replay_are_refused(engine: Engine) -> None:  # noqa: F811
    handle = await engine.start(Refund.run, {"timeout": 900, "max_extend": OFFER})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
        first = await source.extend(item, 400, "alice")
        assert first.item is not None, first.detail
        over = await source.extend(first.item, 201, "bob")
        replay = await source.extend(item, 100, "alice")  # the version before: never moves the deadline twice
        rest = await source.extend(first.item, 200, "bob")
    finally:
        await source.aclose()
    assert over.item is None and over.detail.startswith("the source refused the request: ")
    assert "at most 200 more seconds" in over.detail
    assert replay.item is None and replay.detail.startswith("the item changed since you saw it")
    assert rest.item is not None and rest.item.extend == ExtendOffer(max_seconds=OFFER, used_seconds=OFFER)
    assert rest.item.expires_at is not None and item.expires_at is not None
    assert rest.item.expires_at - item.expires_at == timedelta(seconds=OFFER)
    assert rest.item.extendable_seconds == 0


async def test_an_extension_after_the_decision_is_refused(engine: Engine) -> None:  # noqa: F811
    lingering = await engine.start(Refund.run, {"max_extend": OFFER, "linger": 30})  # still running: its validator
    ended = await engine.start(Refund.run, {"max_extend": OFFER})  # ended: its own record
    source = engine.source()
    try:
        answers = []
        for handle in (lingering, ended):
            item, _cursor = await listed(source, handle)
            decided = await source.send_decision(factories.decision(item, Verdict.approve, operator="bob"))
            assert decided.state is SyncState.applied, decided
            if handle is ended:
                await result(handle)
            answers.append(await source.extend(item, 60, "alice"))
    finally:
        await source.aclose()
    for answer in answers:
        assert answer.item is None and answer.detail.startswith("it was decided meanwhile: "), answer.detail
        assert "bob" in answer.detail


async def test_a_workflow_without_an_allowance_offers_no_more_time(engine: Engine) -> None:  # noqa: F811
    handle = await engine.start(Refund.run, {"timeout": 900})
    source = engine.source()
    try:
        item, _cursor = await listed(source, handle)
        asked = await source.extend(item, 60, "alice")  # what a console that ignored the missing offer would get
    finally:
        await source.aclose()
    assert item.extend is None and item.extendable_seconds == 0
    assert asked.item is None and asked.detail.startswith("the source does not allow more time for this item")
    assert await engine.state(handle) == WAITING


async def test_x_in_the_console_gives_a_workflow_more_time(engine: Engine, tmp_path: Path) -> None:  # noqa: F811
    handle = await engine.start(Refund.run, {"timeout": 900, "max_extend": OFFER})
    source = SourceConfig(name=SOURCE, kind="temporal", url=engine.server.http, poll_interval=0.2)
    session = Session(
        Config(operator="alice", sources=(source,), undo_seconds=0.0), tmp_path / "data", token_for=lambda _n: None
    )
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(lambda: session.store.queue.count() >= 1, timeout=20, what="the run in the queue")
        await pilot.pause(0.6)  # past the settle guard
        before = app.main.shown
        assert before is not None and before.id.startswith(f"{handle.id}:") and before.expires_at is not None
        await eventually(lambda: "x more time (up to 10m)" in timing_text(app), what="the offer in the detail")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ExtendScreen)
        await pilot.press("1")  # 5 minutes
        await eventually(lambda: app.main.shown is not None and app.main.shown.digest != before.digest, what="moved")
        shown = app.main.shown
    await session.aclose()
    assert shown is not None and shown.expires_at == before.expires_at + timedelta(seconds=300)
    assert shown.extendable_seconds == OFFER - 300


# ------------------------------------------------------------------------------------ the pure parts, no server
REQUEST: dict[str, Any] = {
    "version": 1,
    "key": "k1",
    "expires_at": "2026-12-01T10:00:00+00:00",
    "extend": {"max_seconds": 600, "used_seconds": 500},
}
BEFORE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ask(**changes: Any) -> dict[str, Any]:
    return {"request_digest": convention.request_digest(REQUEST), "seconds": 60, "operator": "alice", **changes}


@pytest.mark.parametrize(
    ("request_", "outcome", "asked", "now", "kind"),
    [
        (REQUEST, {"state": "decided", "decided_by": "bob"}, ask(digest="x"), BEFORE, "conflict"),
        (REQUEST, None, ask(request_digest="sha256:old"), BEFORE + timedelta(hours=2), "expired"),
        (REQUEST, None, ask(request_digest="sha256:old", seconds=10**6), BEFORE, "stale"),
        ({**REQUEST, "extend": None}, None, {"seconds": 60}, BEFORE, "stale"),
        (REQUEST, None, ask(seconds=101), BEFORE, "invalid"),
        (REQUEST, None, ask(seconds=True), BEFORE, "invalid"),
        (REQUEST, None, ask(operator=""), BEFORE, "invalid"),
        (REQUEST, None, ask(seconds=100), BEFORE, None),
    ],
)
def test_the_workflow_checks_an_extension_in_the_protocols_order(
    request_: dict[str, Any], outcome: dict[str, Any] | None, asked: Any, now: datetime, kind: str | None
) -> None:
    problem = convention.extend_refusal(request_, outcome, asked, now)
    assert (problem.kind if problem else None) == kind


def test_a_request_without_an_offer_or_a_deadline_is_not_extendable() -> None:
    for request in ({**REQUEST, "extend": None}, {**REQUEST, "expires_at": None}):
        problem = convention.extend_refusal(
            request, None, {**ask(), "request_digest": convention.request_digest(request)}, BEFORE
        )
        assert problem is not None and problem.kind == convention.NOT_EXTENDABLE


def test_an_extension_is_a_new_version_of_the_request() -> None:
    later = convention.extended(REQUEST, 100)
    assert later["expires_at"] == "2026-12-01T10:01:40+00:00" and later["extend"] == {
        "max_seconds": 600,
        "used_seconds": 600,
    }
    assert later["key"] == REQUEST["key"] and convention.request_digest(later) != convention.request_digest(REQUEST)
    assert REQUEST["extend"]["used_seconds"] == 500, "the request before is left as it was"


def test_a_refusal_reads_in_the_native_sources_words() -> None:
    run = Execution("wf", "run", status="WORKFLOW_EXECUTION_STATUS_RUNNING", request=REQUEST)
    failure = {"failure": {"message": "at most 100", "applicationFailureInfo": {"type": "invalid"}}}
    refused = extended_execution({"outcome": failure}, run)
    assert isinstance(refused, ExtendAnswer) and refused.detail == "the source refused the request: at most 100"
    unknown = extended_execution({"outcome": {"failure": {"message": "boom", "applicationFailureInfo": {}}}}, run)
    assert isinstance(unknown, ExtendAnswer) and unknown.detail == "the workflow refused more time: boom"
    pending = extended_execution({}, run)
    assert isinstance(pending, ExtendAnswer) and pending.item is None
    decided = Execution(
        "wf",
        "run",
        status="WORKFLOW_EXECUTION_STATUS_COMPLETED",
        outcome={"state": "decided", "decided_by": "bob", "verdict": "approve"},
    )
    assert closed_extend_answer(decided).detail == "it was decided meanwhile: by bob (approve)"
    assert closed_extend_answer(None).detail.startswith("the source no longer has this item")
