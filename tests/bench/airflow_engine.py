"""Figures over the Airflow source, against the real Airflow its tests use (`airflow standalone` from .engines/airflow,
which `make test` and `make bench` build; the figure reports "not available yet" without it)."""

from __future__ import annotations

import asyncio
import time

from console.engine.config import SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from tests.airflow_server import ENGINE, USERS, airflow_server
from tests.bench.fixtures import WireBytes, bench_config
from tests.bench.harness import Bench, Result, Target, figure, measured, unavailable

REQUESTS = 500
AIRFLOW_IDLE = (
    "one Session.poll_once of an airflow source whose N waiting HITL requests are all already stored (after the "
    "initial snapshot), nothing changed"
)


@figure(
    "airflow",
    (
        "airflow_500_visible",
        "Airflow: 500 waiting HITL requests from trigger to all visible",
        "s",
        "from the trigger of one run of a DAG whose ApprovalOperator is mapped over 500 indexes (500 HITL requests; "
        "Airflow's LocalExecutor starts each task, which parks awaiting input) to the end of the first "
        "Session.poll_once after which the console's store holds all 500 items; polls at the source's poll interval "
        "(2 s); a real `airflow standalone` (SQLite) on loopback, on the same cores as the console",
        Target("<=", 120.0),
    ),
    (
        "airflow_idle_poll_bytes",
        "Airflow: idle poll of 500 waiting HITL requests, bytes",
        "B",
        AIRFLOW_IDLE + "; request lines, headers and bodies plus status lines, headers and bodies, as httpx sent and "
        "received them",
        Target("<=", 2048.0),
    ),
    (
        "airflow_idle_poll_cpu",
        "Airflow: idle poll of 500 waiting HITL requests, client CPU",
        "ms",
        AIRFLOW_IDLE + "; time.process_time of the console process around the poll (all its threads)",
        Target("<=", 10.0),
    ),
)
async def airflow(bench: Bench) -> list[Result]:
    if not (ENGINE / ".installed").is_file():
        return unavailable("airflow", f"Airflow is not built ({ENGINE}: `make test` builds it)")
    count = bench.items(REQUESTS, 50)
    login = Token(f"console:{USERS['console']}", "environment")
    with airflow_server(bench.workdir / "airflow") as server:
        source = SourceConfig(name="dags", kind="airflow", url=server.url, timeout=60.0)
        session = Session(bench_config(source), bench.workdir / "airflow-session", token_for=lambda _name: login)
        wire = WireBytes()
        try:
            started = time.perf_counter()
            server.trigger("fan_out", {"count": count})
            polls = 0
            while session.store.queue.count() < count:
                await session.poll_once()
                polls += 1
                await asyncio.sleep(source.poll_interval)  # as the poller does: Airflow shares the cores
            visible = time.perf_counter() - started
            wire.attach(session.sources["dags"])
            cpu: list[float] = []
            sent: list[float] = []
            for _ in range(bench.runs(30, 5)):
                before = wire.bytes
                begun = time.process_time()
                await session.poll_once()
                cpu.append((time.process_time() - begun) * 1000)
                sent.append(float(wire.bytes - before))
            if session.store.queue.count() != count:
                raise RuntimeError(f"the queue changed during idle polls: {session.store.queue.count()} of {count}")
        finally:
            await session.aclose()
    params = {"requests": count}
    return [
        measured("airflow", "airflow_500_visible", [visible], params=params, details={"polls": polls}),
        measured("airflow", "airflow_idle_poll_bytes", sent, params=params),
        measured("airflow", "airflow_idle_poll_cpu", cpu, params=params),
    ]
