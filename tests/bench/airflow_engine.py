"""Figures over the Airflow source, against the real Airflow its tests use (`airflow standalone` from .engines/airflow,
which `make test` and `make bench` build; the figure reports "not available yet" without it)."""

from __future__ import annotations

import time

from console.engine.config import SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from tests.airflow_server import ENGINE, USERS, airflow_server
from tests.bench.engine_polls import engine_figures, idle_polls, poll_until_stored
from tests.bench.fixtures import bench_config
from tests.bench.harness import Bench, Result, Target, figure, unavailable

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
        try:
            started = time.perf_counter()
            server.trigger("fan_out", {"count": count})
            # At the source's poll interval, as the poller does: Airflow shares the cores.
            polls = await poll_until_stored(session, count, pause=source.poll_interval)
            visible = time.perf_counter() - started
            cpu, sent = await idle_polls(session, "dags", count, bench.runs(30, 5))
        finally:
            await session.aclose()
    return engine_figures("airflow", visible, polls, cpu, sent, params={"requests": count})
