"""Paging on real parts: the demo fleet on loopback, a session over SQLite in a temp dir, and a real HTTP server on
loopback (tests/webhook_server.py) that records every request a pager sends, for both kinds (JSON webhook, ntfy)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.engine.backoff import Backoff
from console.engine.config import Config, PagerConfig
from console.engine.pager.channel import WINDOW_SECONDS, PagerChannel
from console.engine.pager.pages import item_page, ntfy_request, webhook_request
from console.engine.secrets import Token
from console.engine.session import Session, setup_logging
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.records import QueueRow, Risk
from tests.conftest import SOURCE, eventually, first_shown, make_config, read_log, screen_text
from tests.servers import closed_port_url
from tests.webhook_server import Recorded, WebhookRecorder, recording

PAGER = "phone"
SECRET = "canary-pager-secret-7f3e-do-not-leak"
ARG_CANARY = "canary-arg-91c2-do-not-page"
KINDS = ("webhook", "ntfy")
FAST_RETRY = Backoff(0.05, 0.2)


@pytest.fixture
def hook() -> Iterator[WebhookRecorder]:
    with recording() as server:
        yield server


def paging_session(fleet: Fleet, data_dir: Path, url: str, **pager: object) -> Session:
    base = make_config(fleet)
    options: dict[str, object] = {"name": PAGER, "url": url, "per_minute": 100, **pager}
    config = Config(
        operator=base.operator,
        sources=base.sources,
        undo_seconds=0,
        pager=(PagerConfig(**options),),  # type: ignore[arg-type]
    )
    return Session(config, data_dir, token_for=lambda name: Token(SECRET, "environment") if name == PAGER else None)


def channel(session: Session) -> PagerChannel:
    assert session.pager is not None
    [only] = session.pager.channels
    return only


async def settled(session: Session, hook: WebhookRecorder) -> int:
    """Poll, look, and wait until every page lined up has reached the server; the number of requests so far."""
    assert session.pager is not None
    await session.poll_once()
    lined_up = await session.pager.look()
    before = len(hook.received())
    await eventually(lambda: len(hook.received()) >= before + len(lined_up), what="the pages posted")
    return len(hook.received())


def page_of(request: Recorded, kind: str) -> str:
    """What the page says, whatever its kind: the JSON object's text, or ntfy's body."""
    return str(request.json()["text"]) if kind == "webhook" else request.text()


async def run_channels(session: Session) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(c.run()) for c in (session.pager.channels if session.pager else [])]


async def stop(tasks: list[asyncio.Task[None]], session: Session) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_critical_item_is_paged_once_with_its_link(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder, kind: str
) -> None:
    session = paging_session(fleet, data_dir, hook.url, kind=kind, deadline_seconds=0)
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)  # the fleet's first items, whatever they are
        added = fleet.add_item(
            risk="critical", kind="approval", expires_in=1800, action={"name": "drop_orders", "args": {}}
        )
        after = await settled(session, hook)
        [request] = hook.received()[before:after]
        link = f"approval-console://open/{SOURCE}/{added['id']}"
        command = f"approval-console open {SOURCE}/{added['id']}"
        assert request.path == "/"
        said = f"drop_orders proposed by {added['agent']} ({SOURCE}), risk critical, 30 min left"
        assert said in page_of(request, kind)
        assert command in page_of(request, kind)
        if kind == "webhook":
            page = request.json()
            assert request.headers["Content-Type"] == "application/json"
            assert (page["event"], page["item_id"], page["risk"]) == ("new_item", added["id"], "critical")
            assert page["link"] == link
            assert (page["command"], page["source"], page["action"]) == (command, SOURCE, "drop_orders")
        else:
            assert request.headers["Click"] == link
            assert (request.headers["Priority"], request.headers["Title"]) == ("5", "New critical item: drop_orders")
            assert "rotating_light" in request.headers["Tags"].split(",")
        assert await settled(session, hook) == after, "the same item is never paged twice"
    finally:
        await stop(tasks, session)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_low_item_is_not_paged_and_a_close_deadline_is_once(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder, kind: str
) -> None:
    # 120 s: the fleet's first items are further from their deadlines than that for the whole test
    session = paging_session(fleet, data_dir, hook.url, kind=kind, deadline_seconds=120)
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)
        fleet.add_item(risk="low", kind="approval", expires_at=None, action={"name": "tidy_logs", "args": {}})
        fleet.add_item(risk="low", kind="approval", expires_in=7200, action={"name": "rotate_keys", "args": {}})
        assert await settled(session, hook) == before, "a low item far from its deadline pages nobody"
        due = fleet.add_item(risk="low", kind="approval", expires_in=90, action={"name": "renew_cert", "args": {}})
        after = await settled(session, hook)
        [request] = hook.received()[before:after]
        assert "renew_cert" in page_of(request, kind) and "min left" in page_of(request, kind)
        if kind == "webhook":
            assert (request.json()["event"], request.json()["item_id"]) == ("deadline", due["id"])
            assert 0 < request.json()["seconds_left"] <= 90
        else:
            assert request.headers["Title"] == "Deadline about to pass: renew_cert"
        assert await settled(session, hook) == after, "a deadline is paged once"
    finally:
        await stop(tasks, session)


async def test_over_the_rate_limit_a_summary_says_how_many_more(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder
) -> None:
    session = paging_session(fleet, data_dir, hook.url, per_minute=3, deadline_seconds=0)
    pager_channel = channel(session)
    minute = [1000.0]
    pager_channel.clock = lambda: minute[0]
    tasks = await run_channels(session)
    try:
        minute[0] += WINDOW_SECONDS  # the fleet's first items fill a window of their own
        before = await settled(session, hook)
        minute[0] += WINDOW_SECONDS
        for n in range(5):
            fleet.add_item(risk="critical", kind="approval", action={"name": f"burst_{n}", "args": {}})
        after = await settled(session, hook)
        pages = [r.json() for r in hook.received()[before:after]]
        assert [p["event"] for p in pages] == ["new_item", "new_item", "summary"]
        assert (pages[2]["title"], pages[2]["count"]) == ("and 3 more", 3)
        fleet.add_item(risk="critical", kind="approval", action={"name": "held_back", "args": {}})
        assert await settled(session, hook) == after, "a full minute sends nothing more"
        minute[0] += WINDOW_SECONDS
        later = await settled(session, hook)
        [summary] = [r.json() for r in hook.received()[after:later]]
        assert (summary["event"], summary["count"]) == ("summary", 1), "the held page is summed up once there is room"
    finally:
        await stop(tasks, session)


async def test_a_failing_webhook_is_retried_with_backoff(fleet: Fleet, data_dir: Path, hook: WebhookRecorder) -> None:
    session = paging_session(fleet, data_dir, hook.url, deadline_seconds=0)
    pager_channel = channel(session)
    pager_channel.backoff = FAST_RETRY
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)
        hook.statuses.extend([503, 503])
        added = fleet.add_item(risk="high", kind="approval", action={"name": "page_me", "args": {}})
        await session.poll_once()
        assert session.pager is not None
        assert len(await session.pager.look()) == 1
        await eventually(lambda: any(p.fields.get("item_id") == added["id"] for p in pager_channel.delivered))
        tries = hook.received()[before:]
        assert len(tries) == 3 and len({t.body for t in tries}) == 1, "the same page, tried again until accepted"
        assert pager_channel.failed == 0
    finally:
        await stop(tasks, session)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("include", [(), ("args",)])
async def test_a_canary_never_leaves_unless_arguments_are_asked_for(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder, kind: str, include: tuple[str, ...]
) -> None:
    session = paging_session(fleet, data_dir, hook.url, kind=kind, include=include, deadline_seconds=120)
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)
        fleet.add_item(
            risk="critical",
            kind="approval",
            expires_in=60,  # paged twice: as new and as due
            action={"name": "send_wire", "args": {"memo": ARG_CANARY, "amount": 10}},
        )
        after = await settled(session, hook)
        requests = hook.received()[before:after]
        assert len(requests) == 2
        for request in hook.received():
            assert request.headers["Authorization"] == f"Bearer {SECRET}", "the secret goes in Authorization"
            rest = request.everything().replace(f"Authorization: Bearer {SECRET}", "")
            assert SECRET not in rest and SECRET not in request.path, "and nowhere else"
            assert (ARG_CANARY in rest) == (bool(include) and request in requests)
        if include and kind == "webhook":
            assert requests[0].json()["args"] == {"memo": ARG_CANARY, "amount": 10}
        if include and kind == "ntfy":
            [args_line] = [line for line in requests[0].text().splitlines() if line.startswith("args: ")]
            assert json.loads(args_line.removeprefix("args: ")) == {"memo": ARG_CANARY, "amount": 10}
    finally:
        await stop(tasks, session)


async def test_a_webhook_that_hangs_never_holds_the_console(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder
) -> None:
    """The whole app, paging as it runs: while the webhook keeps its answer back, the queue and the keys go on."""
    hook.hold = threading.Event()
    session = paging_session(fleet, data_dir, hook.url, deadline_seconds=0)
    pager_channel = channel(session)
    app = ApprovalApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        top = await first_shown(app, pilot)
        added = fleet.add_item(risk="critical", kind="approval", action={"name": "drop_orders", "args": {}})
        await eventually(hook.arrived.is_set, what="a page posted (and held)")
        await eventually(lambda: "drop_orders" in screen_text(app), what="the new item listed meanwhile")
        await pilot.press("end")
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id != top.id, "the keys work while the page waits"
        assert not pager_channel.delivered
        hook.hold.set()
        await eventually(lambda: any(p.fields.get("item_id") == added["id"] for p in pager_channel.delivered))


async def test_a_webhook_that_is_down_is_logged_and_retried(fleet: Fleet, data_dir: Path, isolated_log: None) -> None:
    url = closed_port_url() + "/topic-name"
    session = paging_session(fleet, data_dir, url, kind="ntfy", deadline_seconds=0)
    setup_logging(data_dir)
    channel(session).backoff = FAST_RETRY
    assert session.pager is not None
    paging = asyncio.create_task(session.pager.run())
    try:
        fleet.add_item(risk="critical", kind="approval", action={"name": "nobody_hears", "args": {}})
        await session.poll_once()
        await eventually(lambda: read_log(data_dir).count("trying again") >= 3, what="retries logged")
        assert not paging.done(), "paging goes on"
        log = read_log(data_dir)
        assert "pager phone: ConnectError from 127.0.0.1:" in log
        assert "topic-name" not in log and SECRET not in log, "the log names the host, never the topic or secret"
    finally:
        paging.cancel()
        await asyncio.gather(paging, return_exceptions=True)
        await session.aclose()


def test_agent_text_in_a_page_is_cleaned_and_headers_stay_ascii() -> None:
    hostile = "wipe\x1b]52;c;ZXZpbA==\x07\u202edisk\nnow"
    row = QueueRow(
        source="billing",
        id="itm\x1b[2J;rm -rf",
        kind="approval",
        agent="agént\x9b31m",
        action=hostile,
        risk=Risk.critical,
        confidence=None,
        created_at=0.0,
        expires_at=None,
    )
    page = item_page("new_item", row, now=0.0)
    body, headers = ntfy_request(page)
    json_body, _ = webhook_request(page)
    for text in (body.decode("utf-8"), json.loads(json_body)["text"], json.loads(json_body)["title"]):
        assert not any(ch in text for ch in "\x1b\x07\x9b\u202e\n"), text
        assert "wipe␛]52;c;ZXZpbA==␇⟨U+202E⟩disk⏎now" in text
    assert all(value.isascii() and value.isprintable() for value in headers.values()), headers
    assert headers["Title"].startswith("=?UTF-8?B?"), "non-ASCII text goes as an RFC 2047 word"
    assert headers["Click"] == "approval-console://open/billing/itm%1B%5B2J%3Brm%20-rf"
    assert "approval-console open 'billing/itm␛[2J;rm -rf'" in body.decode("utf-8"), "the command is quoted"


async def test_a_refused_page_is_not_retried_and_the_log_says_how_to_fix_it(
    fleet: Fleet, data_dir: Path, hook: WebhookRecorder, isolated_log: None
) -> None:
    session = paging_session(fleet, data_dir, hook.url, deadline_seconds=0)
    setup_logging(data_dir)
    pager_channel = channel(session)
    pager_channel.backoff = FAST_RETRY
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)
        hook.statuses.append(401)
        fleet.add_item(risk="critical", kind="approval", action={"name": "refused_page", "args": {}})
        await settled(session, hook)
        await eventually(lambda: pager_channel.failed == 1, what="the refusal counted")
        await asyncio.sleep(0.3)  # a retry would come within FAST_RETRY's ceiling
        assert len(hook.received()) == before + 1, "a refusal is final: not sent again"
        assert "refused a page with HTTP 401 (its secret: run 'approval-console sources token phone'" in read_log(
            data_dir
        )
    finally:
        await stop(tasks, session)


async def test_only_the_risks_a_pager_names_are_paged(fleet: Fleet, data_dir: Path, hook: WebhookRecorder) -> None:
    session = paging_session(fleet, data_dir, hook.url, risks=["medium"], deadline_seconds=0)
    tasks = await run_channels(session)
    try:
        before = await settled(session, hook)
        fleet.add_item(risk="critical", kind="approval", action={"name": "not_for_this_pager", "args": {}})
        medium = fleet.add_item(risk="medium", kind="approval", action={"name": "for_this_one", "args": {}})
        after = await settled(session, hook)
        assert [r.json()["item_id"] for r in hook.received()[before:after]] == [medium["id"]]
    finally:
        await stop(tasks, session)
