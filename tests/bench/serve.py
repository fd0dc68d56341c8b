"""What one `approval-console serve` holds: items created and decided per second, and 1,000 agents waiting at once.

`serve` runs as the real command in a child process over a fresh data directory (SQLite, WAL, synchronous=FULL: every
answer waits for its commit to reach the disk). The clients are asyncio httpx clients in this process, on keep-alive
connections; on a small machine they share its cores with the server, so the figures are a floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.bench.harness import Bench, Result, Target, figure, measured
from tests.queue_servers import OPERATOR, ServeProcess, fixed_token, write_token_file

AGENT = "bench-agent"
CLIENTS = 16  # concurrent agents (or operators) for the rates
WAITERS = 1000
PER_CLIENT = 50
SETUP = "approval-console serve in a child process over a fresh data dir; asyncio httpx clients, keep-alive"


def _item(n: int) -> dict[str, Any]:
    return {
        "kind": "approval",
        "workflow": "refunds",
        "action": {"name": "issue_refund", "args": {"customer_id": f"cus_{n}", "amount": 120.0, "currency": "EUR"}},
        "context": {"summary": f"Refund request {n}", "evidence": [], "links": []},
        "risk": "medium",
        "policy": "refunds need a human",
        "expires_at": None,
        "on_expiry": "reject",
        "allowed_decisions": ["approve", "reject"],
    }


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


async def _in_parallel(count: int, act: Any, clients: int = CLIENTS) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            await act(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(clients)))


async def _create(agent: httpx.AsyncClient, count: int, prefix: str) -> list[dict[str, Any]]:
    created: list[dict[str, Any]] = []

    async def one(n: int) -> None:
        answer = await agent.post("/v1/items", json=_item(n), headers={"Idempotency-Key": f"{prefix}-{n}"})
        if answer.status_code != 201:
            raise RuntimeError(f"create answered {answer.status_code}: {answer.text[:200]}")
        created.append(answer.json())

    await _in_parallel(count, one)
    return created


async def _decide(operator: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    async def one(n: int) -> None:
        item = items[n]
        body = {"verdict": "approve", "item_digest": item["digest"]}
        answer = await operator.post(
            f"/v1/items/{item['id']}/decision", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        if answer.json().get("outcome") != "applied":
            raise RuntimeError(f"decision answered {answer.status_code}: {answer.text[:200]}")

    await _in_parallel(len(items), one)


def _clients(url: str, connections: int) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    agent = httpx.AsyncClient(
        base_url=url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {fixed_token('agent', AGENT)}"}
    )
    operator = httpx.AsyncClient(
        base_url=url,
        timeout=60,
        limits=limits,
        headers={"Authorization": f"Bearer {fixed_token('operator', OPERATOR)}"},
    )
    return agent, operator


@figure(
    "serve",
    (
        "serve_created_rate",
        "serve: items created per second",
        "items/s",
        f"{SETUP}; {CLIENTS} agents post N items (POST /v1/items, each under its own Idempotency-Key) as fast as the "
        "answers come; items answered 201 per second of wall time",
        Target(">=", 200.0),
    ),
    (
        "serve_decided_rate",
        "serve: items decided per second",
        "items/s",
        f"{SETUP}; {CLIENTS} operators decide the N items just created (POST .../decision), each answered `applied`; "
        "decisions per second of wall time",
        Target(">=", 200.0),
    ),
    (
        "serve_1000_waiters",
        "serve: 1,000 agents waiting, from the first decision to all answered",
        "s",
        f"{SETUP}; 1,000 items, each with its agent's long-poll open (GET .../outcome?wait=30, one connection each); "
        f"then {CLIENTS} operators decide all 1,000: seconds from the first decision sent to the last wait answered "
        "with its decision (every one must be)",
        Target("<=", 10.0),
    ),
    (
        "serve_1000_waiters_rss",
        "serve: resident memory with 1,000 agents waiting",
        "MiB",
        f"{SETUP}; the serve process's VmRSS while 1,000 long-polls are open (and its items stored)",
        Target("<=", 512.0),
    ),
)
async def serve_figures(bench: Bench) -> list[Result]:
    count = bench.items(2000, 200)
    created_rates: list[float] = []
    decided_rates: list[float] = []
    spans: list[float] = []
    memory: list[float] = []
    for run in range(bench.runs(3, 1)):
        data_dir = bench.workdir / f"serve-{run}"
        data_dir.mkdir(parents=True)
        write_token_file(data_dir / "serve.toml", [AGENT], [OPERATOR])
        server = ServeProcess(data_dir)
        url = server.start()
        try:
            agent, operator = _clients(url, CLIENTS)
            async with agent, operator:
                started = time.perf_counter()
                items = await _create(agent, count, f"rate-{run}")
                created_rates.append(count / (time.perf_counter() - started))
                started = time.perf_counter()
                await _decide(operator, items)
                decided_rates.append(count / (time.perf_counter() - started))
            span, rss = await _waiters(url, run, server)
            spans.append(span)
            memory.append(rss)
        finally:
            server.stop()
    params = {"items": count, "clients": CLIENTS, "waiters": WAITERS}
    return [
        measured("serve", "serve_created_rate", created_rates, params=params),
        measured("serve", "serve_decided_rate", decided_rates, params=params),
        measured("serve", "serve_1000_waiters", spans, params=params),
        measured("serve", "serve_1000_waiters_rss", memory, params=params),
    ]


async def _waiters(url: str, run: int, server: ServeProcess) -> tuple[float, float]:
    agent, operator = _clients(url, CLIENTS)
    # httpx's pool does work in proportion to its connections for every request: 50 long-polls a client, so the
    # figure measures the server, not one client juggling 1,000 connections.
    groups = [_clients(url, PER_CLIENT)[0] for _ in range(0, WAITERS, PER_CLIENT)]
    async with agent, operator, contextlib.AsyncExitStack() as stack:
        for group in groups:
            await stack.enter_async_context(group)
        items = await _create(agent, WAITERS, f"wait-{run}")
        answered: list[float] = []

        async def wait(client: httpx.AsyncClient, item: dict[str, Any]) -> None:
            answer = await client.get(f"/v1/items/{item['id']}/outcome", params={"wait": 30})
            if answer.json().get("state") == "decided":
                answered.append(time.perf_counter())

        waits = []
        for n, group in enumerate(groups):  # opened a client at a time: the listen backlog is not what is measured
            batch = items[n * PER_CLIENT : (n + 1) * PER_CLIENT]
            waits += [asyncio.create_task(wait(group, item)) for item in batch]
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert server.child is not None
        rss = _rss_mib(server.child.pid)
        started = time.perf_counter()
        await _decide(operator, items)
        await asyncio.gather(*waits)
        if len(answered) != WAITERS:
            raise RuntimeError(f"{WAITERS - len(answered)} of {WAITERS} waits ended without their decision")
        return max(answered) - started, rss
