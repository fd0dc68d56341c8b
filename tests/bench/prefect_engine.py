"""Figures over the Prefect source against a real `prefect server` (from `make engines`)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from console.engine.sources.prefect import EVENT_OVERLAP, PrefectSource
from tests.bench.fixtures import bench_config, open_app
from tests.bench.harness import Bench, Result, Target, figure, measured
from tests.bench.pending import _counts
from tests.engines.prefect_server import prefect_server
from tests.test_prefect import pf_config

PAUSED_RUNS = 500
CONTROL_PROPERTIES: dict[str, Any] = {
    "approved": {"type": "boolean", "title": "Approved", "default": False},
    "decision_id": {"type": "string", "title": "Decision Id", "default": ""},
}
IDLE = (
    "one fetch of a prefect source after its listing of 500 paused flow runs, nothing changed (a flow-run count and "
    "an events query) once the server has been idle for the events' overlap window (15 s)"
)


@figure(
    "prefect",
    (
        "prefect_500_visible",
        "Prefect: 500 paused flow runs to all visible",
        "s",
        "from opening the session and starting the app with a prefect source whose server (a real `prefect server`, "
        "SQLite) holds 500 flow runs paused for input, to the first frame whose queue counts all of them",
        Target("<=", 10.0),
    ),
    (
        "prefect_idle_poll_bytes",
        "Prefect: idle poll of 500 paused runs: bytes",
        "B",
        IDLE + "; HTTP requests and answers counted by the client (request line, headers, bodies)",
        Target("<=", 4096.0),
    ),
    (
        "prefect_idle_poll_cpu",
        "Prefect: idle poll of 500 paused runs: client CPU",
        "ms",
        IDLE + "; time.process_time of the console process around the poll",
        Target("<=", 20.0),
    ),
)
async def prefect(bench: Bench) -> list[Result]:
    count = bench.items(PAUSED_RUNS, 50)
    tag = "bench-" + uuid.uuid4().hex[:8]
    with prefect_server(bench.workdir / "prefect") as url:
        started = time.perf_counter()
        await paused_runs(url, tag, count)
        created_s = time.perf_counter() - started
        visible: list[float] = []
        for run in range(bench.runs(3, 1)):
            config = bench_config(pf_config(url, tag))
            async with open_app(bench.workdir / f"prefect-{run}", config) as running:
                listed = running.probe.expect(partial(_counts, running.app, count))
                visible.append(await asyncio.wait_for(listed, timeout=300) - running.started)
        wire, cpu = await idle_polls(url, tag, count, bench.runs(30, 5))
    params = {"paused_runs": count}
    details = {"created_s": round(created_s, 1)}
    return [
        measured("prefect", "prefect_500_visible", visible, params=params, details=details),
        measured("prefect", "prefect_idle_poll_bytes", wire, params=params),
        measured("prefect", "prefect_idle_poll_cpu", cpu, params=params),
    ]


async def paused_runs(url: str, tag: str, count: int) -> None:
    """`count` real flow runs paused for input, made through the API as a flow's `pause_flow_run` makes them (the
    run input's schema and description, then the PAUSED state with its keyset): starting 500 flow processes is
    what would take the time, not the server."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as api:
        created = await api.post("/flows/", json={"name": "refunds"})
        created.raise_for_status()
        flow = created.json()
        gate = asyncio.Semaphore(4)
        deadline = (datetime.now(UTC) + timedelta(hours=2)).isoformat()

        async def one(n: int) -> None:
            async with gate:
                made = await _post(api, "/flow_runs/", {"flow_id": flow["id"], "tags": [tag, "risk:high"]})
                run_id = made["id"]
                amount = {"type": "number", "title": "Amount", "default": n}
                properties = {"amount": amount, **CONTROL_PROPERTIES}
                schema = {"type": "object", "title": "Refund", "additionalProperties": False, "properties": properties}
                for key, value in (("paused-1-schema", schema), ("paused-1-description", f"Refund #{n}?")):
                    body = {"key": key, "value": json.dumps(value)}
                    await _post(api, f"/flow_runs/{run_id}/input", body)
                await _set_state(api, run_id, {"type": "RUNNING", "name": "Running"})
                keyset = {k: f"paused-1-{k}" for k in ("schema", "description", "response")}
                details = {"pause_timeout": deadline, "pause_key": "1", "run_input_keyset": keyset}
                await _set_state(api, run_id, {"type": "PAUSED", "name": "Paused", "state_details": details})

        await asyncio.gather(*(one(n) for n in range(count)))
        total = (await api.post("/flow_runs/count", json=pf_filter(tag))).json()
        if total != count:
            raise RuntimeError(f"{total} of {count} flow runs are paused")


def pf_filter(tag: str) -> dict[str, Any]:
    return {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}, "tags": {"all_": [tag]}}}


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    """POST, again while SQLite is busy (Prefect answers 503 when its database is locked)."""
    for _ in range(20):
        answer = await api.post(path, json=body)
        if answer.status_code != 503:
            answer.raise_for_status()
            return answer.json() if answer.content else None
        await asyncio.sleep(0.2)
    answer.raise_for_status()
    return None


async def _set_state(api: httpx.AsyncClient, run_id: str, state: dict[str, Any]) -> None:
    answer = await _post(api, f"/flow_runs/{run_id}/set_state", {"state": state, "force": True})
    if answer.get("status") != "ACCEPT":
        raise RuntimeError(f"Prefect refused the state {state['type']}: {answer}")


async def idle_polls(url: str, tag: str, count: int, polls: int) -> tuple[list[float], list[float]]:
    wire: list[float] = []
    cpu: list[float] = []
    counted = [0]
    requests = [0]

    async def request(request: httpx.Request) -> None:
        requests[0] += 1
        head = sum(len(k) + len(v) + 4 for k, v in request.headers.raw)
        counted[0] += len(request.method) + len(request.url.raw_path) + 12 + head + len(request.content)

    async def response(answer: httpx.Response) -> None:
        await answer.aread()
        head = sum(len(k) + len(v) + 4 for k, v in answer.headers.raw)
        counted[0] += 17 + head + len(answer.content)

    client = httpx.AsyncClient(base_url=url, timeout=60, event_hooks={"request": [request], "response": [response]})
    source = PrefectSource(pf_config(url, tag), None, client)
    try:
        page = await source.fetch(None)
        if len(page.items) != count:
            raise RuntimeError(f"listed {len(page.items)} of {count} paused flow runs")
        cursor = page.cursor
        await asyncio.sleep(EVENT_OVERLAP.total_seconds() + 2)  # idle: the creation events are out of the window
        changed = 0
        while len(cpu) < polls and changed < 20:
            counted[0] = requests[0] = 0
            begun = time.process_time()
            page = await source.fetch(cursor)
            spent = (time.process_time() - begun) * 1000
            cursor = page.cursor
            if requests[0] > 2:  # a late event made it list again: not an idle poll
                changed += 1
                continue
            cpu.append(spent)
            wire.append(float(counted[0]))
            await asyncio.sleep(0.2)
    finally:
        await source.aclose()
    return wire, cpu
