"""Every conflict reaches the operator, and teams do not collide.

Conflicts are produced by the real fleet (decided elsewhere, expired, changed, withdrawn, superseded, invalid edit,
refused credentials) and checked on the real screen. Twenty headless consoles then decide the same items at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from console.engine.sync import AUTH_HOLD
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.records import Item, SyncState, Verdict
from tests.conftest import SOURCE, eventually, make_config, screen_text
from widgets.safe_text import clean


def _pending(session: Session) -> list[Item]:
    found = [session.store.items.get(r.source, r.id) for r in session.store.queue.rows(0, 100)]
    return [f[0] for f in found if f is not None]


async def test_each_kind_of_conflict_is_shown_and_none_is_retried(  # noqa: PLR0915 - one story, top to bottom
    fleet: Fleet, data_dir: Path
) -> None:
    for _ in range(2):
        fleet.add_item()
    locked = Fleet(seed=4, interval=None, initial=1, tokens={"right": "carol"})
    locked.start()
    config = Config(
        operator="alice",
        sources=(
            make_config(fleet).sources[0],
            SourceConfig(name="locked", url=locked.url, poll_interval=0.2, long_poll=0.0),
        ),
        undo_seconds=0.0,
    )
    tokens = {SOURCE: None, "locked": Token("wrong", "environment")}
    session = Session(config, data_dir, token_for=lambda name: tokens[name])
    app = ApprovalApp(session, background=False)
    try:
        async with app.run_test(size=(150, 50), notifications=True) as pilot:  # narrow layout: alerts span it
            await session.poller.poll_once(session.sources[SOURCE])
            items = [i for i in _pending(session) if i.source == SOURCE]
            elsewhere, expired, stale, withdrawn, superseded, invalid = items[:6]
            for item in (elsewhere, expired, stale, withdrawn, superseded):
                session.decide(item, Verdict.approve)
            bad_edit: object = "not an object" if invalid.kind == "approval" else {"output": {"no": ["schema"]}}
            if invalid.args_schema is not None:
                bad_edit = {"definitely": "not what the schema wants"}
            session.decide(invalid, Verdict.edit, edited=bad_edit)
            fleet.decide_elsewhere(elsewhere.id, by="bob", verdict="reject")
            fleet.expire(expired.id)
            fleet.change_item(stale.id, policy="tightened while you looked")
            fleet.withdraw(withdrawn.id)
            replacement = fleet.supersede(superseded.id, policy="a better plan")
            await session.sync_once()
            assert await session.sync_once() == 0, "no final answer is sent again"

            expected = {
                elsewhere.id: ("conflict", "already decided elsewhere by bob (reject)"),
                expired.id: ("timed_out", "the deadline passed"),
                stale.id: ("stale", "the item changed after you saw it"),
                withdrawn.id: ("withdrawn", "the agent withdrew this item"),
                superseded.id: ("superseded", f"the agent replaced this item by {replacement['id']}"),
                invalid.id: ("invalid", "the source refused the decision as invalid"),
            }
            rows = {row.decision.item_id: row for row in session.store.outbox.decisions()}
            for item_id, (outcome, detail) in expected.items():
                assert rows[item_id].sync_state is SyncState.conflict
                assert (rows[item_id].outcome, detail in rows[item_id].detail) == (outcome, True), rows[item_id].detail
            await pilot.pause(0.2)
            assert "Conflict" in screen_text(app), "a toast says so as the answers arrive"

            await pilot.press("p")
            await pilot.pause(0.2)
            problems = screen_text(app)
            for item_id, (outcome, detail) in expected.items():
                assert item_id in problems and f"{outcome}: {detail}"[:60] in clean(problems), (outcome, problems)
            await pilot.press("escape")

            # Refused credentials: the source is marked, its decisions wait, and the fix is on screen.
            locked_item = locked.pending()[0]
            assert locked_item["id"] not in {i.id for i in _pending(session)}, "a refused listing shows nothing"
            poll = asyncio.create_task(session.poller._run_source(session.sources["locked"]))  # its real loop
            try:
                await eventually(lambda: session.poller.health["locked"].state == "auth", what="the source marked")
            finally:
                poll.cancel()
            app.main.refresh_status()
            await pilot.pause(0.1)
            assert "locked" in screen_text(app) and "auth failed" in screen_text(app)
            # The operator is told once, loudly (a toast with the fix); the status bar's tooltip keeps it.
            told = clean(screen_text(app))
            assert "credentials refused" in told and "sources token locked" in told.replace("\n", " "), told
            tooltip = str(app.main.query_one("#status").tooltip)
            assert "approval-console sources token locked" in tooltip and "APPROVAL_CONSOLE_TOKEN_LOCKED" in tooltip
    finally:
        locked.stop()


async def test_refused_credentials_hold_decisions_with_the_fix_and_never_drop_them(data_dir: Path) -> None:
    locked = Fleet(seed=3, interval=None, initial=2, tokens={"right": "carol"})
    locked.start()
    try:
        config = Config(operator="alice", sources=(SourceConfig(name="locked", url=locked.url),), undo_seconds=0.0)
        right = Session(config, data_dir, token_for=lambda _n: Token("right", "environment"))
        await right.poll_once()
        item = _pending(right)[0]
        await right.aclose()
        wrong = Session(config, data_dir, token_for=lambda _n: Token("wrong", "environment"))
        decision = wrong.decide(item, Verdict.approve)
        for _ in range(3):
            await wrong.sync_once()
        assert wrong.sync.held and wrong.store.outbox.waiting_count() == 1, "held, not dropped, not hammered"
        assert locked.decision_requests(item.id) == 1
        await wrong.aclose()
        restarted = Session(config, data_dir, token_for=lambda _n: Token("right", "environment"))
        due = restarted.store.outbox.due(10, ["locked"], now=time.time() + AUTH_HOLD + 1)
        assert [d.id for d in due] == [decision.id], "still in the outbox after a restart, due once the hold is over"
        await restarted.aclose()
    finally:
        locked.stop()


def _token_of(console: int) -> Callable[[str], Token]:
    return lambda _source: Token(f"token-{console}", "environment")


async def test_twenty_consoles_deciding_the_same_items_apply_each_exactly_once(fleet: Fleet, tmp_path: Path) -> None:
    consoles = 20
    team = Fleet(seed=21, interval=None, initial=5, tokens={f"token-{n}": f"operator-{n}" for n in range(consoles)})
    team.start()
    try:
        config = Config(
            operator="on-call",
            sources=(SourceConfig(name=SOURCE, url=team.url, long_poll=0.0),),
            undo_seconds=0.0,
        )
        sessions = [Session(config, tmp_path / f"console-{n}", token_for=_token_of(n)) for n in range(consoles)]
        await asyncio.gather(*(s.poll_once() for s in sessions))
        items = {i.id for i in _pending(sessions[0])}
        assert len(items) == 5
        for n, session in enumerate(sessions):
            for item in _pending(session):
                verdict = Verdict.approve if n % 2 else Verdict.reject
                session.decide(item, verdict, reason_code=None if n % 2 else "unsafe")
        await asyncio.gather(*(s.sync_once() for s in sessions))  # all at once, on one fleet

        applied = team.applied_decisions()
        assert Counter(d["item_id"] for d in applied) == dict.fromkeys(items, 1), "one applied decision per item"
        winners = {d["decision_id"]: d["operator"] for d in applied}
        for session in sessions:
            rows = session.store.outbox.decisions()
            assert {r.decision.item_id for r in rows} == items
            for row in rows:
                if row.decision.id in winners:
                    assert row.sync_state is SyncState.applied
                else:
                    assert row.sync_state is SyncState.conflict and row.outcome == "conflict"
                    winner = next(d["operator"] for d in applied if d["item_id"] == row.decision.item_id)
                    assert f"already decided elsewhere by {winner}" in row.detail
            assert len(session.store.outbox.unseen_problems()) == sum(1 for r in rows if r.decision.id not in winners)
        assert sum(len(s.store.outbox.unseen_problems()) for s in sessions) == consoles * 5 - 5
        for session in sessions:
            await session.aclose()
    finally:
        team.stop()
