"""The two servers of PROTOCOL.md under one test suite: the demo fleet, and `serve` over a real SQLite file.

`TestServe` is `serve` (its durable state, its tokens, its handlers: the code `approval-console serve` runs) with the
demo fleet's agent-side hooks mixed in (`add_item`, `change_item`, `supersede`, `expire`, `withdraw`,
`decide_elsewhere`, ...), so the protocol tests drive both servers with the same calls. The hooks change serve's
state through its transactions, as a request would: what they do is written to SQLite like anything else.
`connect()` opens a client that sends the right token for each request (the item's agent's for posting and waiting,
the operator alice's for the rest), so the same requests pass serve's authentication.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from console.servers.fleet.hooks import FleetHooks
from console.servers.fleet.scenarios import Scenarios
from console.servers.protocol.http import QueueServer
from console.servers.serve import Serve
from console.servers.serve.tokens import CONFIG_NAME, token_hash

OPERATOR = "alice"
ROOT = Path(__file__).resolve().parent.parent


def fixed_token(role: str, name: str) -> str:
    """A fixed token for tests (never a real one): the same after a restart of the server."""
    return f"acs_test_{role}_{name}"


def write_token_file(path: Path, agents: list[str], operators: list[str]) -> None:
    blocks = [
        f'[[{role}s]]\nname = "{name}"\ntoken_sha256 = "{token_hash(fixed_token(role, name))}"\n'
        for role, names in (("agent", agents), ("operator", operators))
        for name in names
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")


class TestServe(FleetHooks, Serve):
    __test__ = False  # a server, not a class of tests

    def __init__(
        self,
        data_dir: Path,
        *,
        seed: int | None = None,
        initial: int = 0,
        expire_check: float = 1.0,
        remember_removals: int = 10_000,
    ) -> None:
        self._scenarios = Scenarios(random.Random(seed))
        data_dir.mkdir(parents=True, exist_ok=True)
        write_token_file(data_dir / CONFIG_NAME, [*self._scenarios.agents, "other-agent"], [OPERATOR, "bob"])
        super().__init__(data_dir, expire_check=expire_check, remember_removals=remember_removals)
        for _ in range(initial):
            self.add_item()


class ByRole(httpx.Auth):
    """The token a request needs on `serve`: an agent's to post an item (the agent the item names) or to wait on or
    withdraw one (the item's agent), the operator's for everything else."""

    def __init__(self, server: TestServe, operator: str = OPERATOR) -> None:
        self.server = server
        self.operator = operator

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        agent: str | None = None
        if request.method == "POST" and path == "/v1/items":
            try:
                body: Any = json.loads(request.content or b"{}")
            except ValueError:
                body = {}
            named = body.get("agent") if isinstance(body, dict) else None
            agent = named if isinstance(named, str) else self.server._scenarios.agents[0]
        elif path.endswith(("/outcome", "/withdraw")):
            item_id = unquote(request.url.raw_path.decode("ascii").partition("?")[0].split("/")[3])
            with self.server._lock:
                rec = self.server._records.get(item_id)
                agent = str(rec.item.get("agent")) if rec is not None else "other-agent"
        token = fixed_token("agent", agent) if agent else fixed_token("operator", self.operator)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def connect(server: QueueServer, **options: Any) -> httpx.Client:
    """A client of `server`: with serve, one that authenticates each request as ByRole says."""
    if isinstance(server, TestServe):
        options.setdefault("auth", ByRole(server))
    return httpx.Client(base_url=server.url, **options)


class ServeProcess:
    """`approval-console serve` in a child process (the real command line), on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.child: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        command = [sys.executable, "-m", "console.cli", "serve", "--data-dir", str(self.data_dir), "--port", "0"]
        self.child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.child.stdout is not None
        line = self.child.stdout.readline()
        found = re.search(r"at (http://\S+?),", line)
        assert found, f"serve did not start: {line!r} {self.child.stderr.read() if self.child.stderr else ''}"
        self.url = found.group(1)
        return self.url

    def kill(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGKILL)
        self.child.communicate(timeout=30)

    def stop(self) -> str:
        """Stop it as an operator would (SIGTERM); its standard error."""
        assert self.child is not None
        self.child.send_signal(signal.SIGTERM)
        _, err = self.child.communicate(timeout=30)
        assert self.child.returncode == 0, err
        return err
