"""The session's side of "state down, events up": its observers, the open item's claim, and the narrow interface the
screens read through. Against the real demo fleet, on real SQLite files, the app under Pilot where it is the app's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from console.engine.session import Session
from console.engine.sync import SettledDecision
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.messages import QueueChanged
from storage.records import Item, SyncState, Verdict
from tests.conftest import SOURCE, eventually


@asynccontextmanager
async def polled(session: Session) -> AsyncIterator[Session]:
    """The session after one poll of the fleet, closed at the end (which stops the claim renewals)."""
    try:
        await session.poll_once()
        yield session
    finally:
        await session.aclose()


def listed(session: Session, index: int) -> Item:
    row = session.queue.rows(index, 1)[0]
    found = session.item(row.source, row.id)
    assert found is not None and found[1] == "pending"
    return found[0]


def holder(fleet: Fleet, item: Item) -> str | None:
    held: str | None = {i["id"]: i for i in fleet.pending()}[item.id]["claimed_by"]
    return held


# ------------------------------------------------------------------------------------------ the open item's claim


async def test_opening_an_item_claims_it_and_opening_another_releases_the_first(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with polled(make_session()) as session:
        first, second = listed(session, 0), listed(session, 1)
        session.set_open_item(first)
        await eventually(lambda: holder(fleet, first) == "alice", what="the first item claimed")
        session.set_open_item(second)
        await eventually(lambda: holder(fleet, second) == "alice", what="the second item claimed")
        await eventually(lambda: holder(fleet, first) is None, what="the first released")


async def test_the_claim_is_renewed_while_the_item_stays_open_and_not_once_nothing_is(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with polled(make_session()) as session:
        session.open_item.renew_seconds = 0.1
        item = listed(session, 0)
        session.set_open_item(item)
        await eventually(lambda: holder(fleet, item) == "alice", what="claimed")
        for _ in range(3):  # the lease lapsing at the source (released behind our back): the renewal takes it again
            assert fleet.release(item.id, "alice")
            await eventually(lambda: holder(fleet, item) == "alice", what="renewed")
        session.set_open_item(None)  # the queue emptied under the operator: the claim is kept, not renewed
        assert holder(fleet, item) == "alice", "not released: nothing else was opened"
        assert fleet.release(item.id, "alice")
        await asyncio.sleep(0.5)  # five renewal periods
        assert holder(fleet, item) is None, "nothing open: nothing renewed"
        session.set_open_item(item)  # the same item back on screen: renewals resume
        await eventually(lambda: holder(fleet, item) == "alice", what="renewed again")


async def test_another_holder_learned_from_a_claim_reaches_the_observers(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    heard: list[str] = []

    class Observer:
        def queue_changed(self, source: str) -> None:
            heard.append(source)

        def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
            raise AssertionError("nothing was decided")

    async with polled(make_session()) as session:
        item = listed(session, 0)
        assert fleet.claim(item.id, "bob")[0]
        session.subscribe(Observer())
        session.set_open_item(item)
        await eventually(lambda: heard == [SOURCE], what="the change heard")
        found = session.item(item.source, item.id)
        assert found is not None and found[0].claimed_by == "bob", "stored: the queue marks bob's claim"
        assert holder(fleet, item) == "bob", "advisory: bob keeps it"


# ------------------------------------------------------------------------------------------------------ observers


async def test_observers_hear_polls_that_change_the_queue_and_outcomes_settled(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    changes: list[str] = []
    settled: list[tuple[str, SyncState | None]] = []
    only_outcomes: list[int] = []

    class Observer:
        def queue_changed(self, source: str) -> None:
            changes.append(source)

        def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
            settled.extend((o.decision.item_id, o.result.state) for o in outcomes)

    session = make_session()
    session.subscribe(Observer())
    session.on_outcomes(lambda outcomes: only_outcomes.append(len(outcomes)))
    async with polled(session):
        assert changes == [SOURCE], "the first listing changed the queue"
        await session.poll_once()
        assert changes == [SOURCE], "a poll that changed nothing is not an event"
        item = next(i for i in (listed(session, n) for n in range(6)) if i.allows(Verdict.approve))
        session.decide(item, Verdict.approve)
        assert await session.sync_once() == 1
        assert settled == [(item.id, SyncState.applied)]
        assert only_outcomes == [1]


# ---------------------------------------------------------------------------------------- the narrow interface


async def test_the_screens_read_health_items_and_backlog_through_the_session(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session(undo_seconds=60.0)
    health = session.health()
    assert health[SOURCE].state == "starting"
    async with polled(session):
        assert health[SOURCE].state == "up", "a live view: it follows the poller"
        with pytest.raises(TypeError):
            health[SOURCE] = health[SOURCE]  # type: ignore[index]
        assert session.pending_count() == 6 and session.store_path.is_file()
        item = listed(session, 0)
        assert session.removed_reason(item.source, item.id) is None
        assert session.removed_reason(item.source, "never-listed") == "gone"
        fleet.withdraw(item.id)
        await session.poll_once()
        assert session.removed_reason(item.source, item.id) == "withdrawn"
        assert session.pending_count() == 5
        decided = next(i for i in (listed(session, n) for n in range(5)) if i.allows(Verdict.approve))
        session.decide(decided, Verdict.approve)
        backlog = session.backlog()
        assert (backlog.waiting, backlog.unseen_problems) == (1, 0), "held in its undo window: waiting to sync"


async def test_a_burst_of_queue_changes_is_handled_once_by_the_screen_then_by_the_app(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    handled: list[str] = []

    class CountingApp(ApprovalApp):
        def on_queue_changed(self, message: QueueChanged) -> None:
            handled.append(message.source)
            super().on_queue_changed(message)

    session = make_session()
    app = CountingApp(session, background=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        assert app.main.shown is not None, "the screen handled the change: the first item is shown"
        handled.clear()
        for n in range(20):  # posted faster than the screen reads them: the queued repeats collapse
            app.main.post_message(QueueChanged(str(n)))
        await eventually(lambda: "19" in handled, what="the burst's last change to reach the app")
        # Only the burst's own messages count: the opened item's claim may still report its change (source "fleet").
        handled = [source for source in handled if source.isdigit()]
        assert handled == ["19"], "one re-read for the burst, the newest change; it bubbled up to the app"
