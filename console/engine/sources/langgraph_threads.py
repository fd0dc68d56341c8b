"""What the LangGraph source remembers of each interrupted thread between polls, and how a newly translated thread
changes it: pure, no HTTP (the transport is langgraph.py beside it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from console.engine.sources.base import Page, Rejected
from console.engine.sources.langgraph_payloads import Interrupt, RaisedBy
from storage.db import Removal
from storage.records import Item


@dataclass
class Thread:
    updated_at: str
    items: dict[str, Item] = field(default_factory=dict)
    raised: dict[str, RaisedBy] = field(default_factory=dict)  # interrupt id -> the run that first raised it
    nodes: dict[str, str] = field(default_factory=dict)  # interrupt id -> its node, once its state was read
    unread: bool = False  # a pending interrupt's state (node, run, time) is still to be read
    rejected: set[str] = field(default_factory=set)  # ids of its items quarantined when last translated


@dataclass(frozen=True)
class Translated:
    """One thread's pending interrupts, translated (off the event loop)."""

    row: dict[str, Any]
    interrupts: list[Interrupt] | None  # None: the thread is gone
    items: list[Item] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def remember(
    threads: dict[str, Thread], translated: Sequence[Translated], *, read: bool
) -> tuple[list[Item], list[Rejected], list[Removal]]:
    """Keep what each thread holds now (`read`: from its state, else from the listing); returns what changed: items
    new or changed, quarantined (once per thread version: a state read does not repeat the listing's), removed."""
    items: list[Item] = []
    rejected: list[Rejected] = []
    removed: list[Removal] = []
    for done in translated:
        tid = done.row["thread_id"]
        before = threads.get(tid, Thread(""))
        if done.interrupts is None:  # deleted between the listing and now
            removed += [Removal(item_id, "gone") for item_id in forget(threads, tid)]
            continue
        now = {item.id: item for item in done.items}
        removed += [Removal(item_id, "gone") for item_id in before.items if item_id not in now]
        items += [item for item in done.items if before.items.get(item.id) != item]
        quarantined = before.rejected if read else set()
        rejected += [r for r in done.rejected if r.item_id not in quarantined]
        raised, nodes = before.raised, before.nodes
        if read:
            raised = {**raised, **{i.interrupt_id: i.run for i in done.interrupts if i.run is not None}}
            nodes = {**nodes, **{i.interrupt_id: i.node for i in done.interrupts}}
        unread = any(i.interrupt_id not in nodes for i in done.interrupts)
        rejected_ids = {r.item_id for r in done.rejected}
        threads[tid] = Thread(done.row["updated_at"], now, raised, nodes, unread, rejected_ids)
    return items, rejected, removed


def forget(threads: dict[str, Thread], thread_id: str) -> list[str]:
    """Forget a thread that left; the ids of the items it had."""
    thread = threads.pop(thread_id, None)
    return [] if thread is None else list(thread.items)


def merged(pages: Sequence[Page], cursor: str | None, *, has_more: bool = False) -> Page:
    """Pages in the order they were read as one: an item's latest version, and none that a later page removed."""
    items: dict[str, Item] = {}
    rejected: list[Rejected] = []
    removed: list[Removal] = []
    for page in pages:
        items.update((item.id, item) for item in page.items)
        rejected += page.rejected
        removed += page.removed
    gone = {r.item_id for r in removed}
    kept = [item for item in items.values() if item.id not in gone]
    return Page(items=kept, rejected=rejected, removed=removed, cursor=cursor, has_more=has_more)
