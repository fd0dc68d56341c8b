"""`approval-console serve`: the native protocol's durable queue. Agents (and the bridges) post items and wait for
their outcome; consoles list and decide them. The protocol is console.servers.protocol, the same code as the demo
fleet's; `serve` adds durable state (store.py, SQLite) and tokens (tokens.py), and logs what it refused, never a token.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

from console.servers.protocol.handlers import Caller
from console.servers.protocol.http import QueueServer
from console.servers.protocol.rules import Answer
from console.servers.serve.store import SqliteState
from console.servers.serve.tokens import CONFIG_NAME, TokenFile
from storage.safe_text import clean

LOG = logging.getLogger("approval_console.serve")


class Serve(SqliteState, QueueServer):
    """A queue server over one data directory (held exclusively while the object lives; `close()` lets it go)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        config: Path | None = None,
        expire_check: float = 1.0,
        remember_removals: int = 10_000,
        name: str = "serve",
    ) -> None:
        super().__init__(name=name, expire_check=expire_check, remember_removals=remember_removals)
        self.data_dir = data_dir
        self.tokens = TokenFile(config or data_dir / CONFIG_NAME)  # before the data dir: a bad file changes nothing
        self._open_journal(data_dir)

    def close(self) -> None:
        self.stop()
        self._close_journal()

    def _caller_for(self, token: str) -> Caller | None:
        return self.tokens.caller(token)

    def respond(self, method: str, target: str, authorization: str | None, key: str | None, raw: bytes) -> Answer:
        answer = super().respond(method, target, authorization, key, raw)
        status = answer[0]
        if status in (401, 403) or status >= 500:
            # The path only (a query may hold a cursor); never the Authorization header.
            path = clean(urlsplit(target).path, multiline=False)[:300]
            LOG.warning("%s %s answered %d (%s)", method, path, status, answer[1][:200].decode(errors="replace"))
        return answer
