"""The HTTP client every source adapter talks through: one place for its identity, timeout and redirect policy, and for
what a request that gets no answer raises. Beside it, the base of the adapters that list everything pending and compare
it with their own memory (LangGraph, Temporal, Airflow, Prefect), and that memory's bookkeeping: what each waiting
request was listed as, which item it became, and the removals when it changes or leaves."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import httpx

from console.engine.config import SourceConfig, public_url
from console.engine.sources.answers import brief, classify, read_refused
from console.engine.sources.base import Rejected, SourceError
from storage.db import Removal
from storage.records import Item

USER_AGENT = "approval-console/0.1"
DESCRIBED_REMOVALS = 20  # items that left described per poll, to say why; the rest leave as "gone"


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


@contextmanager
def reaching(config: SourceConfig) -> Iterator[None]:
    """A request to `config`'s server that gets no answer fails the poll with why: too slow, or not reached."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise SourceError(f"no answer within {config.timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise SourceError(public_url(f"cannot reach {config.url}: {brief(exc)}")) from exc


class MemoryListingSource:
    """Base of the adapters for servers without a change cursor (LangGraph, Temporal, ...): each lists what is pending
    and compares it with its own memory of the server. Its cursor names that memory (an epoch of this process), so a
    cursor stored by another process, or before a restart, makes the poller list everything once.
    """

    EPOCH_PREFIX: ClassVar[str]
    SUCCESS: ClassVar[Container[int]] = range(200, 300)  # the statuses `_call` takes as an answer

    def __init__(self, config: SourceConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._epoch = f"{self.EPOCH_PREFIX}-{secrets.token_hex(8)}"

    @property
    def long_polls(self) -> bool:
        return False  # their listing APIs cannot wait at the server for a change

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        """A request whose answer must be one of SUCCESS (or 404, when `missing_ok`); anything else raises why."""
        with reaching(self.config):
            response = await self._client.request(method, path, **kwargs)
        status = response.status_code
        if status in self.SUCCESS or (missing_ok and status == 404):
            return response
        asked = f"{method} {path.split('?', maxsplit=1)[0]}"
        raise read_refused(classify(response), auth=": check the token", otherwise=f"answered {status} to {asked}")

    def _foreign(self, cursor: str | None) -> bool:
        """True for a cursor this process did not hand out: its memory is gone, so list everything once."""
        return cursor is not None and cursor != self._epoch


Listed = TypeVar("Listed")


@dataclass(frozen=True)
class Remembered(Generic[Listed]):
    """What a memory-listing adapter knows of one waiting request: what it was listed as (enough to tell a change),
    and its item (None: quarantined)."""

    listed: Listed
    item_id: str | None


Key = TypeVar("Key")
Now = TypeVar("Now")


def remember_translated(
    memory: dict[Key, Remembered[Listed]], translated: Iterable[tuple[Key, Listed, Item | Rejected]], moved_on: str
) -> tuple[list[Item], list[Rejected], list[Removal]]:
    """Remember each changed request as listed and translated now (an item, or quarantined): the items, the rejected,
    and the removals of items a request replaced with another (`moved_on` says why)."""
    items: list[Item] = []
    rejected: list[Rejected] = []
    removed: list[Removal] = []
    for key, listed, result in translated:
        before = memory.get(key)
        item_id = result.id if isinstance(result, Item) else None
        if before is not None and before.item_id is not None and before.item_id != item_id:
            removed.append(Removal(before.item_id, "gone", moved_on))
        if isinstance(result, Item):
            items.append(result)
        else:
            rejected.append(result)
        memory[key] = Remembered(listed, item_id)
    return items, rejected, removed


async def forget_unlisted(
    memory: dict[Key, Remembered[Listed]],
    listed: set[Key],
    describe: Callable[[Key], Awaitable[Now | None]],
    why_left: Callable[[Now | None], tuple[str, str]],
) -> list[Removal]:
    """Drop from `memory` what a complete listing no longer shows, and remove its items: the first few described as
    the server has them now (`why_left` of that: state and detail), the rest as gone without a question."""
    left = [(key, known) for key, known in memory.items() if key not in listed]
    removed: list[Removal] = []
    for index, (key, known) in enumerate(left):
        del memory[key]
        if known.item_id is not None:
            now = await describe(key) if index < DESCRIBED_REMOVALS else None
            removed.append(Removal(known.item_id, *why_left(now)))
    return removed
