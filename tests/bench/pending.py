"""Figures over the LangGraph source and the label export (the LangGraph one reports "not available yet" without
its server)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import time
import uuid
from functools import partial
from typing import Any

import httpx

from console.engine.config import SourceConfig
from console.tui.app import ApprovalApp
from tests.bench.fixtures import bench_config, open_app
from tests.bench.frames import queue_of
from tests.bench.harness import Bench, Result, Target, figure, measured, unavailable
from tests.servers import FaultyProxy
from tests.servers import running as running_proxy

THREADS = 1_000
FEW_THREADS = 100
# The LangGraph tests' server, reused (not copied): a plain context manager (workdir) -> base URL is needed, since a
# pytest fixture cannot be entered outside pytest.
SERVER_STARTER = "langgraph_server"
FIRST_ITEM = (
    "from opening the session and starting the app with a langgraph source whose server (a real LangGraph API server, "
    "the tests' graphs) holds {n} interrupted threads, to the first frame showing the queue's first row"
)
REQUESTS = (
    "HTTP requests the console sent to the LangGraph server (counted by a forwarding proxy, in a run of its own) "
    "before the first frame showing the queue's first row, {n} interrupted threads"
)


@figure(
    "langgraph",
    (
        "langgraph_100_first",
        "LangGraph: 100 interrupted threads, launch to first item visible",
        "s",
        FIRST_ITEM.format(n=100),
        Target("<=", 1.0),
    ),
    (
        "langgraph_100_requests",
        "LangGraph: 100 interrupted threads, requests before the first item shows",
        "requests",
        REQUESTS.format(n=100),
        Target("<=", 2.0),
    ),
    (
        "langgraph_1000_first",
        "LangGraph: 1,000 interrupted threads, launch to first item visible",
        "s",
        FIRST_ITEM.format(n="1,000"),
        Target("<=", 1.0),
    ),
    (
        "langgraph_1000_requests",
        "LangGraph: 1,000 interrupted threads, requests before the first item shows",
        "requests",
        REQUESTS.format(n="1,000"),
        Target("<=", 2.0),
    ),
    (
        "langgraph_1000_visible",
        "LangGraph: 1,000 interrupted threads to all visible",
        "s",
        "from opening the session and starting the app with a langgraph source whose server (a real LangGraph API "
        "server, the tests' graphs) holds 1,000 interrupted threads, to the first frame whose queue counts all of them",
        Target("<=", 5.0),
    ),
)
async def langgraph(bench: Bench) -> list[Result]:
    if importlib.util.find_spec("console.engine.sources.langgraph") is None:
        return unavailable("langgraph", "the langgraph source (console/engine/sources/langgraph.py) does not exist")
    try:
        tests = importlib.import_module("tests.test_langgraph")
    except ImportError as exc:
        return unavailable("langgraph", f"tests/test_langgraph.py cannot be imported ({exc})")
    starter: Any = getattr(tests, SERVER_STARTER, None)
    if starter is None:
        return unavailable(
            "langgraph",
            f"tests/test_langgraph.py starts its server only inside the pytest fixture `langgraph_url`; the bench "
            f"reuses it once it is a plain context manager `{SERVER_STARTER}(workdir) -> url`",
        )
    threads = bench.items(THREADS, 200)
    few = bench.items(FEW_THREADS, 20)
    case = uuid.uuid4().hex
    results: list[Result] = []
    with starter(bench.workdir / "langgraph") as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as api:
            gate = asyncio.Semaphore(10)

            async def interrupt(n: int) -> None:
                # The first `few` threads also carry a group of their own: the same server lists either queue.
                metadata = {"case": case, **({"group": "few"} if n < few else {})}
                async with gate:
                    created = await api.post("/threads", json={"metadata": metadata})
                    body = {
                        "assistant_id": "echo",
                        "input": {"payload": tests.inbox("step", {"n": n}, **tests.INBOX_ALL)},
                    }
                    run = await api.post(f"/threads/{created.json()['thread_id']}/runs/wait", json=body)
                    if run.status_code != 200:
                        raise RuntimeError(f"the LangGraph server refused a run: {run.status_code}")

            await asyncio.gather(*(interrupt(n) for n in range(threads)))
        for count, name in ((few, "langgraph_100"), (threads, "langgraph_1000")):
            source = tests.lg_config(url, case)
            if count == few:
                source = dataclasses.replace(source, metadata=(("case", case), ("group", "few")))
            first: list[float] = []
            visible: list[float] = []
            for run in range(bench.runs(3, 1)):
                async with open_app(bench.workdir / f"{name}-{run}", bench_config(source)) as running:
                    first.append(running.painted - running.started)
                    listed = running.probe.expect(partial(_counts, running.app, count))
                    visible.append(await asyncio.wait_for(listed, timeout=120) - running.started)
            requests = await _requests_before_first_item(bench, name, source)
            params = {"threads": count}
            results += [
                measured("langgraph", f"{name}_first", first, params=params),
                measured("langgraph", f"{name}_requests", [requests], params=params),
            ]
            if count == threads:
                results.append(measured("langgraph", "langgraph_1000_visible", visible, params=params))
    return results


async def _requests_before_first_item(bench: Bench, name: str, source: SourceConfig) -> float:
    """Requests that reached the server (through a counting proxy) before the frame that showed the first row."""
    arrivals: list[float] = []
    proxy = FaultyProxy(source.url)
    proxy.on_request = lambda _path: arrivals.append(time.perf_counter())
    with running_proxy(proxy):
        proxied = dataclasses.replace(source, url=proxy.url)
        async with open_app(bench.workdir / f"{name}-proxied", bench_config(proxied)) as running:
            return float(sum(1 for arrived in arrivals if arrived < running.painted))


def _counts(app: ApprovalApp, count: int) -> bool:
    queue = queue_of(app)
    return queue is not None and queue.row_count >= count


@figure(
    "export",
    (
        "export_labels_rate",
        "export of 1,000,000 labels: rate",
        "labels/s",
        "labels written per second exporting 1,000,000 labels (1M in under 100 s)",
        Target(">=", 10_000.0),
    ),
    (
        "export_memory_growth",
        "export of 1,000,000 labels: memory growth",
        "MB",
        "largest resident memory during the export minus resident memory before it: constant memory",
        Target("<=", 16.0, "max"),
    ),
)
async def export(bench: Bench) -> list[Result]:
    # The export test's generator and memory sampler, reused: the labels table filled in one transaction.
    from storage.connection import open_readonly
    from storage.export import export_labels
    from tests.test_export import CountingSink, PeakRss, generate, rss_bytes

    count = bench.items(1_000_000, 100_000)
    path = bench.workdir / "labels.db"
    await asyncio.to_thread(generate, path, count)
    rates: list[float] = []
    growths: list[float] = []
    for _ in range(bench.runs(3, 1)):
        conn = open_readonly(path)
        before = rss_bytes()
        started = time.perf_counter()
        with PeakRss() as memory:
            exported = await asyncio.to_thread(export_labels, conn, CountingSink(), "labels")
        seconds = time.perf_counter() - started
        conn.close()
        if exported.labels != count:
            raise RuntimeError(f"exported {exported.labels} of {count} labels")
        rates.append(count / seconds)
        growths.append((memory.peak - before) / 1e6)
    params = {"labels": count, "format": "labels"}
    return [
        measured("export", "export_labels_rate", rates, params=params),
        measured("export", "export_memory_growth", growths, params=params),
    ]
