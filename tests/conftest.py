"""Shared fixtures: a real demo fleet on a free loopback port, a console session over a temp data dir."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from textual.pilot import Pilot
from textual.strip import Strip

from console.bridges.queue_client import QueueClient
from console.engine.config import Config, SourceConfig
from console.engine.session import LOG_NAME, Session
from console.servers.fleet import Fleet
from storage.db import Store
from tests import kinds
from tests.bridge_operator import Operator
from tests.queue_servers import TestServe, fixed_token

if TYPE_CHECKING:
    from console.tui.app import ApprovalApp
    from storage.records import Item

SOURCE = "fleet"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test unit, functional or snapshot (tests/kinds.py): `make unit` runs `-m unit`."""
    kinds.mark_kinds(items)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_servers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit"):
        kinds.guard_unit(monkeypatch, request.node.nodeid)


@pytest.fixture(autouse=True)
def _utc_on_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Screens draw times in the local zone (TZ): pinned, so snapshots do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")


def started(fleet: Fleet) -> Iterator[Fleet]:
    """A fixture's demo fleet: serving on a free loopback port during the test, stopped after it."""
    fleet.start()
    yield fleet
    fleet.stop()


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    yield from started(Fleet(seed=11, interval=None, initial=6))


@pytest.fixture
def isolated_log() -> Iterator[None]:
    """setup_logging adds a handler to the root logger; take it off again so other tests do not write to it."""
    before = list(logging.getLogger().handlers)
    yield None
    for handler in logging.getLogger().handlers:
        if handler not in before:
            logging.getLogger().removeHandler(handler)
            handler.close()


def read_log(data_dir: Path) -> str:
    """The console's log file as written so far (its handlers flushed first)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    return (data_dir / LOG_NAME).read_text(encoding="utf-8")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real Store on a SQLite file in a temp dir."""
    opened = Store(tmp_path / "console.db")
    yield opened
    opened.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_config(fleet: Fleet | str, *, operator: str = "alice", undo_seconds: float = 0.0, **source: object) -> Config:
    """One source on `fleet` (or on a URL: a proxy in front of one). Decisions are sent at once (no undo window)
    unless a test asks for one."""
    options: dict[str, object] = {"poll_interval": 0.2, "long_poll": 2.0, **source}
    url = fleet if isinstance(fleet, str) else fleet.url
    return Config(
        operator=operator,
        sources=(SourceConfig(name=SOURCE, url=url, **options),),  # type: ignore[arg-type]
        undo_seconds=undo_seconds,
    )


@pytest.fixture
def make_session(fleet: Fleet, data_dir: Path) -> Callable[..., Session]:
    """Sessions never touch the machine's keyring in tests: the token lookup is given explicitly."""

    def build(*, undo_seconds: float = 0.0, **source: Any) -> Session:
        return Session(make_config(fleet, undo_seconds=undo_seconds, **source), data_dir, token_for=lambda _name: None)

    return build


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for real asynchronous work (polls, syncs) to make `predicate` true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def decide_key(pilot: Pilot[Any], key: str = "a") -> int:
    """Press a decision key; when it asks for the typed confirmation (a critical item), type it and press enter.

    Returns the number of key presses it took.
    """
    from console.tui.screens.confirm import ConfirmCriticalScreen

    await pilot.press(key)
    await pilot.pause()
    screen = pilot.app.screen
    if not isinstance(screen, ConfirmCriticalScreen):
        return 1
    await pilot.press(*screen.word, "enter")
    await pilot.pause()
    return 2 + len(screen.word)


async def first_shown(app: ApprovalApp, pilot: Pilot[Any], count: int = 6) -> Item:
    """The item the main screen shows once the first listing (`count` items) is in: where most app tests start."""
    await eventually(lambda: app.session.store.queue.count() == count, what="the first listing")
    await pilot.pause(0.1)
    top = app.main.shown
    assert top is not None
    return top


@asynccontextmanager
async def running_app(
    session: Session,
    size: tuple[int, int] = (120, 40),
    *,
    notifications: bool = False,
    what: str = "the top item shown",
) -> AsyncIterator[tuple[ApprovalApp, Pilot[None]]]:
    """The app over one poll, once it shows an item (no background work: the test polls and syncs when it wants to)."""
    from console.tui.app import ApprovalApp

    app = ApprovalApp(session, background=False)
    async with app.run_test(size=size, notifications=notifications) as pilot:
        await session.poll_once()
        await eventually(lambda: app.main.shown is not None, what=what)
        yield app, pilot


async def approve_what_bob_rejects(app: ApprovalApp, pilot: Pilot[Any], fleet: Fleet, times: int = 2) -> None:
    """Approve the shown item `times` times, bob rejecting each at the source first: as many conflicts at the next
    sync."""
    for _ in range(times):
        top = app.main.shown
        assert top is not None
        await decide_key(pilot, "a")
        fleet.decide_elsewhere(top.id, by="bob", verdict="reject")
        await pilot.pause(0.5)  # past the double-tap guard


def composed_strips(app: object) -> list[Strip]:
    """The app's top screen as the terminal would get it: one Strip (text and style of each segment) per line.

    Textual 8.2.8 has no public API for this: `App.export_screenshot()` gives the same picture only as SVG (and reads
    the screen's compositor itself to make it), while the tests need each line's text and each segment's style. So
    this one helper reads the private `Screen._compositor`; every test goes through it, so a Textual upgrade that
    renames it, or adds a public way, changes one line.
    """
    from textual.app import App

    assert isinstance(app, App)
    return app.screen._compositor.render_strips()


def screen_text(app: object) -> str:
    """The plain text of what the app's top screen shows now, line by line, as the terminal would get it."""
    return "\n".join(strip.text for strip in composed_strips(app))


# ------------------------------------------------------------- serve, an operator, an agent's queue client
# For the tests of `serve` and of the bridges: a real `serve` (tests/queue_servers.py), a real console session deciding
# as its operator (tests/bridge_operator.py), and the queue client a bridge asks through, as the agent below.
BRIDGE_AGENT = "billing-agent"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[TestServe]:
    server = TestServe(tmp_path / "serve", seed=5)
    server.start()
    yield server
    server.close()


@pytest.fixture
async def operator(serve: TestServe, tmp_path: Path) -> AsyncIterator[Operator]:
    console = Operator(serve.url, tmp_path / "console")
    yield console
    await console.aclose()


@pytest.fixture
async def queue(serve: TestServe) -> AsyncIterator[QueueClient]:
    async with QueueClient(serve.url, fixed_token("agent", BRIDGE_AGENT)) as client:
        yield client
