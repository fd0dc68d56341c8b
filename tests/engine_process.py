"""The engine servers of the tests (Temporal, Prefect, Airflow) as processes: free loopback ports, a server started in
its own process group with its output in a log file, waited on until it answers, and stopped with all it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def answers_ok(url: str, timeout: float) -> bool:
    """True when `url` answers 200 (a server still starting refuses the connection or answers otherwise)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def engine_process(
    command: list[str],
    *,
    cwd: Path,
    log_path: Path,
    ready: Callable[[], bool],
    start_seconds: float,
    check_every: float,
    stop_seconds: float,
    env: Mapping[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` in its own process group (whatever it starts goes with it), its output in `log_path`; yields once
    `ready()` is true, fails with the log's end if it exits or is not ready within `start_seconds`."""
    log = log_path.open("wb")
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + start_seconds
        while not ready():
            assert server.poll() is None, _tail(log_path)
            assert time.monotonic() < deadline, f"{command[0]} did not start: {_tail(log_path)}"
            time.sleep(check_every)  # a subprocess starting: no event loop to wait on here
        yield server
    finally:
        stop(server, stop_seconds)
        log.close()


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    """Stop a process started in its own session, and everything it started (killed after `grace` seconds)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]
