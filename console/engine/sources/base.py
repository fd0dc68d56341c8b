"""What every source adapter gives the poller and the sync engine, and the item validation they share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from console.engine.config import SourceConfig
from storage.db import Removal
from storage.labels import Label
from storage.records import Decision, Item, SyncState, digest_problem, id_problem

EXCERPT_CHARS = 400
Row = TypeVar("Row")


@dataclass(frozen=True)
class Rejected:
    """A listed item that failed validation: quarantined and counted, never shown as pending."""

    item_id: str
    reason: str
    excerpt: str


@dataclass(frozen=True)
class Page:
    items: list[Item] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    removed: list[Removal] = field(default_factory=list)
    cursor: str | None = None
    has_more: bool = False
    reset: bool = False  # the cursor is too old: start over with a full listing
    cursor_refused: str = ""  # why the page's cursor was not kept (R4): paging stops, the next poll lists afresh


@dataclass(frozen=True)
class DecisionAnswer:
    """A source's answer to one decision (the outbox records it as a `DecisionSyncUpdate` row).

    `state` None means: not final, retry (after `retry_after` when given).
    """

    state: SyncState | None
    outcome: str
    detail: str
    response: dict[str, Any] | None = None
    retry_after: float | None = None
    auth_refused: bool = False


@dataclass(frozen=True)
class LabelAnswer:
    """A source's answer to one batch of labels (recorded as `LabelSyncUpdate` rows, one per label).

    A label in neither `sent` nor `refused` is retried (after `retry_after`).
    """

    sent: frozenset[str] = frozenset()  # the source holds these now (accepted, or duplicates of ones it had)
    refused: Mapping[str, str] = field(default_factory=dict)  # label id -> why; final, kept locally with the reason
    detail: str = ""
    retry_after: float | None = None
    auth_refused: bool = False


class SourceError(Exception):
    """A source could not be read: down, slow, refusing us, or answering garbage."""

    def __init__(
        self, message: str, *, auth: bool = False, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(message)
        self.auth = auth
        self.retry_after = retry_after
        self.throttled = throttled  # answered 429/503: up, but asking us to slow down (retry at its pace)


class Source(Protocol):
    config: SourceConfig

    @property
    def long_polls(self) -> bool:
        """True when `fetch` waits at the server for changes: the poller then asks again at once."""
        ...

    async def fetch(self, cursor: str | None) -> Page: ...

    async def send_decision(self, decision: Decision) -> DecisionAnswer: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PagingSource(Source, Protocol):
    """Optional: a source that hands out one listing page by page as it reads it (`has_more` until the last one);
    its `fetch` returns the same listing whole."""

    def pages(self, cursor: str | None) -> AsyncGenerator[Page, None]: ...


@runtime_checkable
class ClaimingSource(Source, Protocol):
    """Optional: a source whose protocol has claims (PROTOCOL.md section 5). Claims are advisory and best effort."""

    async def claim(self, item_id: str, operator: str) -> str | None:
        """Claim or renew; returns who holds the item now (us, someone else), or None when claims are off."""
        ...

    async def release(self, item_id: str, operator: str) -> None: ...


@dataclass(frozen=True)
class ExtendAnswer:
    """A source's answer to "give this item more time" (PROTOCOL.md section 10): the new version, or why not."""

    item: Item | None  # the item as the source now lists it, its deadline later; None: nothing changed
    detail: str


@runtime_checkable
class ExtendingSource(Source, Protocol):
    """Optional: a source whose items may offer more time (an item's `extend`). Others cannot extend at all."""

    async def extend(self, item: Item, seconds: int, operator: str) -> ExtendAnswer: ...


@runtime_checkable
class LabelSink(Protocol):
    """A source that takes labels back (native: POST /v1/feedback). Labels for a source without it stay pending."""

    async def send_labels(self, labels: Sequence[Label]) -> LabelAnswer: ...


def labels_by_target(
    labels: Sequence[Label], parse_item_id: Callable[[str], tuple[str, ...] | None], source: str
) -> tuple[dict[str, list[Label]], dict[str, str]]:
    """Labels grouped by what their item id names first at the source (a thread, a flow run), and the labels whose
    item id this adapter cannot have made, refused (`source`: "Prefect")."""
    by_target: dict[str, list[Label]] = {}
    refused: dict[str, str] = {}
    for label in labels:
        parsed = parse_item_id(label.item_id)
        if parsed is None:
            refused[label.label_id] = f"not a {source} item id"
        else:
            by_target.setdefault(parsed[0], []).append(label)
    return by_target, refused


def labels_cut_short(sent: set[str], refused: dict[str, str], exc: SourceError) -> LabelAnswer:
    """Labels sent until a request failed: what went through is kept, the rest is sent again (at the server's pace)."""
    return LabelAnswer(frozenset(sent), refused, str(exc), retry_after=exc.retry_after, auth_refused=exc.auth)


def excerpt(raw: Any) -> str:
    try:
        text = json.dumps(raw, ensure_ascii=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(raw))
    return text[:EXCERPT_CHARS]


def read_rows(
    rows: list[Any], read: Callable[[Any], Row | None], unread_id: str, unread_reason: str
) -> tuple[list[Row], list[Rejected]]:
    """The rows of a listing `read` can make sense of, and the others quarantined (as `unread_id`, with the reason)."""
    read_ok: list[Row] = []
    rejected: list[Rejected] = []
    for raw in rows:
        row = read(raw)
        if row is None:
            rejected.append(Rejected(unread_id, unread_reason, excerpt(raw)))
        else:
            read_ok.append(row)
    return read_ok, rejected


def validate_items(source: str, raw_items: list[Any]) -> tuple[list[Item], list[Rejected]]:
    """Split listed payloads into valid items and rejected ones, each with a reason an operator can act on."""
    items: list[Item] = []
    rejected: list[Rejected] = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            rejected.append(
                Rejected(_anonymous_id(raw), f"an item must be a JSON object, got {type(raw).__name__}", excerpt(raw))
            )
            continue
        raw_id = raw.get("id")
        item_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 200 else _anonymous_id(raw)
        unusable = id_problem(raw_id) if isinstance(raw_id, str) else None
        if unusable is not None:  # checked here, not in the model: an older database may hold such an id
            rejected.append(Rejected(item_id, unusable, excerpt(raw)))
            continue
        try:
            item = Item.model_validate({**raw, "source": source})
        except ValidationError as exc:
            rejected.append(Rejected(item_id, _reasons(exc), excerpt(raw)))
            continue
        except (RecursionError, ValueError, TypeError) as exc:
            rejected.append(Rejected(item_id, f"unreadable item: {type(exc).__name__}", excerpt(raw)))
            continue
        problem = digest_problem(raw)
        if problem is not None:
            rejected.append(Rejected(item_id, problem, excerpt(raw)))
            continue
        items.append(item)
    return items, rejected


def _anonymous_id(raw: Any) -> str:
    return "?" + hashlib.sha256(excerpt(raw).encode()).hexdigest()[:12]


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "item"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
