"""The LangGraph listing page by page, against the real LangGraph API server tests/test_langgraph.py starts: each
search page is stored and shown before the next is asked for (a counting proxy from tests/servers.py sees the order),
interrupts come from the search answer, thread states are read afterwards, and an item decided before its state was
read still applies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from console.engine.poller import Poller
from console.engine.sources.langgraph import LangGraphSource
from storage.db import Store
from storage.records import SyncState, Verdict
from tests import factories
from tests.servers import FaultyProxy, running
from tests.test_langgraph import (  # noqa: F401  (fixtures: one real server for this module)
    INBOX_ALL,
    SOURCE,
    api,
    case,
    inbox,
    interrupted_thread,
    langgraph_url,
    lg_config,
    settled,
)

THREADS = 10
PAGE = 4


async def _threads(api: httpx.AsyncClient, case: str, count: int) -> list[str]:  # noqa: F811
    gate = asyncio.Semaphore(10)

    async def one(n: int) -> str:
        async with gate:
            return await interrupted_thread(api, case, "echo", {"payload": inbox("step", {"n": n}, **INBOX_ALL)})

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def test_each_search_page_is_stored_before_the_next_is_asked_for(
    api: httpx.AsyncClient,  # noqa: F811
    langgraph_url: str,  # noqa: F811
    case: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("console.engine.sources.langgraph.PAGE_SIZE", PAGE)
    monkeypatch.setattr("console.engine.sources.langgraph.READ_FIRST", 0)  # a burst: every page handed out provisional
    await _threads(api, case, THREADS)
    store = Store(tmp_path / "console.db")
    stored_when_asked: list[int] = []
    told: list[str] = []  # the poller's change notices: the app refreshes the queue on each
    told_when_asked: list[int] = []

    def note(path: str) -> None:  # in the proxy's thread, before the request goes on: what the database holds now
        if path.startswith("/threads/search"):
            reader = Store(store.path, readonly=True)
            stored_when_asked.append(reader.queue.count())
            told_when_asked.append(len(told))
            reader.close()

    proxy = FaultyProxy(langgraph_url)
    proxy.on_request = note
    with running(proxy):
        source = LangGraphSource(lg_config(proxy.url, case), None)
        poller = Poller(store, [source], told.append)
        assert await poller.poll_once(source)
        await source.aclose()
    assert stored_when_asked == [0, PAGE, 2 * PAGE], "each page stored before the next search"
    assert told_when_asked == [0, 1, 2], "and the queue told of it, so it shows before the listing ends"
    states = [i for i, path in enumerate(proxy.requests) if path.endswith("/state")]
    assert len(states) == THREADS and min(states) == len(stored_when_asked), "states read after the whole listing"
    rows = store.queue.rows(0, THREADS + 1)
    assert len(rows) == THREADS
    for row in rows:
        found = store.items.get(SOURCE, row.id)
        assert found is not None
        item = found[0]
        assert item.trace is not None and item.workflow == "review", "the state's run and node, once read"
    store.close()


async def test_a_decision_on_an_item_shown_before_its_state_was_read_applies(
    api: httpx.AsyncClient,  # noqa: F811
    langgraph_url: str,  # noqa: F811
    case: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("console.engine.sources.langgraph.READ_FIRST", 0)
    [thread_id] = await _threads(api, case, 1)
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    pages = source.pages(None)
    first = await anext(pages)
    await pages.aclose()
    [shown] = first.items
    assert first.has_more and shown.trace is None and shown.workflow == "", "provisional: from the search answer"
    read = await source.fetch(None)
    [complete] = read.items
    assert complete.id == shown.id and complete.trace is not None and complete.digest != shown.digest
    answer = await source.send_decision(factories.decision(shown, Verdict.approve))
    assert answer.state is SyncState.applied, answer
    thread = await settled(api, thread_id)
    assert thread["values"]["outcome"] == [{"type": "accept", "args": None}]
    await source.aclose()


async def test_a_few_new_threads_are_handed_out_complete(
    api: httpx.AsyncClient,  # noqa: F811
    langgraph_url: str,  # noqa: F811
    case: str,  # noqa: F811
) -> None:
    """A page with only a few unread threads is read through first: its items never change version right after."""
    await _threads(api, case, 2)
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    pages = source.pages(None)
    first = await anext(pages)
    await pages.aclose()
    assert len(first.items) == 2 and first.has_more
    assert all(item.trace is not None and item.workflow == "review" for item in first.items)
    await source.aclose()
