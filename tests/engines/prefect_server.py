"""A real Prefect 3 server and real flows for the tests and the bench, run from the engine's own virtual env.

`make test` builds that env (`.engines/prefect`, from PyPI, once); nothing of Prefect is installed in the console's
env. The server keeps its SQLite database and settings in a temp dir, listens on a free loopback port, and is stopped
(its whole process group) when the context ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.engine_process import answers_ok, engine_process, free_ports

ROOT = Path(__file__).resolve().parents[2]
ENGINE_BIN = ROOT / ".engines" / "prefect" / "bin"
FLOW_SCRIPT = Path(__file__).with_name("prefect_flow.py")
START_SECONDS = 180  # about 18 s on an idle 2-core machine; far more when the machine is busy


def engine_env(home: Path, api_url: str = "") -> dict[str, str]:
    """Prefect's settings for a server or a flow of the tests: its own home and database, nothing sent anywhere."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PYTHONPATH", None)  # the console's modules are no business of the engine's Python
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextmanager
def prefect_server(workdir: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port; yields its API URL (`http://127.0.0.1:PORT/api`)."""
    prefect = ENGINE_BIN / "prefect"
    assert prefect.exists(), f"no Prefect engine env at {ENGINE_BIN.parent}: run `make engines` (make test does)"
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/api"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with engine_process(
        command,
        cwd=workdir,
        env=engine_env(home),
        log_path=workdir / "server.log",
        ready=lambda: answers_ok(f"{url}/health", timeout=2),
        start_seconds=START_SECONDS,
        check_every=0.3,
        stop_seconds=20,
    ):
        yield url


def start_flows(
    api_url: str, workdir: Path, tag: str, count: int = 1, timeout: int = 600, *, escalation: bool = False
) -> subprocess.Popen[bytes]:
    """Run `count` refund flows (tests/engines/prefect_flow.py) that pause for input, tagged `tag`."""
    home = workdir / f"flow-{tag}"
    home.mkdir(parents=True, exist_ok=True)
    command = [str(ENGINE_BIN / "python"), "-P", str(FLOW_SCRIPT), tag, str(count), str(timeout)]
    command += ["--escalation"] if escalation else []
    log = (home / "flow.log").open("wb")
    return subprocess.Popen(
        command, env=engine_env(home, api_url), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
