"""Listing against a hostile server (tests/hostile_server.py): what a page may hold and what the console does with it.

Issue 10 items 3 (a 200 that is not a listing), 29 (cursors, R4), 31 (a server that ignores `wait`, R11), 33 (an
escalation without an action, R1), 34 (duplicate member names, R6), 35 (ids, R5), 37 (a snapshot after 410, R12),
41 (one unreadable item), 42 (limits, R7, R9, R10).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from console.engine.config import Config, SourceConfig
from console.engine.session import Session
from console.engine.sources.base import SourceError, validate_items
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.db import Store
from storage.records import MAX_NESTING, SyncState, Verdict, item_digest, shown_part
from tests.conftest import eventually, make_config, screen_text
from tests.factories import decision, item, payload
from tests.hostile_server import HostileServer, page
from tests.servers import Fault, running

NAME = "hostile"


@contextmanager
def hostile(*pages: bytes | Fault) -> Iterator[HostileServer]:
    server = HostileServer(*pages)
    with running(server):
        yield server


@asynccontextmanager
async def session_on(server: HostileServer, data_dir: Path, **options: Any) -> AsyncIterator[Session]:
    settings: dict[str, Any] = {"timeout": 5.0, "poll_interval": 0.2, "long_poll": 0.0, **options}
    config = Config(operator="alice", sources=(SourceConfig(name=NAME, url=server.url, **settings),), undo_seconds=0)
    session = Session(config, data_dir, token_for=lambda _n: None)
    try:
        yield session
    finally:
        await session.aclose()


def signed(raw: dict[str, Any]) -> dict[str, Any]:
    raw["digest"] = item_digest(shown_part(raw))
    return raw


def pending_ids(session: Session) -> list[str]:
    return sorted(row.id for row in session.store.queue.rows(0, 100))


# -- 3: a 200 answer that is not a listing -----------------------------------------------------------------------


NOT_LISTINGS = [
    (b'{"error": "unauthorized"}', "no 'items' array (its members: 'error')"),
    (b'{"foo": 1}', "no 'items' array (its members: 'foo')"),
    (b'{"items": {"a": 1}}', "'items' is a JSON object"),
    (b'{"items": [], "cursor": 7}', "'cursor' is a JSON number"),
    (b'{"items": [], "removed": {}}', "'removed' is a JSON object"),
    (b'{"items": [], "has_more": "yes"}', "'has_more' is a JSON string"),
    (b"[]", "a JSON array, not a listing"),
]


@pytest.mark.parametrize(("body", "reason"), NOT_LISTINGS)
async def test_a_200_that_is_not_a_listing_shows_the_source_down_with_the_reason(
    data_dir: Path, body: bytes, reason: str
) -> None:
    with hostile(body) as server:
        async with session_on(server, data_dir) as session:
            with pytest.raises(SourceError, match=r"not a listing|is a JSON") as raised:
                await session.sources[NAME].fetch(None)
            assert reason in str(raised.value)
            poller = asyncio.create_task(session.poller.run())
            try:
                await eventually(lambda: session.poller.health[NAME].state == "down", what="the source shown down")
            finally:
                poller.cancel()
            assert reason in session.poller.health[NAME].error


def test_doctor_says_a_source_answering_something_else_is_not_ok(tmp_path: Path) -> None:
    with hostile(b'{"error": "unauthorized"}') as server:
        config = tmp_path / "config.toml"
        config.write_text(f'operator = "alice"\n[[sources]]\nname = "odd"\nurl = "{server.url}"\n', encoding="utf-8")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "console.cli",
                "doctor",
                "--config",
                str(config),
                "--data-dir",
                str(tmp_path / "d"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    line = next(line for line in done.stdout.splitlines() if "source odd" in line)
    assert line.startswith("FAIL"), done.stdout
    assert "not a listing: no 'items' array" in line
    assert done.returncode == 1 and "Traceback" not in done.stderr


# -- 29: cursors (R4) ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["c" * 2_000_000, "has space", "new\nline", "", "ü"], ids=["2MB", "space", "newline", "empty", "non-ascii"]
)
async def test_a_cursor_that_breaks_r4_is_never_stored_and_the_next_poll_lists_afresh(
    data_dir: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = payload("itm_1")
    with hostile(page([first], cursor=bad), page([first], cursor=bad), page([], cursor="ok-1")) as server:
        async with session_on(server, data_dir) as session:
            with caplog.at_level(logging.WARNING, logger="console.engine.poller"):
                await session.poll_once()
                assert session.store.items.cursor(NAME) is None
                assert pending_ids(session) == ["itm_1"], "the page's items are kept"
                await session.poll_once()  # a fresh listing: the bad cursor was never sent
                await session.poll_once()  # the good one is kept
                await session.poll_once()  # and sent
            queries = [query for _, query in server.listings]
            assert ["cursor" in q for q in queries] == [False, False, False, True]
            assert queries[-1]["cursor"] == "ok-1" and session.store.items.cursor(NAME) == "ok-1"
            assert session.poller.health[NAME].state == "up"
            assert len([r for r in caplog.records if "was not kept" in r.getMessage()]) == 1, "logged once"


async def test_a_bad_cursor_stored_by_an_older_console_is_dropped(data_dir: Path) -> None:
    store = Store(data_dir / "console.db")
    store.items.apply_changes(NAME, [], [], "1")
    store._conn.execute("UPDATE cursors SET cursor = ? WHERE source = ?", ("x" * 1_025, NAME))
    assert store.items.cursor(NAME) is None
    store.close()
    with hostile(page([payload("itm_1")], cursor="c-2")) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert "cursor" not in server.listings[0][1], "listed afresh"
            assert pending_ids(session) == ["itm_1"] and session.store.items.cursor(NAME) == "c-2"


async def test_a_refused_cursor_mid_snapshot_drops_nothing(data_dir: Path) -> None:
    items = [payload(f"itm_{n}") for n in range(3)]
    more = json.dumps({"items": [items[2]], "cursor": "bad cursor", "has_more": True}).encode()
    with hostile(page(items, cursor="c-1"), Fault(410, b'{"error": "cursor_expired"}'), more) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            await session.poll_once()  # 410, then a snapshot whose first page has a cursor that cannot be kept
            assert pending_ids(session) == ["itm_0", "itm_1", "itm_2"], "an unfinished snapshot removes nothing"
            assert session.store.items.cursor(NAME) is None
            assert len(server.listings) == 3, "paging stopped at the page without a usable cursor"


async def test_more_pages_without_a_cursor_end_the_poll(data_dir: Path) -> None:
    endless = json.dumps({"items": [payload("itm_1")], "has_more": True}).encode()
    with hostile(endless) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert pending_ids(session) == ["itm_1"] and len(server.listings) == 1


def test_the_fleet_issues_cursors_and_ids_that_follow_the_rules(fleet: Fleet) -> None:
    from storage.records import cursor_problem, id_problem

    for raw in fleet.pending():
        assert id_problem(raw["id"]) is None
    with fleet._lock:
        body = json.loads(fleet._page(0, 2, snapshot=False))
    assert cursor_problem(body["cursor"]) is None
    for wanted in (".", "..", "a\x00b", "x" * 201, ""):
        with pytest.raises(ValueError, match=r"is not a new item id"):
            fleet.add_item(id=wanted)


# -- 31: a server that ignores `wait` (R11) ------------------------------------------------------------------------


@pytest.mark.parametrize("again", [[], [{"id": "itm_bad", "kind": "?"}]], ids=["nothing", "the same bad item"])
async def test_a_server_that_ignores_wait_is_listed_at_the_poll_interval(data_dir: Path, again: list[Any]) -> None:
    with hostile(page([payload("itm_1")], cursor="c-1"), page(again, cursor="c-1")) as server:
        async with session_on(server, data_dir, poll_interval=0.5, long_poll=20.0) as session:
            poller = asyncio.create_task(session.poller.run())
            try:
                await eventually(lambda: len(server.listings) >= 6, what="six listings")
            finally:
                poller.cancel()
    waits = [(at, query) for at, query in server.listings if "wait" in query]
    assert len(waits) >= 5 and all(float(query["wait"]) == 20.0 for _, query in waits)
    # The first long-poll may bring something new (a first quarantine); from then on nothing changes.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(waits)][1:]
    assert min(gaps) >= 0.45, f"listings that came back at once with nothing new were repeated after {gaps}"


# -- 33: an escalation without an action (R1) ----------------------------------------------------------------------


async def test_an_escalation_without_an_action_reaches_the_operator_and_can_be_accepted(
    fleet: Fleet, data_dir: Path
) -> None:
    for pending in fleet.pending():
        fleet.expire(pending["id"])
    added = fleet.add_item(kind="escalation", action=None, output={"label": "refund"}, risk="low", id="itm_bare")
    assert added["action"] is None
    session = Session(make_config(fleet), data_dir, token_for=lambda _n: None)
    await session.poll_once()
    assert session.store.quarantine.rows() == []
    assert pending_ids(session) == ["itm_bare"]
    assert session.store.queue.rows(0, 1)[0].action == "(no action)", "what the queue, history and alerts show"
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(120, 40)) as pilot:
        app.main.queue_changed()
        await pilot.pause()
        await eventually(lambda: app.main.shown is not None, what="the item shown")
        text = screen_text(app)
        assert "ESCALATION" in text and "(no action)" in text and "none: nothing runs on accept" in text
        assert '"label": "refund"' in text, "its output is shown"
        await pilot.press("a")
        await pilot.pause()
        await eventually(lambda: len(session.store.outbox.decisions()) == 1, what="the decision recorded")
        assert app.is_running
        [row] = session.store.outbox.decisions()
        assert row.decision.item_id == "itm_bare" and row.decision.verdict is Verdict.approve
        await session.sync_once()
    assert [d["item_id"] for d in fleet.applied_decisions()] == ["itm_bare"]


def test_an_escalation_may_leave_its_action_out() -> None:
    raw = payload("itm_e", kind="escalation", output="spam")
    del raw["action"]
    items, rejected = validate_items(NAME, [signed(raw)])
    assert rejected == [] and items[0].action is None and items[0].editable_value == "spam"


def test_an_approval_still_needs_an_action() -> None:
    items, rejected = validate_items(NAME, [payload("itm_a", action=None)])
    assert items == [] and "an approval needs an action" in rejected[0].reason


# -- 34: duplicate member names (R6) -------------------------------------------------------------------------------


async def test_an_item_with_a_duplicate_member_name_is_quarantined_and_its_page_listed(data_dir: Path) -> None:
    good = json.dumps(payload("itm_good"))
    shown = payload("itm_dup", action={"name": "harmless_noop", "args": {"env": "staging"}})
    dup = json.dumps(shown).replace(
        '"action": {', '"action": {"name": "delete_production", "args": {"env": "production"}}, "action": {', 1
    )
    assert dup.index("delete_production") < dup.index("harmless_noop")
    body = f'{{"items": [{good}, {dup}], "cursor": "c-1", "has_more": false}}'.encode()
    with hostile(body) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert pending_ids(session) == ["itm_good"]
            [refused] = session.store.quarantine.rows()
            assert refused.item_id == "itm_dup" and refused.reason == "duplicate member name 'action'"


async def test_a_duplicate_member_name_deep_inside_arguments_is_refused_too(data_dir: Path) -> None:
    inner = json.dumps(payload("itm_deep_dup", action={"name": "x", "args": {"a": {"b": [{"c": 1}]}}}))
    twice = inner.replace('"c": 1', '"c": 1, "c": 2')
    body = f'{{"items": [{twice}]}}'.encode()
    with hostile(body) as server:
        async with session_on(server, data_dir) as session:
            page_ = await session.sources[NAME].fetch(None)
            assert page_.items == [] and page_.rejected[0].reason == "duplicate member name 'c'"


# -- 35: ids (R5) --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [(".", "reserved"), ("..", "reserved"), ("a\x1b[2Jb", "control characters"), ("x" * 201, "at most 200 are")],
)
def test_an_item_whose_id_breaks_r5_is_quarantined(bad: str, reason: str) -> None:
    items, rejected = validate_items(NAME, [payload(bad), payload("itm_ok")])
    assert [i.id for i in items] == ["itm_ok"]
    assert reason in rejected[0].reason


async def test_every_url_with_an_id_holds_it_as_one_encoded_segment(data_dir: Path) -> None:
    odd = "a/b c%d?e#f.~_-é"
    with hostile(page([payload(odd)])) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            found = session.store.items.get(NAME, odd)
            assert found is not None
            await session.claim(found[0])
            await session.release(found[0])
            session.decide(found[0], Verdict.approve)
            await session.sync_once()
    segment = "a%2Fb%20c%25d%3Fe%23f.~_-%C3%A9"
    assert server.paths == [
        ("POST", f"/v1/items/{segment}/claim"),
        ("DELETE", f"/v1/items/{segment}/claim"),
        ("POST", f"/v1/items/{segment}/decision"),
    ]


async def test_dot_ids_are_quarantined_and_one_held_from_before_is_never_sent(data_dir: Path) -> None:
    with hostile(page([payload("."), payload(".."), payload("itm_ok")])) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert pending_ids(session) == ["itm_ok"]
            assert sorted(q.item_id for q in session.store.quarantine.rows()) == [".", ".."]
            older = item("..", source=NAME)  # what a console from before R5 may have stored
            session.store.items.apply_changes(NAME, [older], [], "c-1")
            assert await session.claim(older) is None
            session.decide(older, Verdict.approve)
            await session.sync_once()
            [row] = [r for r in session.store.outbox.decisions() if r.decision.item_id == ".."]
            assert row.sync_state is SyncState.failed and row.outcome == "invalid_id"
    assert server.paths == [], "nothing was sent to /v1/items/decision or /v1/decision"


# -- 37: a snapshot after 410 is the truth (R12) -------------------------------------------------------------------


async def test_after_410_the_snapshot_brings_back_an_item_held_as_removed(data_dir: Path) -> None:
    kept = payload("itm_back")
    removed = {"id": "itm_back", "state": "withdrawn", "seq": 2}
    with hostile(
        page([kept], cursor="c-1"),
        page([], cursor="c-2", removed=[removed]),
        Fault(410, b'{"error": "cursor_expired"}'),
        page([kept], cursor="c-9"),
    ) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            await session.poll_once()
            assert pending_ids(session) == []
            await session.poll_once()  # 410, then the snapshot lists it again with the same digest
            assert pending_ids(session) == ["itm_back"]
            assert session.store.items.removed_reason(NAME, "itm_back") is None
            assert len(server.listings) == 4


def test_a_snapshot_does_not_put_back_an_item_decided_here(store: Store) -> None:
    it = item("itm_1", source=NAME)
    store.items.apply_changes(NAME, [it], [], "c-1")
    store.outbox.record(decision(it))
    generation = store.items.begin_snapshot(NAME)
    store.items.apply_changes(NAME, [it], [], None, generation)
    store.items.end_snapshot(NAME, generation, "c-2")
    assert store.queue.count() == 0 and store.items.get(NAME, "itm_1") is not None
    assert store.items.get(NAME, "itm_1")[1] == "decided"  # type: ignore[index]


# -- 41: one unreadable item ---------------------------------------------------------------------------------------


async def test_one_unreadable_item_is_quarantined_and_the_good_ones_beside_it_listed(data_dir: Path) -> None:
    good = [json.dumps(payload(f"itm_{n}")) for n in range(3)]
    deep = '{"id": "itm_deep", "kind": "approval", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    broken = b'{"id": "itm_utf8", "agent": "\xff\xfe bad"}'
    body = b"".join(
        [
            b'{"items": [',
            b", ".join([good[0].encode(), deep.encode(), good[1].encode(), broken, good[2].encode()]),
            b'], "removed": [], "cursor": "c-1", "has_more": false}',
        ]
    )
    with hostile(body) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert pending_ids(session) == ["itm_0", "itm_1", "itm_2"]
            reasons = {q.item_id: q.reason for q in session.store.quarantine.rows()}
            assert set(reasons) == {"itm_deep", "itm_utf8"}
            assert "nested 100,001 levels deep" in reasons["itm_deep"]
            assert "not valid UTF-8" in reasons["itm_utf8"]
            assert session.poller.health[NAME].state == "up" and session.store.items.cursor(NAME) == "c-1"


async def test_a_page_whose_envelope_is_broken_is_an_error(data_dir: Path) -> None:
    body = b'{"items": [' + json.dumps(payload("itm_1")).encode() + b'], "cursor": "\xff"}'
    with hostile(body) as server:
        async with session_on(server, data_dir) as session:
            with pytest.raises(SourceError, match="not valid UTF-8 outside its items"):
                await session.sources[NAME].fetch(None)


# -- 42: limits (R7, R9, R10) --------------------------------------------------------------------------------------


def test_spec_valid_items_at_the_limits_are_listed() -> None:
    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels - 1):
            value = [value]
        return [value] if levels else value

    at_limits = payload(
        "i" * 200,
        agent="a" * 200,
        workflow="w" * 1_000,
        on_expiry="o" * 1_000,
        policy="p" * 64_000,
        action={"name": "n" * 200, "args": {"deep": nested(MAX_NESTING - 1)}},
        context={
            "summary": "s" * 64_000,
            "reasoning": "r",
            "evidence": ["e" * 64_000] * 3 + ["e"] * 997,
            "links": ["l"] * 1_000,
        },
        allowed_decisions=["approve", "delegate", "escalate_to_legal"],
        confidence=1,
    )
    items, rejected = validate_items(NAME, [at_limits])
    assert rejected == []
    assert items[0].allowed_decisions == (Verdict.approve,), "unknown decisions are ignored"
    assert items[0].confidence == 1.0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"confidence": True}, "confidence must be a number in 0..1, not true"),
        ({"confidence": "0.9"}, "confidence must be a number"),
        ({"allowed_decisions": ["delegate"]}, "none of the decisions it allows is known here"),
        ({"allowed_decisions": []}, "none of the decisions it allows is known here"),
        ({"workflow": "w" * 1_001}, "at most 1000 characters"),
        ({"context": {"evidence": ["e"] * 1_001}}, "at most 1000 items"),
        ({"context": {"links": ["l" * 64_001]}}, "at most 64000 characters"),
    ],
)
def test_items_over_the_limits_are_quarantined_with_the_reason(overrides: dict[str, Any], reason: str) -> None:
    items, rejected = validate_items(NAME, [payload("itm_1", **overrides)])
    assert items == [] and reason in rejected[0].reason, rejected[0].reason


def test_an_integer_a_double_cannot_hold_is_quarantined_with_that_reason() -> None:
    raw = payload("itm_1")
    raw["action"]["args"]["n"] = -(2**53)  # sent as a number: the digest cannot bind it (R7)
    items, rejected = validate_items(NAME, [raw, payload("itm_2", action={"name": "ok", "args": {"n": 2**53 - 1}})])
    assert [i.id for i in items] == ["itm_2"]
    assert "an integer beyond +-(2^53-1)" in rejected[0].reason and rejected[0].item_id == "itm_1"


async def test_an_item_of_one_mib_is_read_with_the_default_cap(data_dir: Path) -> None:
    big = payload("itm_big", action={"name": "bulk", "args": {"rows": "x" * 1_040_000}})
    assert 1_000_000 < len(json.dumps(big)) <= 1_048_576
    with hostile(page([big, payload("itm_2")])) as server:
        async with session_on(server, data_dir) as session:
            await session.poll_once()
            assert pending_ids(session) == ["itm_2", "itm_big"]


def test_stored_items_read_back_with_their_known_decisions(store: Store) -> None:
    raw = signed({**payload("itm_1"), "allowed_decisions": ["reject", "delegate", "reject"]})
    items, _ = validate_items(NAME, [raw])
    store.items.apply_changes(NAME, items, [], "c-1")
    found = store.items.get(NAME, "itm_1")
    assert found is not None and found[0].allowed_decisions == (Verdict.reject,)
