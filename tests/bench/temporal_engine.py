"""Figures over the workflow-engine sources, each against the real engine its tests use (Temporal: the dev server from
.engines/temporal, which `make test` builds; the figure reports "not available yet" without it).

`python -m tests.bench.temporal_engine temporal-worker GRPC QUEUE` is the worker these figures run in a process of
its own (as a real deployment does), so the console's process CPU is the console's alone; it stops when its input
closes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid

from console.engine.config import SourceConfig
from console.engine.session import Session
from tests.bench.engine_polls import engine_figures, idle_polls, poll_until_stored
from tests.bench.fixtures import ROOT, bench_config, no_token
from tests.bench.harness import Bench, Result, Target, figure, unavailable
from tests.temporal_server import ENGINE_BIN, NAMESPACE, temporal_server

WORKFLOWS = 500
TEMPORAL_IDLE = (
    "one Session.poll_once of a temporal source whose N waiting workflows are all already stored (after the initial "
    "snapshot), nothing changed"
)


@figure(
    "temporal",
    (
        "temporal_500_visible",
        "Temporal: 500 waiting workflows from start to all visible",
        "s",
        "from the first of 500 workflows started (the SDK's client, 50 at a time; a worker in its own process runs "
        "them, each waiting through the console's helper) to the end of the first Session.poll_once after which the "
        "console's store holds all 500 items; polls back to back; the real Temporal dev server on loopback",
        Target("<=", 15.0),
    ),
    (
        "temporal_idle_poll_bytes",
        "Temporal: idle poll of 500 waiting workflows, bytes",
        "B",
        TEMPORAL_IDLE + "; request lines, headers and bodies plus status lines, headers and bodies, as httpx sent and "
        "received them",
        Target("<=", 2048.0),
    ),
    (
        "temporal_idle_poll_cpu",
        "Temporal: idle poll of 500 waiting workflows, client CPU",
        "ms",
        TEMPORAL_IDLE + "; time.process_time of the console process around the poll (all its threads)",
        Target("<=", 10.0),
    ),
)
async def temporal(bench: Bench) -> list[Result]:
    if not ENGINE_BIN.is_file():
        return unavailable("temporal", f"the Temporal dev server is not built ({ENGINE_BIN}: `make test` builds it)")
    from temporalio.client import Client

    from tests.temporal_workflows import Refund

    count = bench.items(WORKFLOWS, 50)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    with temporal_server(bench.workdir / "temporal") as server, _Worker(server.grpc, queue):
        client = await Client.connect(server.grpc, namespace=NAMESPACE)
        source = SourceConfig(name="flows", kind="temporal", url=server.http, ui_url=server.ui, timeout=60.0)
        session = Session(bench_config(source), bench.workdir / "temporal-session", token_for=no_token)
        try:
            gate = asyncio.Semaphore(50)

            async def start(n: int) -> None:
                async with gate:
                    await client.start_workflow(Refund.run, {"amount": n}, id=f"bench-{n}", task_queue=queue)

            started = time.perf_counter()
            await asyncio.gather(*(start(n) for n in range(count)))
            polls = await poll_until_stored(session, count)  # back to back
            visible = time.perf_counter() - started
            cpu, sent = await idle_polls(session, "flows", count, bench.runs(30, 5))
        finally:
            await session.aclose()
    return engine_figures("temporal", visible, polls, cpu, sent, params={"workflows": count})


class _Worker:
    """The worker process for the duration of a `with` block."""

    def __init__(self, grpc: str, queue: str) -> None:
        command = [sys.executable, "-m", "tests.bench.temporal_engine", "temporal-worker", grpc, queue]
        self._process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> None:
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError("the Temporal worker did not start")

    def __exit__(self, *_: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


async def _serve_worker(grpc: str, queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from tests.temporal_workflows import Refund

    client = await Client.connect(grpc, namespace=NAMESPACE)
    async with Worker(client, task_queue=queue, workflows=[Refund], max_concurrent_workflow_tasks=100):
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the bench closes our input


if __name__ == "__main__":
    if sys.argv[1:2] == ["temporal-worker"]:
        asyncio.run(_serve_worker(sys.argv[2], sys.argv[3]))
