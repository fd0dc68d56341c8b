"""Hostile payloads do nothing: property-based items (hypothesis) through validation, storage and the real widgets.

Generated items carry megabyte arguments, deep nesting, lone surrogates, control characters, CSI / OSC 8 / OSC 52
escapes, Textual and Rich markup (including the forms `escape()` misses), bidi overrides, wrong types and missing
fields. Nothing may crash; an invalid item is quarantined with a reason; nothing agent-supplied is interpreted as markup
or an action, or reaches the terminal raw. An item over its source's size cap is refused without being read whole.
"""

from __future__ import annotations

import json
import tempfile
import unicodedata
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from textual.strip import Strip

from console.engine.config import Config, SourceConfig
from console.engine.session import Session
from console.engine.sources.base import SourceError, validate_items
from console.engine.sources.listing import parse_listing
from console.tui.app import ApprovalApp
from storage.db import Store
from storage.records import Decision, Verdict, cursor_problem, id_problem, item_digest, now_utc, shown_part
from tests.conftest import composed_strips
from tests.factories import payload
from tests.hostile_server import HostileServer
from tests.queue_servers import TestServe, fixed_token
from tests.servers import Fault, FaultyProxy, running

FRAGMENTS = [
    "\x1b[31m",  # CSI colour
    "\x1b[2J\x1b[H",  # CSI clear screen
    "\x1b[?1049h",  # CSI alternate screen
    "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\",  # OSC 8 hyperlink
    "\x1b]52;c;cm0gLXJmIC8K\x07",  # OSC 52 clipboard write
    "\x1bP+q\x1b\\",  # DCS
    "\x9b31m",  # C1 CSI
    "[bold red]",
    "[@click=app.quit]press[/]",
    "[$accent]",
    "[ link=https://evil.example]",
    "[Foo]x[/Foo]",
    "[/]",
    "[b]unclosed",
    "\u202eevil\u202c",  # bidi override
    "\u2066\u2069",
    "\u200b\u200d",
    "\ud800",  # lone surrogates: valid JSON "\ud800", invalid UTF-8
    "\udfff",
    "\x00\x07\x08\r\x7f",
    "\n",
    "\t",
    "\U000e0041",  # tag character
    "界🙂",
    "$",
    "plain",
]
_RAW = {chr(c) for c in range(0x20) if chr(c) not in "\n"} | {chr(0x7F)} | {chr(c) for c in range(0x80, 0xA0)}


def _forbidden(char: str) -> bool:
    return char in _RAW or unicodedata.category(char) in ("Cf", "Cs")


hostile_text = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12).map("".join)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=20,
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = {f"level{n}": [value]}
    return value


TEXT_FIELDS = ("agent", "workflow", "policy", "on_expiry", "id")
WRONG = st.sampled_from([None, 7, 3.5, True, [], {}, "x" * 300, ["a"], {"b": 1}])
# Ids that address another URL, or another segment, once in a path (R5), and ids that are merely odd.
ID_FRAGMENTS = [".", "..", "/", "%2e", "%2F", "?", "#", "\\", " ", "\x00", "\x1b", "\x85", "\u202e", "é", "~", "_-"]
hostile_ids = st.sampled_from([".", "..", "", "x" * 201, "./x", "../..", "a/../b", "%2e%2e"]) | st.lists(
    st.sampled_from(ID_FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=8
).map("".join)
# Cursors a server may send back (R4): long ones, ones with characters that do not fit a query, and fine ones.
hostile_cursors = (
    st.from_regex(r"[A-Za-z0-9\-._~:+/=]{1,40}", fullmatch=True)
    | st.text(max_size=20)
    | st.sampled_from(["", " ", "a b", "c\nd", "%00", "x" * 1_024, "x" * 1_025, "y" * 2_000_000, "é", "\ud800"])
)


@st.composite
def hostile_items(draw: st.DrawFn, *, max_depth: int = 900, big: bool = True) -> dict[str, Any]:
    raw = payload(f"itm_{draw(st.integers(0, 10**9))}")
    if draw(st.integers(0, 5)) == 0:
        raw["id"] = draw(hostile_ids)
    for name in TEXT_FIELDS:
        if draw(st.booleans()):
            raw[name] = draw(hostile_text)
    raw["action"] = {
        "name": draw(hostile_text) or "x",
        "args": draw(st.dictionaries(hostile_text, json_value, max_size=5)),
        "args_schema": None,
    }
    raw["context"] = {
        "summary": draw(hostile_text),
        "reasoning": draw(hostile_text),
        "evidence": draw(st.lists(hostile_text, max_size=3)),
        "links": draw(st.lists(hostile_text, max_size=3)),
    }
    if draw(st.booleans()):
        raw["kind"] = "escalation"
        raw["output"] = draw(json_value)
    if draw(st.integers(0, 4)) == 0:
        raw["action"]["args"]["deep"] = _nested(draw(st.integers(1, max_depth)))
    if big and draw(st.integers(0, 6)) == 0:
        raw["action"]["args"]["blob"] = "A" * 1_500_000  # megabytes of argument
    for _ in range(draw(st.integers(0, 2))):  # wrong types and missing fields
        field = draw(st.sampled_from(["kind", "agent", "action", "risk", "created_at", "confidence", "context", "id"]))
        if draw(st.booleans()):
            raw.pop(field, None)
        else:
            raw[field] = draw(WRONG)
    try:
        raw["digest"] = item_digest(shown_part(raw))
    except (TypeError, ValueError, RecursionError):
        raw["digest"] = "sha256:" + "0" * 64  # what an agent that cannot hash its own item sends
    return raw


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_items(), min_size=1, max_size=4))
def test_hostile_items_are_validated_stored_or_quarantined_never_crash(raws: list[dict[str, Any]]) -> None:
    items, rejected = validate_items("hostile", raws)
    assert len(items) + len(rejected) == len(raws)
    assert all(r.reason for r in rejected), "a quarantined item says why"
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "console.db")
        store.items.apply_changes("hostile", items, [], "1")
        for r in rejected:
            store.quarantine.add("hostile", r.item_id, r.reason, r.excerpt)
        latest = {it.id: it.digest for it in items}  # the same id twice in a page: the later one is the version
        for item_id, digest in latest.items():
            found = store.items.get("hostile", item_id)
            assert found is not None and found[0].digest == digest
        assert len(store.quarantine.rows()) == len({r.item_id for r in rejected})
        assert store.integrity_check() == "ok"
        store.close()


def _raw_on_screen(strips: list[Strip]) -> list[str]:
    """What would reach the terminal unescaped: control, format or surrogate characters; links or actions."""
    found = []
    for strip in strips:
        for segment in strip:
            bad = {c for c in segment.text if _forbidden(c)}
            if bad:
                found.append(f"characters {sorted(map(hex, map(ord, bad)))} in {segment.text!r}")
            style = segment.style
            if style is not None and (style.link or (style.meta and "@click" in style.meta)):
                found.append(f"a link or action in {segment.text!r}")
    return found


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_items(max_depth=60, big=False), min_size=3, max_size=6))
async def test_hostile_items_render_literally_in_the_real_widgets(raws: list[dict[str, Any]]) -> None:
    items, rejected = validate_items("hostile", raws)
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(Config(operator="alice", sources=()), Path(tmp) / "data", token_for=lambda _n: None)
        session.store.items.apply_changes("hostile", items, [], "1")
        for r in rejected:
            session.store.quarantine.add("hostile", r.item_id, r.reason, r.excerpt)
        app = ApprovalApp(session, background=False)
        async with app.run_test(size=(120, 40)) as pilot:
            app.main.queue_changed()
            await pilot.pause()
            for _ in range(len(items)):  # every item through the detail view, the queue list showing them all
                assert _raw_on_screen(composed_strips(app)) == []
                await pilot.press("j")
                await pilot.pause()
            await pilot.press("p")  # the quarantine, with each reason and excerpt
            await pilot.pause()
            assert _raw_on_screen(composed_strips(app)) == []
            svg = app.export_screenshot()
            assert "\x1b" not in svg
            assert app.is_running, "no markup error or crash took the app down"


async def test_an_item_over_the_size_cap_is_quarantined_and_the_rest_listed(tmp_path: Path) -> None:
    small = [payload(f"itm_{n}") for n in range(3)]
    huge = payload("itm_huge", action={"name": "bulk_import", "args": {"rows": "x" * 3_000_000}})
    body = json.dumps({"items": [small[0], huge, *small[1:]], "cursor": "c1", "has_more": False}).encode()
    with running(FaultyProxy()) as server:
        server.inject(Fault(200, body, path_prefix="/v1/items"))
        config = Config(operator="alice", sources=(SourceConfig(name="big", url=server.url, timeout=5.0),))
        session = Session(config, tmp_path / "data", token_for=lambda _n: None)
        page = await session.sources["big"].fetch(None)
        assert [i.id for i in page.items] == ["itm_0", "itm_1", "itm_2"]
        [refused] = page.rejected
        assert refused.item_id == "itm_huge" and "over this source's cap of 1,048,576" in refused.reason
        assert len(refused.excerpt) < 1000
        await session.aclose()


async def test_an_answer_over_the_page_cap_is_never_read_whole(tmp_path: Path) -> None:
    total = 200_000_000  # announced and streamed; the proxy never holds it, the console must not read it
    start = b'{"items": [{"id": "itm_endless", "action": {"args": {"rows": "'
    with running(FaultyProxy()) as server:
        server.inject(*[Fault(200, start, filler=total, path_prefix="/v1/items")] * 5)
        config = Config(
            operator="alice", sources=(SourceConfig(name="big", url=server.url, timeout=20.0, max_item_bytes=100_000),)
        )
        session = Session(config, tmp_path / "data", token_for=lambda _n: None)
        with pytest.raises(SourceError, match=r"larger than 8,000,000 bytes; it was not read"):
            await session.sources["big"].fetch(None)
        limits = [r.split("limit=")[1].split("&")[0] for r in server.requests if "/v1/items" in r]
        assert limits == ["500", "62", "7", "1"], "fewer items asked each time, down to one"
        assert server.sent and max(server.sent) < total // 10, "the rest of each answer was never read"
        await session.aclose()


def _dumps_twice(value: Any, names: set[int], counter: list[int]) -> str:
    """JSON text of `value` in which the objects numbered in `names` (depth-first) name their first member twice.

    `counter` is [objects seen, objects written with a duplicate name]."""
    if isinstance(value, dict):
        number = counter[0]
        counter[0] += 1
        members = [f"{json.dumps(k)}: {_dumps_twice(v, names, counter)}" for k, v in value.items()]
        if number in names and value:
            first = next(iter(value))
            members.append(f'{json.dumps(first)}: "the other value"')
            counter[1] += 1
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dumps_twice(v, names, counter) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(hostile_items(max_depth=30, big=False), st.sets(st.integers(0, 8), max_size=2)), max_size=5))
def test_an_item_naming_a_member_twice_anywhere_is_quarantined_and_its_page_read(
    drawn: list[tuple[dict[str, Any], set[int]]],
) -> None:
    texts, doubled = [], 0
    for raw, names in drawn:
        counter = [0, 0]
        texts.append(_dumps_twice(raw, names, counter))
        doubled += counter[1] > 0
    assume(not any("Infinity" in text for text in texts))  # not JSON at all: refused for that first
    listing = parse_listing(f'{{"items": [{", ".join(texts)}], "cursor": "c1"}}'.encode())
    assert len(listing.items) + len(listing.unreadable) == len(drawn)
    assert sum("duplicate member name" in r.reason for r in listing.unreadable) == doubled, listing.unreadable
    for item in listing.items:
        assert json.loads(json.dumps(item)) == item  # what is listed has one value per name


@settings(max_examples=200, deadline=None)
@given(hostile_cursors)
def test_a_cursor_is_kept_only_if_it_can_be_sent_back(cursor: str) -> None:
    body = json.dumps({"items": [], "cursor": cursor}).encode("utf-8", "surrogatepass")
    try:
        listing = parse_listing(body)
    except SourceError:
        assert "\ud800" in cursor  # not UTF-8 at all: the envelope is broken
        return
    fits = cursor_problem(cursor) is None
    assert (listing.cursor == cursor) if fits else (listing.cursor is None and listing.cursor_refused)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "console.db")
        store.items.apply_changes("hostile", [], [], cursor)
        assert store.items.cursor("hostile") == (cursor if fits else None)
        store.close()


@pytest.fixture(scope="module")
def id_server() -> Any:
    server = HostileServer()
    with running(server):
        yield server


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_ids)
async def test_an_id_is_refused_or_sent_as_exactly_one_path_segment(id_server: HostileServer, item_id: str) -> None:
    items, rejected = validate_items("hostile", [payload(item_id)])
    if id_problem(item_id) is not None:
        assert items == [] and rejected, "an id that breaks R5 is quarantined"
        return
    assert [i.id for i in items] == [item_id]
    config = Config(operator="alice", sources=(SourceConfig(name="hostile", url=id_server.url, timeout=5.0),))
    with tempfile.TemporaryDirectory() as tmp:
        session = Session(config, Path(tmp) / "data", token_for=lambda _n: None)
        decision = Decision(
            id=str(uuid.uuid4()),
            source="hostile",
            item_id=item_id,
            item_digest=items[0].digest,
            verdict=Verdict.approve,
            operator="alice",
            decided_at=now_utc(),
        )
        await session.sources["hostile"].send_decision(decision)
        await session.aclose()
    method, path = id_server.paths[-1]
    prefix, segment, suffix = path.split("/")[1:3], path.split("/")[3], path.split("/")[4:]
    assert (method, prefix, suffix) == ("POST", ["v1", "items"], ["decision"]), path
    assert segment not in (".", "..") and unquote(segment) == item_id


@pytest.fixture(scope="module")
def hostile_target(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = TestServe(tmp_path_factory.mktemp("serve"))
    server.start()
    yield server
    server.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_items(max_depth=200, big=False))
def test_serve_refuses_or_stores_hostile_items_and_lists_only_valid_ones(
    hostile_target: TestServe, raw: dict[str, Any]
) -> None:
    """An agent posting hostile items to `serve` gets 201 or a refusal (400, 422), never a failure; what it stores
    passes the console's own checks (a server never creates an item a client must quarantine), and serve carries on."""
    agent = next(iter(hostile_target._scenarios.agents))
    body = {k: v for k, v in raw.items() if k not in ("id", "digest", "agent")}
    headers = {"Authorization": f"Bearer {fixed_token('agent', agent)}", "Idempotency-Key": str(uuid.uuid4())}
    answer = httpx.post(f"{hostile_target.url}/v1/items", content=json.dumps(body).encode(), headers=headers)
    assert answer.status_code in (201, 400, 422), answer.text[:500]
    if answer.status_code == 201:
        items, rejected = validate_items("serve", [answer.json()])
        assert rejected == [] and len(items) == 1, [r.reason for r in rejected]
    else:
        assert answer.json()["error"] in ("bad_json", "invalid")
    assert httpx.get(f"{hostile_target.url}/v1/info", headers=headers).status_code == 200
