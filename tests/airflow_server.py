"""A real Airflow (`airflow standalone`: API server, scheduler, DAG processor and triggerer; SQLite) from its own
environment (.engines/airflow, which `make test` builds), on a free loopback port, with AIRFLOW_HOME in a temporary
folder, the DAGs of tests/airflow_dags, and three simple-auth-manager users whose passwords the tests write themselves.
Stopped (its whole process group) at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.engine_process import engine_process, free_ports

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / ".engines" / "airflow"
DAGS = Path(__file__).resolve().parent / "airflow_dags"
# Simple-auth-manager users, all admins: "console" is the source's own, "admin" the tests' (to read Airflow's state),
# "bob" the one a DAG assigns its request to.
USERS = {"console": "console-pw", "admin": "admin-pw", "bob": "bob-pw"}
DAG_IDS = {"refund_approval", "quick_timeout", "pick_regions", "assigned_to_bob", "enter_limits", "fan_out"}
START_TIMEOUT = 600.0  # a busy 2-core machine: the first start migrates the database


@dataclass(frozen=True)
class AirflowServer:
    url: str
    home: Path
    log: Path  # what `airflow standalone` prints: its scheduler's log among the rest

    def parked(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> bool:
        """True once the scheduler has heard that the process which parked this task has exited. Airflow 3.3 fails a
        task answered before then ("finished with state success, but the task instance's state attribute is
        queued"): a person is never that quick, a test is."""
        line = f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}, map_index={map_index},"
        return line in self.log.read_text(errors="replace")

    def token(self, user: str) -> str:
        response = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, user: str = "admin") -> httpx.Client:
        """A client of Airflow's REST API as `user` (admin: a user of its own, so the tests' reads are not the
        console's)."""
        return httpx.Client(base_url=f"{self.url}/api/v2", headers={"Authorization": f"Bearer {self.token(user)}"})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """A new run of `dag_id`; its run id."""
        with self.api() as api:
            response = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}, timeout=30)
            response.raise_for_status()
            return str(response.json()["dag_run_id"])


@contextmanager
def airflow_server(workdir: Path) -> Iterator[AirflowServer]:
    """`airflow standalone` in its own process group; ready once every DAG of tests/airflow_dags is parsed."""
    assert (ENGINE / "bin" / "airflow").is_file(), f"{ENGINE} is missing: `make test` builds it (.engines/airflow)"
    (port,) = free_ports(1)
    home = workdir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(USERS))
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "PATH": f"{ENGINE / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",  # its sub-processes call `airflow`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:admin" for user in USERS),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__CORE__PARALLELISM": "16",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    started = AirflowServer(url, home, workdir / "airflow.log")
    with engine_process(  # its own process group: the scheduler, processor, triggerer and API go with it
        [str(ENGINE / "bin" / "airflow"), "standalone"],
        cwd=home,
        env=env,
        log_path=started.log,
        ready=lambda: _dags_ready(started),
        start_seconds=START_TIMEOUT,
        check_every=1,
        stop_seconds=60,
    ):
        yield started


def _dags_ready(server: AirflowServer) -> bool:
    try:
        with server.api() as api:
            response = api.get("/dags", params={"limit": 100}, timeout=5)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    return {dag["dag_id"] for dag in response.json()["dags"]} >= DAG_IDS
