"""Items name the agent's run (PROTOCOL.md "The trace"): the demo fleet fills and checks it, the console keeps a usable
one and drops a bad one without losing the item. The fleet runs for real on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from console.engine.sources.base import validate_items
from console.servers.fleet import Fleet
from storage.records import TRACE_KEYS
from tests import factories
from tests.conftest import started
from tests.test_fleet import listing
from tests.test_widgets import DetailApp, make_item, screen_lines
from widgets.detail import ItemDetail


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    yield from started(Fleet(seed=23, interval=None, initial=8))


def test_the_fleet_announces_and_fills_traces_the_console_keeps(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.url, timeout=10) as http:
        assert "trace" in http.get("/v1/info").json()["additions"]
        raw = listing(http)["items"]
    items, rejected = validate_items("demo", raw)
    assert rejected == [] and len(items) == len(raw) == 8
    for payload, item in zip(raw, items, strict=True):
        assert item.trace is not None and item.trace == payload["trace"] and set(item.trace) <= set(TRACE_KEYS)
        assert item.trace["url"].endswith(item.trace["run_id"]) and item.trace["project"] == f"{item.agent}-prod"
    assert len({item.trace["run_id"] for item in items if item.trace}) == 8, "one run per item"


def test_the_fleet_refuses_an_agent_item_with_a_bad_trace(fleet: Fleet) -> None:
    listed = fleet.pending()[0]
    item = {k: v for k, v in listed.items() if k not in ("id", "digest", "seq", "claimed_by")}
    with httpx.Client(base_url=fleet.url, timeout=10) as http:

        def create(trace: object) -> httpx.Response:
            body = json.dumps({**item, "trace": trace})
            return http.post("/v1/items", content=body, headers={"Idempotency-Key": str(uuid.uuid4())})

        answer = create({"run_id": "r", "url": "ftp://runs.example/r"})
        assert answer.status_code == 422 and answer.json()["errors"][0]["path"] == "/trace", answer.text
        assert create({"run_id": "r-1", "project": "p"}).json()["trace"] == {"run_id": "r-1", "project": "p"}


def test_a_listed_item_with_a_bad_trace_is_kept_without_it() -> None:
    for bad in ({"run_id": ["not", "a", "string"]}, "r-1", {"url": "https://x.example/\x07"}):
        payload = factories.payload("itm_bad_trace", trace=bad)  # digest computed over the bad trace, as sent
        items, rejected = validate_items("demo", [payload])
        assert rejected == [], bad
        assert [(i.id, i.trace) for i in items] == [("itm_bad_trace", None)]


async def test_the_detail_shows_the_trace_as_plain_text() -> None:
    trace = {"run_id": "run-[b]7[/b]", "url": "https://tracing.example/[@click=app.quit]x[/]"}
    app = DetailApp()
    async with app.run_test(size=(120, 120)) as pilot:
        app.query_one(ItemDetail).show(make_item(trace=trace))
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "Trace" in text and "run_id: run-[b]7[/b]" in text, "agent text is never parsed as markup"
        assert "url: https://tracing.example/[@click=app.quit]x[/]" in text
        app.query_one(ItemDetail).show(make_item())
        await pilot.pause()
        assert "run_id:" not in "\n".join(screen_lines(app)), "no trace, no trace section"
