"""Agent-supplied `args_schema` (PROTOCOL.md R8) through the real check path: the schema check module, its worker
process, and the real app against the demo fleet (whose test hook stores any schema, as a hostile server would send).

A schema the console cannot use refuses the edit with the reason and never crashes or freezes the app; nothing is ever
fetched for a `$ref`; approve stays available.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot
from textual.widgets import Static, TextArea
from textual.widgets.text_area import WrappedDocument

from console.engine import schema_check
from console.engine.schema_check import Outcome, SchemaCheck
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.edit import DiscardEditScreen, EditScreen, check_edit, parse_edit
from tests.conftest import decide_key, eventually
from tests.test_fleet import edit

SIZE = (120, 40)
ARGS = {"customer_id": "cus_9", "amount": 900}
UNUSABLE = "This item's schema cannot check an edit: "
CATASTROPHIC = "^(a+)+$"  # exponential backtracking in Python's re against 'aaaa…!'


class Recorder:
    """A loopback HTTP server that records every request: a `$ref` pointing here must never be fetched."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/schema+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def beacon() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


def hostile_schemas(beacon_url: str) -> dict[str, tuple[dict[str, Any], str]]:
    """Each schema the hostile server sent, with what the refusal must name."""
    return {
        "unknown type": ({"type": "object", "properties": {"amount": {"type": "money"}}}, "not a valid JSON Schema"),
        "remote $ref": ({"properties": {"amount": {"$ref": f"{beacon_url}/beacon/schema.json"}}}, "nothing is fetched"),
        "broken regex": ({"properties": {"customer_id": {"type": "string", "pattern": "(["}}}, "is not a 'regex'"),
        "maximum as a string": ({"properties": {"amount": {"maximum": "1000"}}}, "is not of type 'number'"),
        "self-referential $ref": ({"$ref": "#"}, "refers to itself"),
        "unknown draft": ({"$schema": "https://example.com/my-draft", "type": "object"}, "unknown $schema"),
    }


CASES = sorted(hostile_schemas("http://127.0.0.1:1"))


@pytest.mark.parametrize("case", CASES)
async def test_each_hostile_schema_is_unusable_with_its_reason_in_and_out_of_process(
    case: str, beacon: Recorder
) -> None:
    schema, reason = hostile_schemas(beacon.url)[case]
    value = {"customer_id": "cus_9", "amount": 950}
    here = schema_check.check(value, schema)
    bounded = await schema_check.check_bounded(value, schema)
    assert here == bounded
    assert here.outcome is Outcome.unusable
    assert here.message.startswith(UNUSABLE) and reason in here.message
    assert beacon.paths == []


async def test_the_drafts_named_by_dollar_schema_are_honoured() -> None:
    # draft-07 reads `items` as an array of schemas per position; 2020-12 calls that `prefixItems` and ignores it there.
    positional = {"type": "array", "items": [{"type": "string"}]}
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **positional}
    assert (await schema_check.check_bounded([5], draft7)).outcome is Outcome.invalid
    assert schema_check.check(
        [5], {"$schema": "https://json-schema.org/draft/2020-12/schema", **positional}
    ).outcome is (
        Outcome.unusable  # an array is not a schema for 2020-12's `items`
    )
    assert schema_check.check(["x"], draft7) == schema_check.VALID
    nested = {"$defs": {"n": {"type": "number", "maximum": 10}}, "properties": {"a": {"$ref": "#/$defs/n"}}}
    result = schema_check.check({"a": 11}, nested)
    assert result.outcome is Outcome.invalid and result.message.startswith("Schema violation at /a: 11 is greater")


async def test_a_catastrophic_pattern_is_stopped_at_the_bound_and_the_worker_replaced() -> None:
    schema = {"type": "string", "pattern": CATASTROPHIC}
    stopped = await schema_check.check_bounded("a" * 40 + "!", schema, bound=1.0)
    assert stopped.outcome is Outcome.unusable and "took longer than 1 s" in stopped.message
    # A fresh worker answers the next check.
    assert await schema_check.check_bounded("aaa", schema) == schema_check.VALID
    assert (await schema_check.check_bounded("b", schema)).outcome is Outcome.invalid


def test_the_fleet_refuses_an_edit_its_schema_cannot_check_and_fetches_nothing(fleet: Fleet, beacon: Recorder) -> None:
    remote = fleet.add_item(action=editable_action({"properties": {"amount": {"$ref": f"{beacon.url}/s.json"}}}))
    draft = fleet.add_item(action=editable_action({"$schema": "https://example.com/my-draft"}))
    with httpx.Client(base_url=fleet.url) as client:
        for item in (remote, draft):
            response = edit(client, item, {"customer_id": "cus_9", "amount": 1})
            assert response.status_code == 422 and response.json()["outcome"] == "invalid"
            [error] = response.json()["errors"]
            assert "args_schema cannot" in error["message"]
    assert fleet.applied_decisions() == [] and beacon.paths == []


# ------------------------------------------------------------------------------------------ hypothesis


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text())
_KEYWORDS = ["type", "properties", "items", "pattern", "maximum", "$ref", "$defs", "allOf", "anyOf", "required"]


def _fragments(beacon_url: str) -> st.SearchStrategy[Any]:
    """Pieces of hostile schemas: each kind the hostile server sent, plus junk of schema-like shape."""
    refs = ["#", "#/$defs/a", "#/$defs/missing", "#/properties", f"{beacon_url}/s.json", "other.json#/a", "urn:x:y"]
    patterns = ["([", r"\p{L}+", CATASTROPHIC, "(?<=a)b", "[z-a]", ".*", "^a*$"]
    drafts = [
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
        "http://json-schema.org/draft-04/schema#",
        "https://example.com/draft",
    ]
    junk = st.recursive(
        _SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(_KEYWORDS) | st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=8,
    )
    return st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["string", "number", "object", "money", ""]) | st.text()}),
        st.builds(lambda ref: {"$ref": ref}, st.sampled_from(refs)),
        st.builds(lambda p: {"type": "string", "pattern": p}, st.sampled_from(patterns) | st.text(max_size=6)),
        st.builds(lambda m: {"maximum": m}, _SCALARS | st.just("5000")),
        st.builds(lambda d: {"$schema": d}, st.sampled_from(drafts) | _SCALARS),
        st.booleans(),
        junk,
    )


def _schemas(beacon_url: str) -> st.SearchStrategy[Any]:
    return st.recursive(
        _fragments(beacon_url),
        lambda inner: st.one_of(
            st.builds(lambda s: {"type": "object", "properties": {"x": s, "y": s}}, inner),
            st.builds(lambda s: {"$defs": {"a": s}, "$ref": "#/$defs/a"}, inner),
            st.builds(lambda a, b: {"allOf": [a, b]}, inner, inner),
            st.builds(lambda s: {"items": s}, inner),
            st.builds(lambda s, d: {**s, "$schema": d} if isinstance(s, dict) else s, inner, st.text(max_size=3)),
        ),
        max_leaves=6,
    )


_VALUES = st.recursive(
    _SCALARS | st.integers(18, 26).map(lambda n: "a" * n + "!"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_schemas_through_the_real_check_path_never_raise_hang_or_fetch(
    data: st.DataObject, beacon: Recorder
) -> None:
    schema, value = data.draw(_schemas(beacon.url), "schema"), data.draw(_VALUES, "value")
    result = asyncio.run(schema_check.check_bounded(value, schema, bound=1.0))
    assert isinstance(result, SchemaCheck) and result.outcome in Outcome
    if result.outcome is Outcome.unusable:
        assert result.message.startswith(UNUSABLE) and len(result.detail) <= schema_check.MAX_DETAIL
    elif result.outcome is Outcome.invalid:
        assert result.message.startswith("Schema violation at /")
    assert beacon.paths == []


# ------------------------------------------------------------------------------------------ the app


def editable_action(schema: Any, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "issue_refund", "args": args or ARGS, "args_schema": schema}


def add_editable(fleet: Fleet, schema: Any, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """A critical item (so it is on top and selected) that allows edits."""
    return fleet.add_item(
        risk="critical",
        kind="approval",
        allowed_decisions=["approve", "reject", "edit"],
        action=editable_action(schema, args),
    )


def edit_message(app: ApprovalApp) -> str:
    return str(app.screen.query_one("#edit-error", Static).content)


async def open_editor(app: ApprovalApp, pilot: Any, item_id: str) -> TextArea:
    await eventually(lambda: app.main.shown is not None and app.main.shown.id == item_id, what="the item on top")
    await pilot.press("e")
    await eventually(lambda: isinstance(app.screen, EditScreen) and app.screen.query_one(TextArea).text != "")
    return app.screen.query_one(TextArea)


async def set_text(pilot: Any, editor: TextArea, value: Any) -> None:
    editor.text = value if isinstance(value, str) else json.dumps(value, indent=2)
    await pilot.pause()


def applied(fleet: Fleet, item_id: str) -> list[dict[str, Any]]:
    return [d for d in fleet.applied_decisions() if d["item_id"] == item_id]


@pytest.mark.parametrize("case", CASES)
async def test_an_unusable_schema_refuses_the_edit_in_the_app_and_approve_stays(
    case: str, fleet: Fleet, make_session: Callable[..., Session], beacon: Recorder
) -> None:
    schema, reason = hostile_schemas(beacon.url)[case]
    async with editing(fleet, make_session, schema) as (app, pilot, editor, item):
        await set_text(pilot, editor, {"customer_id": "cus_9", "amount": 950})
        await pilot.press("ctrl+s")
        await eventually(lambda: UNUSABLE in edit_message(app), what="the refusal")
        assert reason in edit_message(app)
        assert isinstance(app.screen, EditScreen) and not app.screen.reviewing
        assert fleet.decision_requests() == 0 and beacon.paths == []
        # Leaving the refused edit asks first (it changed); the item can still be approved.
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, DiscardEditScreen))
        await pilot.press("y")
        await eventually(lambda: app.screen is app.main)
        await decide_key(pilot, "a")
        await eventually(lambda: len(applied(fleet, item["id"])) == 1, what="the approval")
        assert applied(fleet, item["id"])[0]["verdict"] == "approve"
    assert beacon.paths == []


@asynccontextmanager
async def editing(
    fleet: Fleet, make_session: Callable[..., Session], schema: Any
) -> AsyncIterator[tuple[ApprovalApp, Pilot[Any], TextArea, dict[str, Any]]]:
    """The app with the editor open on a new editable item checked against `schema`."""
    item = add_editable(fleet, schema)
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        yield app, pilot, await open_editor(app, pilot, item["id"]), item


@asynccontextmanager
async def slow_check(
    fleet: Fleet, make_session: Callable[..., Session]
) -> AsyncIterator[tuple[ApprovalApp, Pilot[Any], TextArea, dict[str, Any]]]:
    """The editor on an item whose schema backtracks catastrophically, holding a value that makes it do so."""
    schema = {"type": "object", "properties": {"customer_id": {"type": "string", "pattern": CATASTROPHIC}}}
    async with editing(fleet, make_session, schema) as (app, pilot, editor, item):
        await set_text(pilot, editor, {"customer_id": "a" * 60 + "!", "amount": 900})
        yield app, pilot, editor, item


async def test_a_catastrophic_pattern_does_not_freeze_the_app(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with slow_check(fleet, make_session) as (app, pilot, editor, _):
        editor.move_cursor((0, 0))
        await pilot.press("ctrl+s")
        assert edit_message(app) == EditScreen.CHECKING
        await pilot.press("down", "down")  # keys during the check are handled at once ...
        await pilot.pause()
        assert editor.cursor_location == (2, 0)
        assert edit_message(app) == EditScreen.CHECKING  # ... while the check still runs
        await eventually(lambda: "took longer than" in edit_message(app), timeout=60, what="the time bound")
        assert edit_message(app).startswith(UNUSABLE)
        assert fleet.decision_requests() == 0
        # The next check gets a fresh worker: a matching value passes to the review.
        await set_text(pilot, editor, {"customer_id": "aaaa", "amount": 900})
        await pilot.press("ctrl+s")
        await eventually(lambda: isinstance(app.screen, EditScreen) and app.screen.reviewing, what="the diff")


async def test_the_editor_refuses_numbers_a_decision_cannot_carry(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with editing(fleet, make_session, None) as (app, pilot, editor, item):
        for text, says in [
            ('{"customer_id": "cus_9", "amount": 1e400}', "too large for a JSON number"),
            ('{"customer_id": "cus_9", "amount": 12345678901234567890}', "beyond ±(2^53−1)"),
            ('{"customer_id": "cus_9", "amount": NaN}', "NaN is not a JSON number"),
        ]:
            await set_text(pilot, editor, text)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert says in edit_message(app)
            assert isinstance(app.screen, EditScreen) and not app.screen.reviewing
        # The decision is not lost: a carried value goes through, and nothing crashed on the way.
        await set_text(pilot, editor, {"customer_id": "cus_9", "amount": 9007199254740991})
        await pilot.press("ctrl+s")
        await eventually(lambda: isinstance(app.screen, EditScreen) and app.screen.reviewing, what="the diff")
        await decide_key(pilot, "enter")
        await eventually(lambda: len(applied(fleet, item["id"])) == 1, what="the edit")
        assert applied(fleet, item["id"])[0]["edited"] == {"customer_id": "cus_9", "amount": 9007199254740991}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"a": 9007199254740992}', "beyond ±(2^53−1)"),
        ('{"a": -9007199254740992}', "beyond ±(2^53−1)"),
        ('{"a": ' + "9" * 5000 + "}", "beyond ±(2^53−1)"),  # int() itself refuses past 4,300 digits
        ('{"a": -1e400}', "too large"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ('{"a": 1, "a": 2}', "Duplicate member name 'a'"),
        ('{"a": "\\ud800"}', "cannot be sent"),
    ],
)
def test_parse_edit_refuses_what_the_digest_cannot_take(text: str, says: str) -> None:
    value, error = parse_edit(text)
    assert value is EditScreen.CANCELLED and error is not None and says in error


def test_parse_edit_keeps_exact_numbers() -> None:
    assert parse_edit('{"a": 9007199254740991, "b": -1.5e300, "c": 1e-400}') == (
        {"a": 9007199254740991, "b": -1.5e300, "c": 0.0},
        None,
    )
    assert check_edit('{"a": 5}', {"properties": {"a": {"maximum": 4}}})[1] == (
        "Schema violation at /a: 5 is greater than the maximum of 4"
    )


async def test_esc_with_unsaved_changes_asks_before_discarding(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    item = add_editable(fleet, None)
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(app, pilot, item["id"])
        await pilot.press("escape")  # nothing changed: closes at once
        await eventually(lambda: app.screen is app.main)
        editor = await open_editor(app, pilot, item["id"])
        await set_text(pilot, editor, {"customer_id": "cus_9", "amount": 1})
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, DiscardEditScreen))
        await pilot.press("n")  # keep editing: the change is still there
        await eventually(lambda: isinstance(app.screen, EditScreen))
        assert json.loads(app.screen.query_one(TextArea).text) == {"customer_id": "cus_9", "amount": 1}
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, DiscardEditScreen))
        await pilot.press("escape")  # esc in the question keeps editing too
        await eventually(lambda: isinstance(app.screen, EditScreen))
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, DiscardEditScreen))
        await pilot.press("y")
        await eventually(lambda: app.screen is app.main)
        assert fleet.decision_requests() == 0
        assert session.store.queue.index_of("fleet", item["id"]) is not None


async def test_a_large_item_opens_with_one_full_wrap_at_its_width(
    fleet: Fleet, make_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The editor took 4.6 s to open on a 688 KB item: the whole text was wrapped seven times while the screen opened
    (at width 0 twice per document, then once per layout change). Now: once when the document is made, once at its
    width."""
    rows = [{"id": f"row_{i:05d}", "note": "lorem ipsum dolor sit amet " * 2, "amount": i} for i in range(6500)]
    item = add_editable(fleet, None, {"rows": rows})
    assert len(json.dumps(item["action"]["args"])) > 600_000
    wraps: list[int] = []
    original = WrappedDocument.wrap

    def counted(self: WrappedDocument, width: int, tab_width: int | None = None) -> None:
        if self.document.line_count > 1000:
            wraps.append(width)
        original(self, width, tab_width)

    monkeypatch.setattr(WrappedDocument, "wrap", counted)
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_editor(app, pilot, item["id"])
        await pilot.pause()
        assert editor.document.line_count > 20_000
        assert len(wraps) <= 2 and wraps[-1] == editor.wrap_width > 0
        await pilot.press("end", "x")  # an edit re-wraps only the lines it touched
        await pilot.pause()
        assert len(wraps) <= 2


async def test_leaving_the_editor_during_a_slow_check_is_safe_and_approve_works(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    async with slow_check(fleet, make_session) as (app, pilot, _, item):
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, EditScreen) and app.screen.checking
        await pilot.press("escape")
        await eventually(lambda: isinstance(app.screen, DiscardEditScreen))
        await pilot.press("y")
        await eventually(lambda: app.screen is app.main)
        await decide_key(pilot, "a")  # while the abandoned check still runs in the worker
        await eventually(lambda: len(applied(fleet, item["id"])) == 1, what="the approval")
        assert app.is_running and applied(fleet, item["id"])[0]["verdict"] == "approve"


async def test_langgraph_translation_under_a_catastrophic_response_schema_ends_at_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The adapter's checks go through the checker process too: its translation runs in a thread that waits on a pipe,
    so the event loop keeps running, and the check ends at the time bound (in-process it would never end)."""
    from console.engine.sources.langgraph_payloads import translate_state

    monkeypatch.setattr(schema_check, "TIME_BOUND", 1.0)
    edit_branch = {
        "properties": {
            "type": {"const": "edit"},
            "edited_action": {"properties": {"args": {"properties": {"to": {"pattern": CATASTROPHIC}}}}},
        }
    }
    schema = {"oneOf": [{"properties": {"type": {"const": "approve"}}}, edit_branch]}
    value = {"type": "tool_approval", "name": "send_email", "args": {"to": "a" * 60 + "!"}}
    state = {"interrupts": [{"id": "int_1", "value": value, "response_schema": schema}]}
    row = {"thread_id": "thr_1", "created_at": "2026-11-21T23:00:00Z", "updated_at": "2026-11-21T23:00:00Z"}
    translation = asyncio.ensure_future(asyncio.to_thread(translate_state, "graphs", row, state))
    ticks = 0
    while not translation.done():
        await asyncio.sleep(0.01)
        ticks += 1
    [interrupt] = translation.result()
    assert ticks > 0  # the loop ran while the translation waited for the checker
    [request] = interrupt.requests
    assert "approve" in request.payload["allowed_decisions"]
    edit_schema = request.payload["action"].get("args_schema")
    if edit_schema is not None:  # offered for editing: the editor's own check refuses it
        stopped = await schema_check.check_bounded({"to": "a" * 60 + "!"}, edit_schema, bound=1.0)
        assert stopped.outcome is Outcome.unusable
