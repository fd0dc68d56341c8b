"""The HTTP client every source adapter talks through: one place for its identity, timeout and redirect policy."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import ClassVar

import httpx

from console.engine.config import SourceConfig

USER_AGENT = "approval-console/0.1"


def source_client(
    config: SourceConfig, headers: Mapping[str, str] = {}, client: httpx.AsyncClient | None = None
) -> httpx.AsyncClient:
    """`client` when a test gives one, else a client for `config.url` with `headers` (credentials among them).

    Redirects are never followed: a source that moved says so, and a token must not travel to another host.
    """
    if client is not None:
        return client
    return httpx.AsyncClient(
        base_url=config.url,
        headers={"User-Agent": USER_AGENT, **headers},
        timeout=httpx.Timeout(config.timeout),
        follow_redirects=False,
    )


class MemoryListingSource:
    """Base of the adapters for servers without a change cursor (LangGraph, Temporal, ...): each lists what is pending
    and compares it with its own memory of the server. Its cursor names that memory (an epoch of this process), so a
    cursor stored by another process, or before a restart, makes the poller list everything once.
    """

    EPOCH_PREFIX: ClassVar[str]

    def __init__(self, config: SourceConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._epoch = f"{self.EPOCH_PREFIX}-{secrets.token_hex(8)}"

    @property
    def long_polls(self) -> bool:
        return False  # their listing APIs cannot wait at the server for a change

    async def aclose(self) -> None:
        await self._client.aclose()

    def _foreign(self, cursor: str | None) -> bool:
        """True for a cursor this process did not hand out: its memory is gone, so list everything once."""
        return cursor is not None and cursor != self._epoch
