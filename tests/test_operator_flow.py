"""The operator's flow on real parts: sort, filter and group in SQLite, undo, critical confirmation, stale views,
claims, alerts, the command palette, help, the first-run screen, and a keystroke-counted triage of 50 items."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlite_utils
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from console.engine.config import Config, Notifications
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.alerts import osc_sequence
from console.tui.app import ApprovalApp
from console.tui.screens.confirm import FALLBACK_WORD, ConfirmCriticalScreen, confirmation_word
from console.tui.screens.edit import check_edit
from console.tui.screens.first_run import FirstRunApp
from console.tui.screens.guard import RefusedScreen
from console.tui.screens.help import HelpScreen
from console.tui.screens.main import MainScreen
from console.tui.screens.reject import RejectScreen
from storage import schema
from storage.db import Store, UndoRefused
from storage.queue import Grouping, QueueView, SortOrder, parse_filter
from storage.records import Item, SyncState, Verdict, now_utc
from tests.conftest import SOURCE, decide_key, eventually, first_shown, screen_text
from tests.factories import decision, item

SIZE = (120, 40)
BASE = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


def sample(store: Store) -> None:
    store.items.apply_changes(
        "billing",
        [
            item("b1", agent="billing-agent", risk="high", confidence=0.9, created_at=at(-5), expires_at=at(30)),
            item("b2", agent="billing-agent", risk="critical", confidence=None, created_at=at(-1), expires_at=at(50)),
            item("b3", agent="zeta-agent", risk="low", confidence=0.2, created_at=at(-9), expires_at=None),
        ],
        [],
        "c1",
    )
    store.items.apply_changes(
        "crm",
        [
            item("c1", agent="crm-agent", risk="high", confidence=0.4, created_at=at(-2), expires_at=at(10),
                 action={"name": "merge_contacts", "args": {}}),
            item("c2", agent="crm-agent", risk="medium", confidence=0.7, created_at=at(-7), expires_at=at(20),
                 action={"name": "100%_refund", "args": {}}),
        ],
        [],
        "c1",
    )  # fmt: skip


def ids(store: Store, view: QueueView) -> list[str]:
    return [row.id for row in store.queue.rows(0, 100, view)]


@asynccontextmanager
async def polled_app(session: Session, **run: Any) -> AsyncIterator[tuple[ApprovalApp, Pilot[None], Item]]:
    """The app over one poll of the fleet (no background work), and the item it shows first."""
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, **run) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        shown = app.main.shown
        assert shown is not None
        yield app, pilot, shown


# ---------------------------------------------------------------------------------------------- sort, filter, group


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (SortOrder.urgency, ["b2", "c1", "b1", "c2", "b3"]),
        (SortOrder.age, ["b3", "c2", "b1", "c1", "b2"]),
        (SortOrder.confidence, ["b2", "b3", "c1", "c2", "b1"]),  # least sure first: unknown is least sure
        (SortOrder.agent, ["b2", "b1", "c1", "c2", "b3"]),
    ],
)
def test_each_order_and_every_position(store: Store, order: SortOrder, expected: list[str]) -> None:
    sample(store)
    view = QueueView(order)
    assert ids(store, view) == expected
    rows = store.queue.rows(0, 100, view)
    assert [store.queue.index_of(r.source, r.id, view) for r in rows] == list(range(len(rows)))
    assert [r.id for r in store.queue.rows(1, 2, view)] == expected[1:3]


def test_filter_tokens_narrow_fields_and_words_match_anywhere(store: Store) -> None:
    sample(store)
    assert sorted(ids(store, QueueView(filter_text="agent:billing"))) == ["b1", "b2"]  # zeta-agent is not billing
    assert ids(store, QueueView(filter_text="source:crm")) == ["c1", "c2"]
    assert ids(store, QueueView(filter_text="action:merge")) == ["c1"]
    assert ids(store, QueueView(filter_text="MERGE")) == ["c1"]  # case-insensitive, any column
    assert ids(store, QueueView(filter_text="crm high")) == ["c1"]  # every word must match
    assert ids(store, QueueView(filter_text="risk:low")) == ["b3"]
    # The operator's text is a value, never SQL or a LIKE pattern.
    assert ids(store, QueueView(filter_text="100%")) == ["c2"]
    assert ids(store, QueueView(filter_text="%")) == ["c2"]
    assert QueueView(filter_text="a_c").where()[1] == ("%a\\_c%",)
    assert ids(store, QueueView(filter_text="x' OR 1=1 --")) == []
    view = QueueView(filter_text="source:crm")
    assert store.queue.count(view) == 2
    assert store.queue.index_of("billing", "b1", view) is None  # hidden by the filter
    parsed = parse_filter('agent:"billing agent" nope:x refund')
    assert [(term.column, term.values) for term in parsed.fields] == [("agent", ("billing agent",))]
    assert parsed.words == ("refund",) and parsed.unknown == ("nope",)  # an unknown field is said, not applied


def test_grouping_orders_by_group_then_by_the_order(store: Store) -> None:
    sample(store)
    view = QueueView(SortOrder.urgency, Grouping.source)
    assert ids(store, view) == ["b2", "b1", "b3", "c1", "c2"]
    assert store.queue.groups(view) == [("billing", 3, False), ("crm", 2, False)]
    assert [r.group for r in store.queue.rows(0, 10, view)] == ["billing"] * 3 + ["crm"] * 2
    view = QueueView(SortOrder.age, Grouping.agent, "agent:a")
    assert store.queue.groups(view) == [("billing-agent", 2, False), ("crm-agent", 2, False), ("zeta-agent", 1, False)]
    rows = store.queue.rows(0, 10, view)
    assert [r.id for r in rows] == ["b1", "b2", "c2", "c1", "b3"]
    assert [store.queue.index_of(r.source, r.id, view) for r in rows] == [0, 1, 2, 3, 4]
    assert store.queue.groups(QueueView()) == []


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("grouping", list(Grouping))
def test_each_view_walks_an_index_not_a_sort(store: Store, order: SortOrder, grouping: Grouping) -> None:
    """At 100,000 items a sort of the whole queue per screenful would be felt; an index walk is not."""
    view = QueueView(order, grouping)
    where, params = view.where()
    plan = store.db.execute(
        f"EXPLAIN QUERY PLAN SELECT id FROM items WHERE {where} ORDER BY {', '.join(view.key_columns)} LIMIT 200",
        params,
    ).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USE TEMP B-TREE" not in details, details
    assert "USING INDEX" in details or "USING COVERING INDEX" in details, details


# ------------------------------------------------------------------------------------------------------ undo


def test_undo_within_the_window_puts_the_item_back_and_keeps_both_in_the_audit(store: Store) -> None:
    it = item("b1")
    store.items.apply_changes("billing", [it], [], "c1")
    first = decision(it)
    store.outbox.record(first, hold_seconds=5)
    assert store.queue.count() == 0
    assert store.outbox.due(10, ["billing"]) == []  # the sync engine waits for the window
    store.outbox.undo(first.id, "alice")
    assert store.queue.count() == 1
    assert store.outbox.waiting_count() == 0
    [row] = store.outbox.decisions()
    assert row.sync_state is SyncState.undone
    kinds = [r[0] for r in store.db.execute("SELECT kind FROM audit ORDER BY seq").fetchall()]
    assert kinds == ["decision", "undo"]
    assert store.audit.verify().ok
    with pytest.raises(UndoRefused, match="already undone"):
        store.outbox.undo(first.id, "alice")
    # The same version can be decided again (the one-per-version index ignores undone decisions)...
    second = decision(it)
    store.outbox.record(second, hold_seconds=0)
    assert [d.id for d in store.outbox.due(10, ["billing"])] == [second.id]
    # ...and once sending started, undo is refused.
    store.outbox.mark_sending([second.id])
    with pytest.raises(UndoRefused, match="being sent"):
        store.outbox.undo(second.id, "alice")


def test_undo_is_refused_once_the_window_closed(store: Store) -> None:
    it = item("b1")
    store.items.apply_changes("billing", [it], [], "c1")
    held = decision(it)
    store.outbox.record(held, hold_seconds=5)
    with pytest.raises(UndoRefused):
        store.outbox.undo(held.id, "alice", now=now_utc().timestamp() + 6)
    with pytest.raises(UndoRefused, match="no such decision"):
        store.outbox.undo("nope", "alice")


def test_v2_migrates_a_populated_v1_database(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    conn = sqlite3.connect(path, isolation_level=None)
    schema.MIGRATIONS[0](sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 1")
    it = item("b1", claimed_by="bob")
    payload = it.model_dump_json()
    conn.execute(
        "INSERT INTO items(source, id, state, kind, agent, workflow, action_name, risk, risk_order, confidence,"
        " created_at, expires_at, expires_sort, digest, payload, first_seen_at, updated_at)"
        " VALUES ('billing', 'b1', 'pending', 'approval', 'billing-agent', '', 'issue_refund', 'high', 1, 0.8,"
        " 1.0, 2.0, 2.0, ?, ?, 1.0, 1.0)",
        (it.digest, payload),
    )
    conn.close()
    store = Store(path)
    try:
        [row] = store.queue.rows(0, 10, QueueView(SortOrder.confidence))
        assert row.claimed_by == "bob"
        held = decision(it.model_copy(update={"source": "billing"}))
        store.outbox.record(held, hold_seconds=5)
        store.outbox.undo(held.id, "alice")
        store.outbox.record(decision(it.model_copy(update={"source": "billing"})))
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    finally:
        store.close()


async def test_u_takes_a_decision_back_before_anything_is_sent(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session(undo_seconds=30)
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)
        await decide_key(pilot, "a")
        await eventually(lambda: "to undo (" in screen_text(app), what="the undo bar")
        assert session.store.queue.index_of(SOURCE, top.id) is None
        await pilot.press("u")
        await pilot.pause(0.1)
        assert "to undo (" not in screen_text(app)
        assert app.main.shown is not None and app.main.shown.id == top.id, "back on the item, to decide again"
        [row] = session.store.outbox.decisions()
        assert row.sync_state is SyncState.undone
        await pilot.press("u")  # nothing left to undo: refused, nothing breaks
        await pilot.pause(0.5)
        assert fleet.decision_requests() == 0
        assert session.store.audit.verify().ok


async def test_after_the_window_the_decision_is_sent_and_undo_is_refused(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    # A window long enough that the key (and a critical item's typed confirmation) is done inside it, even on a busy
    # machine: the send must come after it.
    session = make_session(undo_seconds=4)
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        top = await first_shown(app, pilot)
        await decide_key(pilot, "a")
        assert fleet.decision_requests(top.id) == 0
        await eventually(lambda: fleet.decision_requests(top.id) == 1, what="the send after the window")
        await pilot.press("u")
        # Its toast may take more than a frame to show on a busy machine: wait for it, as an operator would.
        await eventually(lambda: "Nothing to undo" in screen_text(app), what="the refusal to undo")
        assert [r.sync_state for r in session.store.outbox.decisions()] in ([SyncState.applied], [SyncState.sending])


# --------------------------------------------------------------------------------------- critical confirmation


def test_the_confirmation_word_is_the_action_name_when_it_can_be_typed() -> None:
    assert confirmation_word(item(action={"name": "drop_table", "args": {}})) == "drop_table"
    assert confirmation_word(item(action={"name": "drop\u200btable", "args": {}})) == FALLBACK_WORD
    assert confirmation_word(item(action={"name": "x" * 41, "args": {}})) == FALLBACK_WORD


async def test_a_critical_approval_needs_the_typed_confirmation(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    critical = fleet.add_item(risk="critical", kind="approval", action={"name": "drop_table", "args": {"t": "x"}})
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id == critical["id"]
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCriticalScreen)
        await pilot.press(*"drop_tabel", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmCriticalScreen), "a wrong word does not approve"
        assert "not 'drop_table'" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and session.store.outbox.decisions() == []
        assert await decide_key(pilot, "a") == 2 + len("drop_table")
        [row] = session.store.outbox.decisions()
        assert (row.decision.item_id, row.decision.verdict) == (critical["id"], Verdict.approve)


# -------------------------------------------------------------------------------------------------- stale views


async def test_a_changed_item_is_announced_and_the_old_version_cannot_be_decided(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled_app(session) as (app, pilot, seen):
        fleet.change_item(seen.id, policy="a new policy")
        await session.poll_once()
        await pilot.pause(0.1)
        assert "changed while you were viewing it" in screen_text(app)
        assert app.main.shown is not None and app.main.shown.digest != seen.digest
        await pilot.press("a")  # too soon after the change: refused
        await pilot.pause(0.1)
        assert session.store.outbox.decisions() == []
        if isinstance(app.screen, RefusedScreen):  # a critical item's refusal takes the keys until esc
            await pilot.press("escape")
        current = app.main.shown
        await pilot.pause(1.6)
        await decide_key(pilot, "a")
        [row] = session.store.outbox.decisions()
        assert row.decision.item_digest == current.digest != seen.digest


async def test_a_decision_prepared_on_the_old_version_is_refused(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled_app(session, notifications=True) as (app, pilot, seen):
        await pilot.press("r", "1")
        assert isinstance(app.screen, RejectScreen)
        fleet.change_item(seen.id, policy="changed while the dialog was open")
        await session.poll_once()
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert session.store.outbox.decisions() == []
        assert "Not recorded: the item changed since it was shown" in screen_text(app)


@pytest.mark.parametrize(
    ("leave", "why"),
    [
        (lambda f, i: f.decide_elsewhere(i, by="bob"), "decided elsewhere"),
        (lambda f, i: f.expire(i), "its deadline passed"),
        (lambda f, i: f.withdraw(i), "withdrawn by the agent"),
    ],
)
async def test_an_item_that_leaves_is_announced_and_the_next_one_held(
    fleet: Fleet, make_session: Callable[..., Session], leave: Callable[[Fleet, str], None], why: str
) -> None:
    session = make_session()
    async with polled_app(session) as (app, pilot, seen):
        leave(fleet, seen.id)
        await session.poll_once()
        await pilot.pause(0.1)
        assert f"left the queue ({why}); this is the next one" in screen_text(app)
        assert app.main.shown is not None and app.main.shown.id != seen.id
        await pilot.press("a")
        await pilot.pause(0.1)
        assert session.store.outbox.decisions() == [], "the key meant for the old item does not land on the next"


# ------------------------------------------------------------------------------------------------------- claims


def test_fleet_claims_grant_renew_refuse_release_and_lapse(fleet: Fleet) -> None:
    item_id = fleet.pending()[0]["id"]
    with httpx.Client(base_url=fleet.url, timeout=10) as http:
        granted = http.post(f"/v1/items/{item_id}/claim", json={"operator": "alice"})
        assert granted.status_code == 200 and granted.json()["claimed_by"] == "alice"
        listed = {i["id"]: i for i in http.get("/v1/items").json()["items"]}
        assert listed[item_id]["claimed_by"] == "alice"
        renewed = http.post(f"/v1/items/{item_id}/claim", json={"operator": "alice"})
        assert renewed.status_code == 200
        refused = http.post(f"/v1/items/{item_id}/claim", json={"operator": "bob"})
        assert (refused.status_code, refused.json()["claimed_by"]) == (409, "alice")
        assert http.request("DELETE", f"/v1/items/{item_id}/claim", json={"operator": "bob"}).status_code == 409
        assert http.request("DELETE", f"/v1/items/{item_id}/claim", json={"operator": "alice"}).json() == {
            "released": True
        }
        assert http.post(f"/v1/items/{item_id}/claim", json={"operator": "bob"}).status_code == 200
        assert http.post("/v1/items/nope/claim", json={"operator": "bob"}).status_code == 404
    second = fleet.pending()[1]["id"]
    assert fleet.claim(second, "carol", lease=0.05)[0] is True
    assert fleet.claim(second, "dave")[0] is False
    time.sleep(0.1)  # the lease is wall-clock (a real server clock); the next claim finds it lapsed
    assert fleet.claim(second, "dave")[0] is True


async def test_opening_an_item_claims_it_and_others_claims_are_marked(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    async with polled_app(session) as (app, pilot, shown):
        await eventually(
            lambda: {i["id"]: i for i in fleet.pending()}[shown.id]["claimed_by"] == "alice", what="our claim"
        )
        second = session.store.queue.rows(1, 1)[0]
        fleet.claim(second.id, "bob")
        await session.poll_once()
        await pilot.pause(0.1)
        assert "⚑ bob" in screen_text(app), "the queue marks who else holds an item"
        await pilot.press("j")
        await pilot.pause(0.2)
        assert "claimed by bob" in screen_text(app)
        assert {i["id"]: i for i in fleet.pending()}[second.id]["claimed_by"] == "bob", "advisory: bob keeps it"
        await eventually(lambda: {i["id"]: i for i in fleet.pending()}[shown.id]["claimed_by"] is None,
                         what="our claim on the item we left released")  # fmt: skip


# ------------------------------------------------------------------------------------------------------- alerts


async def test_new_urgent_items_and_close_deadlines_alert_once(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await session.poll_once()
        await pilot.pause(0.2)
        before = len(app.announced)
        fleet.add_item(risk="critical", kind="approval", action={"name": "wipe_[b]disk[/b]\x1b[2J", "args": {}})
        fleet.add_item(risk="low", kind="approval", expires_in=3600)
        await session.poll_once()
        await pilot.pause(0.2)
        new = app.announced[before:]
        assert [a.title for a in new] == ["New CRIT item"]
        assert "wipe_[b]disk[/b]␛[2J" in new[0].message and "\x1b" not in new[0].message
        assert "wipe_[b]disk[/b]" in screen_text(app), "the toast shows the text literally"
        await session.poll_once()
        fleet.add_item(risk="medium", kind="approval", expires_in=60)
        await session.poll_once()
        await pilot.pause(1.3)
        titles = Counter(a.title for a in app.announced[before:])
        assert titles["New CRIT item"] == 1, "no duplicate for the same item"
        assert titles["Deadline about to pass"] >= 1
        due = titles["Deadline about to pass"]
        await pilot.pause(1.2)
        assert Counter(a.title for a in app.announced[before:])["Deadline about to pass"] == due


async def test_alerts_can_be_turned_off(fleet: Fleet, data_dir: Path) -> None:
    from tests.conftest import make_config

    config = make_config(fleet)
    quiet = Config(
        operator=config.operator,
        sources=config.sources,
        undo_seconds=0,
        notifications=Notifications(bell=False, toast=False, desktop=False, deadline_seconds=0),
    )
    session = Session(quiet, data_dir, token_for=lambda _name: None)
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await session.poll_once()
        fleet.add_item(risk="critical", kind="approval", action={"name": "quiet_please", "args": {}}, expires_in=30)
        await session.poll_once()
        await pilot.pause(1.3)
        text = screen_text(app)
        assert "New CRIT item" not in text and "Deadline about to pass" not in text
        assert not any(a.title == "Deadline about to pass" for a in app.announced)


def test_desktop_escape_sequences_carry_only_cleaned_ascii() -> None:
    hostile = "evil\x1b]52;c;ZXZpbA==\x07;\x9c\u202e done"
    sequence = osc_sequence("New CRIT item", hostile, {"TERM_PROGRAM": "iTerm.app"})
    assert sequence is not None
    payload = sequence[len("\x1b]9;") : -2]
    assert "\x1b" not in payload and "\x07" not in payload and "\x9c" not in payload and ";" not in payload
    urxvt = osc_sequence("t;x", "b", {"TERM": "rxvt-unicode"})
    assert urxvt == "\x1b]777;notify;t x;b\x1b\\"
    assert osc_sequence("t", "b", {"TERM": "xterm-256color"}) is None


# -------------------------------------------------------------------------------------- palette, help, first run


async def test_command_palette_lists_every_action_and_runs_one(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        titles = {command.title for command in app.get_system_commands(app.main)}
        for binding in app.main.all_bindings():
            if binding.description and app.main.check_action(binding.action, ()):  # what fits the item shown
                assert binding.description in titles, binding.description
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Group")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert session.queue.view.grouping is Grouping.source


async def test_help_shows_every_binding(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(120, 90)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for binding in app.main.all_bindings():
            assert binding.description in text, binding.description
        assert "Command palette" in text and "Light / dark theme" in text
        assert "x / ctrl+l" in text and "Dismiss alerts" in text, "the keys the app builds on are listed too"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_sort_filter_and_group_keys(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        agent = session.store.queue.rows(0, 1)[0].agent
        await pilot.press("o")
        assert session.queue.view.order is SortOrder.age
        assert "sorted by age" in screen_text(app)
        await pilot.press("g", "g")
        assert session.queue.view.grouping is Grouping.agent
        await pilot.pause(0.1)
        assert f"▾ {agent}" in screen_text(app)
        await pilot.press("slash", *f"agent:{agent}")
        await pilot.pause(0.1)
        assert session.queue.view.filter_text == f"agent:{agent}"
        expected = session.store.queue.count(session.queue.view)
        assert f"QUEUE {expected} item" in screen_text(app)
        assert all(r.agent == agent for r in session.store.queue.rows(0, 50, session.queue.view))
        await pilot.press("enter")  # keep the filter, back to the list: keys decide again
        assert app.main.queue_list.has_focus
        await pilot.press("escape")
        assert session.queue.view.filter_text == "" and not app.main.query_one("#filter", Input).display
        await pilot.click("#queue", offset=(10, 3))  # the mouse selects rows too
        await pilot.pause(0.1)
        assert app.main.queue_list.cursor >= 0


async def test_first_run_explains_and_offers_the_demo(tmp_path: Path) -> None:
    app = FirstRunApp(tmp_path / "config.toml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "approval-console sources add" in text and "does not exist" in text
        await pilot.click("#demo")
        await pilot.pause()
    assert app.return_value == "demo"
    quitting = FirstRunApp(tmp_path / "config.toml")
    async with quitting.run_test(size=SIZE) as pilot:
        await pilot.press("q")
    assert quitting.return_value is None


# ------------------------------------------------------------------------------------------ keystroke scenario


def left_queue(session: Session, item_id: str) -> bool:
    return session.store.queue.index_of(SOURCE, item_id) is None


def an_edit(shown: Item) -> str | None:
    """A valid edit of the item, as JSON text, or None when the item cannot be edited this simply."""
    value = shown.editable_value
    if not shown.allows(Verdict.edit) or not isinstance(value, dict):
        return None
    for key, old in value.items():
        if isinstance(old, str) and old:
            text = json.dumps({**value, key: old[:-1]})
            if check_edit(text, shown.args_schema)[1] is None:
                return text
    return None


@pytest.mark.slow
@pytest.mark.timeout(480)  # fifty decisions through the real app and fleet: minutes, not seconds, on a busy machine
async def test_triage_50_mixed_items_counting_keys(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The must-hold numbers: approving the top item is 1 key, rejecting with a reason at most 3 plus the comment."""
    from tests.conftest import make_config

    fleet = Fleet(seed=5, interval=None, initial=50)
    fleet.start()
    try:
        session = Session(make_config(fleet), data_dir, token_for=lambda _name: None)
        app = ApprovalApp(session)
        keys: dict[str, list[int]] = {
            "approve": [],
            "approve critical": [],
            "reject (+ comment)": [],
            "edit (+ typing)": [],
        }
        comment = "dup"
        async with app.run_test(size=SIZE) as pilot:
            await eventually(lambda: session.store.queue.count() == 50, what="50 items listed")
            await pilot.pause(0.2)
            for turn in range(50):
                shown = app.main.shown
                assert shown is not None
                if turn % 3 == 1 and shown.allows(Verdict.reject):
                    await pilot.press("r", "2")
                    await pilot.press(*comment)
                    await pilot.press("enter")
                    keys["reject (+ comment)"].append(3)
                elif turn % 4 == 2 and shown.risk.value != "critical" and (edited := an_edit(shown)) is not None:
                    await pilot.press("e")
                    await pilot.pause()
                    app.screen.query_one(TextArea).text = edited  # stands for the operator's typing
                    await pilot.pause()
                    await pilot.press("ctrl+s")  # review the diff (once the schema check answers), then submit
                    await eventually(lambda: getattr(app.screen, "reviewing", False), what="the diff")
                    await pilot.press("enter")
                    keys["edit (+ typing)"].append(3)
                else:
                    pressed = await decide_key(pilot, "a")
                    keys["approve critical" if shown.risk.value == "critical" else "approve"].append(pressed)
                await eventually(partial(left_queue, session, shown.id), what=f"turn {turn} decided")
                await pilot.pause(0.45)  # past the double-tap guard, as a person would be
            await eventually(lambda: len(fleet.applied_decisions()) == 50, timeout=30, what="all 50 applied")
        verdicts = Counter(d["verdict"] for d in fleet.applied_decisions())
        assert sum(verdicts.values()) == 50 and verdicts["reject"] and verdicts["approve"]
        assert set(keys["approve"]) == {1}
        assert set(keys["reject (+ comment)"]) == {3}
        with capsys.disabled():
            print("\nkeystrokes per decision over 50 demo items (comment characters not counted):")
            for what, counts in keys.items():
                if counts:
                    print(f"  {what:<22} {len(counts):>3} decisions, {set(counts)} keys each, {sum(counts)} in all")
    finally:
        fleet.stop()
