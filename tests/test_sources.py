"""Sources that misbehave: malformed items, down, silent, garbage, back-pressure, lost answers, refused credentials."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from console.engine.sources.base import SourceError
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.records import SyncState, Verdict
from tests.conftest import SOURCE, eventually, make_config
from tests.servers import Fault, FaultyProxy, closed_port_url, running


async def test_malformed_items_are_quarantined_and_counted(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    good = fleet.pending()[0]
    fleet.inject_garbage(["not", "an", "object"])
    fleet.inject_garbage({"id": "itm_half", "kind": "approval"})
    fleet.inject_garbage({**good, "id": "itm_forged", "policy": "changed after digest"})
    session = make_session()
    await session.poll_once()
    assert session.store.queue.count() == 6, "the good items are all there"
    reasons = {q.item_id: q.reason for q in session.store.quarantine.rows()}
    assert "itm_half" in reasons and "agent: Field required" in reasons["itm_half"]
    assert "itm_forged" in reasons and "does not match the content" in reasons["itm_forged"]
    assert any("must be a JSON object" in r for r in reasons.values())
    assert session.poller.health[SOURCE].quarantined == 3
    await session.aclose()


async def test_down_source_is_shown_down_and_the_others_work(fleet: Fleet, data_dir: Path) -> None:
    config = Config(
        operator="alice",
        sources=(
            SourceConfig(name="dead", url=closed_port_url(), poll_interval=0.2, timeout=1.0),
            SourceConfig(name=SOURCE, url=fleet.url, poll_interval=0.2, long_poll=1.0),
        ),
    )
    session = Session(config, data_dir, token_for=lambda _n: None)
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(lambda: session.store.queue.count() == 6)
        await eventually(lambda: session.poller.health["dead"].state == "down")
        await pilot.pause(1.1)
        status = str(app.main.query_one("#status").render())  # the whole bar: a down source's reason may wrap it
        assert "dead" in status and "down" in status and "fleet" in status and "up" in status
        await pilot.press("j")
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id == session.store.queue.rows(1, 1)[0].id


async def test_garbage_wrong_shape_and_silence_are_reported(data_dir: Path) -> None:
    with running(FaultyProxy()) as server:
        config = Config(operator="alice", sources=(SourceConfig(name="odd", url=server.url, timeout=0.5),))
        session = Session(config, data_dir, token_for=lambda _n: None)
        source = session.sources["odd"]
        server.inject(Fault(200, b"{not json", path_prefix="/v1/items"))
        with pytest.raises(SourceError, match="invalid JSON"):
            await source.fetch(None)
        server.inject(Fault(200, b'{"items": 7}', path_prefix="/v1/items"))
        with pytest.raises(SourceError, match="not a listing: 'items' is a JSON number"):
            await source.fetch(None)
        server.inject(Fault(200, b"{}", delay=1.5, path_prefix="/v1/items"))
        with pytest.raises(SourceError, match="no answer within"):
            await source.fetch(None)
        server.inject(Fault(503, b"", {"Retry-After": "7"}, path_prefix="/v1/items"))
        with pytest.raises(SourceError, match="busy") as caught:
            await source.fetch(None)
        assert caught.value.retry_after == 7.0
        await session.aclose()


async def test_final_outcomes_are_recorded_not_retried(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    await session.poll_once()
    rows = session.store.queue.rows(0, 6)
    items = [session.store.items.get(r.source, r.id)[0] for r in rows]  # type: ignore[index]
    stale, expired, withdrawn, invalid = items[:4]
    for item in (stale, expired, withdrawn):
        session.decide(item, Verdict.approve)
    schema_breaker: object = {"definitely": "not what the schema wants"} if invalid.args_schema else None
    if schema_breaker is None:
        pytest.fail("the seeded fleet's top items all carry an args_schema; the seed changed")
    session.decide(invalid, Verdict.edit, edited=schema_breaker)
    fleet.change_item(stale.id, policy="tightened while you looked")
    fleet.expire(expired.id)
    fleet.withdraw(withdrawn.id)
    await session.sync_once()
    outcomes = {row.decision.item_id: (row.sync_state, row.outcome) for row in session.store.outbox.decisions()}
    assert outcomes[stale.id] == (SyncState.conflict, "stale")
    assert outcomes[expired.id] == (SyncState.conflict, "timed_out")
    assert outcomes[withdrawn.id] == (SyncState.conflict, "withdrawn")
    assert outcomes[invalid.id] == (SyncState.conflict, "invalid")
    assert await session.sync_once() == 0, "nothing final is sent again"
    assert fleet.applied_decisions() == []
    assert session.store.audit.verify().records == 8
    await session.aclose()


async def test_back_pressure_and_lost_answers_still_apply_exactly_once(fleet: Fleet, data_dir: Path) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        config = Config(operator="alice", sources=(SourceConfig(name=SOURCE, url=proxy.url, long_poll=0.0),))
        session = Session(config, data_dir, token_for=lambda _n: None)
        await session.poll_once()
        row = session.store.queue.rows(0, 1)[0]
        item = session.store.items.get(row.source, row.id)[0]  # type: ignore[index]
        decisions = "/v1/items/"
        proxy.inject(
            Fault(503, b"", {"Retry-After": "0.2"}, path_prefix=decisions),
            Fault(502, b"<html>bad gateway</html>", path_prefix=decisions, forward=True),  # applied, answer lost
            Fault(200, b"", path_prefix=decisions),  # an empty 200: unreadable, so unknown
        )
        session.decide(item, Verdict.approve)
        engine = asyncio.create_task(session.sync.run())  # the real engine, with its real backoff
        try:
            await eventually(lambda: session.store.outbox.waiting_count() == 0, timeout=20, what="the decision applied")
        finally:
            engine.cancel()
        [decision] = session.store.outbox.decisions()
        assert decision.sync_state is SyncState.applied
        assert [d["item_id"] for d in fleet.applied_decisions()] == [item.id]
        assert fleet.decision_requests(item.id) == 2, "the lost answer was resent under the same key"
        await session.aclose()


async def test_refused_credentials_hold_decisions_and_show_auth(data_dir: Path) -> None:
    fleet = Fleet(seed=3, interval=None, initial=2, tokens={"right-token": "carol"})
    fleet.start()
    try:
        tokens = {"wrong": Token("wrong-token", "environment")}
        session = Session(make_config(fleet), data_dir, token_for=lambda _n: tokens["wrong"])
        with pytest.raises(SourceError, match="credentials") as caught:
            await session.poll_once()
        assert caught.value.auth
        await session.aclose()

        session = Session(make_config(fleet), data_dir, token_for=lambda _n: Token("right-token", "environment"))
        await session.poll_once()
        row = session.store.queue.rows(0, 1)[0]
        session.decide(session.store.items.get(row.source, row.id)[0], Verdict.approve)  # type: ignore[index]
        await session.sync_once()
        [applied] = fleet.applied_decisions()
        assert applied["operator"] == "carol", "the reviewer's identity comes from the token, not the body"
        await session.aclose()

        session = Session(make_config(fleet), data_dir, token_for=lambda _n: tokens["wrong"])
        row = session.store.queue.rows(0, 1)[0]
        session.decide(session.store.items.get(row.source, row.id)[0], Verdict.approve)  # type: ignore[index]
        assert await session.sync_once() == 1
        assert session.sync.held, "a source that refused our credentials is held"
        assert await session.sync_once() == 0, "and not hammered"
        assert session.store.outbox.waiting_count() == 1, "the decision is kept, not dropped"
        await session.aclose()
    finally:
        fleet.stop()


def test_tokens_never_reach_the_database_or_log(fleet: Fleet, data_dir: Path) -> None:
    from console.engine.session import setup_logging

    canary = "canary-token-7f3a91"
    secured = Fleet(seed=5, interval=None, initial=2, tokens={canary: "dave"})
    secured.start()
    try:
        setup_logging(data_dir)
        session = Session(make_config(secured), data_dir, token_for=lambda _n: Token(canary, "environment"))

        async def run() -> None:
            await session.poll_once()
            row = session.store.queue.rows(0, 1)[0]
            session.decide(session.store.items.get(row.source, row.id)[0], Verdict.approve)  # type: ignore[index]
            await session.sync_once()
            await session.aclose()

        asyncio.run(run())
        assert secured.applied_decisions()[0]["operator"] == "dave"
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert canary.encode() not in path.read_bytes(), path
        assert json.dumps(repr(session.sources[SOURCE].config)).find(canary) == -1
    finally:
        secured.stop()
