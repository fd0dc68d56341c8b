"""What the operator saw and what happened, end to end: the real app under Pilot over the demo fleet on loopback."""

from __future__ import annotations

from collections.abc import Callable

from console.engine.session import Session
from console.servers.fleet import Fleet
from storage.labels import Label
from storage.records import Verdict
from tests.conftest import eventually
from tests.test_operator_flow import polled_app


def _shown_at(session: Session, item_id: str) -> float | None:
    row = session.store.db.execute("SELECT first_shown_at FROM items WHERE id = ?", (item_id,)).fetchone()
    return None if row is None else row[0]


def _labels(session: Session) -> dict[str, Label]:
    rows = session.store.db.execute("SELECT item_id, record FROM labels").fetchall()
    return {item_id: Label.model_validate_json(record) for item_id, record in rows}


async def test_an_item_shown_then_expired_keeps_when_it_was_first_shown(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled_app(session) as (_app, pilot, seen):
        unseen = next(item["id"] for item in fleet.pending() if item["id"] != seen.id)
        await eventually(lambda: _shown_at(session, seen.id) is not None, what="the first show stored")
        fleet.expire(seen.id)
        fleet.expire(unseen)
        await session.poll_once()
        await pilot.pause(0.1)
        found = _labels(session)
    assert found[seen.id].verdict == "timed_out" and found[seen.id].first_shown_at is not None
    assert found[seen.id].trace is not None, "the fleet's trace reaches the label"
    assert found[unseen].first_shown_at is None, "never on screen"


async def test_a_decision_another_operator_beat_is_a_lost_conflict(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled_app(session) as (_app, pilot, seen):
        session.decide(seen, Verdict.approve)
        fleet.decide_elsewhere(seen.id, by="bob")
        await session.sync.drain_once()
        await pilot.pause(0.1)
        [row] = session.store.outbox.decisions()
        label = _labels(session)[seen.id]
    assert row.outcome == "conflict"
    assert label.outcome == "conflict_lost" and label.inputs == {
        "action": seen.action_name,
        "args": seen.editable_value,
    }
