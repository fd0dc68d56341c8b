"""What the figures run on: generated queues in SQLite, the demo fleet in a child process, the app under Pilot.

Everything goes through the app's own classes (Store, Session, ApprovalApp, Fleet); only the data is generated here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from textual.pilot import Pilot

from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import DB_NAME, Session
from console.tui.app import ApprovalApp
from storage.db import Store
from storage.records import Item
from tests.bench.frames import SIZE, FrameProbe, rows_painted
from tests.bench.harness import Bench
from tests.bench.proc import rss_kb
from tests.factories import item

ROOT = Path(__file__).resolve().parents[2]
CACHED_SOURCE = "cache"  # the source name of generated queues (no such source is configured: nothing polls them)
FLEET_SOURCE = "fleet"
OPERATOR = "alice"
CHUNK = 5_000  # items per transaction when filling a queue

_AGENTS = ("billing-agent", "crm-agent", "support-agent", "infra-agent", "outreach-agent")
_ACTIONS = ("issue_refund", "update_contact", "send_reply", "scale_service", "send_campaign")
_RISKS = ("low", "medium", "high", "critical")


def no_token(_name: str) -> Token | None:
    """The bench never reads the machine's keyring."""
    return None


def bench_config(*sources: SourceConfig) -> Config:
    """The operator's config for a figure; the undo window is off where the app has one (decisions go at once)."""
    options: dict[str, Any] = {"operator": OPERATOR, "sources": sources}
    if "undo_seconds" in {f.name for f in dataclasses.fields(Config)}:
        options["undo_seconds"] = 0
    return Config(**options)


def fleet_source(url: str, **options: Any) -> SourceConfig:
    return SourceConfig(name=FLEET_SOURCE, url=url, **options)


def generated_items(count: int, seed: int = 7) -> Iterator[list[Item]]:
    """`count` valid items (real digests) with a realistic mix of agents, risks, ages and deadlines, in chunks."""
    rng = random.Random(seed)  # reproducible bench data
    now = time.time()
    chunk: list[Item] = []
    for index in range(count):
        pick = rng.randrange(len(_AGENTS))
        expires = None if rng.random() < 0.2 else now + rng.uniform(60, 8 * 3600)
        chunk.append(
            item(
                f"item-{index:07d}",
                source=CACHED_SOURCE,
                kind="escalation" if rng.random() < 0.2 else "approval",
                agent=_AGENTS[pick],
                action={"name": _ACTIONS[pick], "args": {"n": index}, "args_schema": None},
                risk=rng.choices(_RISKS, weights=(5, 3, 2, 1))[0],
                confidence=round(rng.random(), 2),
                created_at=_iso(now - rng.uniform(0, 6 * 3600)),
                expires_at=None if expires is None else _iso(expires),
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def fill_queue(data_dir: Path, count: int) -> None:
    """A data dir whose database holds `count` pending items, stored through Store.items.apply_changes."""
    store = Store(data_dir / DB_NAME)
    try:
        for chunk in generated_items(count):
            store.items.apply_changes(CACHED_SOURCE, chunk, [], None)
        if store.queue.count() != count:
            raise RuntimeError(f"filled {store.queue.count()} items, wanted {count}")
    finally:
        store.close()


def queue_dir(bench: Bench, count: int) -> Path:
    """A data dir with `count` cached items, built once per bench run (figures that decide take a copy)."""
    key = f"queue-{count}"
    path: Path | None = bench.cache.get(key)
    if path is None:
        path = bench.workdir / key
        fill_queue(path, count)
        bench.cache[key] = path
    return path


def copy_of(source: Path, name: str) -> Path:
    target = source.parent / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


@dataclass(frozen=True)
class Running:
    app: ApprovalApp
    pilot: Pilot[None]
    probe: FrameProbe
    started: float  # perf_counter before the session opened the database
    painted: float  # perf_counter of the first frame showing the queue's first row


@asynccontextmanager
async def open_app(data_dir: Path, config: Config, *, now: Callable[[], float] = time.time) -> AsyncIterator[Running]:
    """The real app over a real session, headless, with a frame probe; entered once rows are painted."""
    started = time.perf_counter()
    session = Session(config, data_dir, token_for=no_token, check_later=True)  # as the command line opens it
    app = ApprovalApp(session, now=now)
    probe = FrameProbe(app)
    painted = probe.expect(lambda: rows_painted(app))
    async with app.run_test(size=SIZE) as pilot:
        yield Running(app, pilot, probe, started, await asyncio.wait_for(painted, timeout=60))


@dataclass
class RssSampler:
    """Samples this process's resident memory while a measurement runs."""

    interval: float = 0.05
    samples: list[int] = dataclasses.field(default_factory=list)

    async def run(self) -> None:
        while True:
            self.samples.append(rss_kb())
            await asyncio.sleep(self.interval)


class ChildFleet:
    """The demo fleet in its own process (its own interpreter and GIL, as a real agent service would be).

    It also serves a byte-counting TCP relay in front of the fleet, so the console's traffic can be counted on the
    wire without touching the console's code. Drive it with the fleet's own test hooks over HTTP.
    """

    def __init__(self, initial: int, *, seed: int = 7) -> None:
        self.initial = initial
        self.seed = seed
        self.url = ""
        self.relay_url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ChildFleet:
        command = [sys.executable, "-m", "tests.bench.child", "fleet", str(self.initial), str(self.seed)]
        process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("the fleet child process exited before serving")
        started = json.loads(line)
        self.url, self.relay_url = started["url"], started["relay"]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()  # the child stops its fleet and exits on end of input
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def wire_bytes(self) -> int:
        """Bytes through the relay so far, both directions (HTTP requests and answers, headers included)."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write("bytes\n")
        process.stdin.flush()
        return int(process.stdout.readline())

    def hooks(self) -> httpx.AsyncClient:
        """A client for the fleet's test hooks (open it before timing: creating a client is not the fleet's cost)."""
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    @staticmethod
    async def add_item(hooks: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
        response = await hooks.post("/_fleet/items", json=fields)
        response.raise_for_status()
        added: dict[str, Any] = response.json()
        return added

    def applied(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_fleet/decisions", timeout=60)
        response.raise_for_status()
        applied: list[dict[str, Any]] = response.json()["applied"]
        return applied


class WireBytes:
    """Bytes a source's httpx client sends and receives, counted by its event hooks."""

    def __init__(self) -> None:
        self.bytes = 0

    def attach(self, source: Any) -> None:
        client: httpx.AsyncClient = source._client  # the adapter's own client: what it sends is what is counted
        client.event_hooks["response"].append(self._count)

    async def _count(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        self.bytes += len(f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n")
        self.bytes += sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + 2 + len(request.content)
        self.bytes += len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n")
        self.bytes += sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2 + len(response.content)
