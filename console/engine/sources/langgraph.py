"""LangGraph agents as a source: interrupted threads of a LangGraph API server become queue items.

This module and the two beside it are the only ones that know LangGraph: this one talks HTTP, langgraph_payloads
translates interrupt payloads into items and decisions into resume values, langgraph_threads keeps what the source
remembers of each thread between polls (both pure: no HTTP).

Listing. `POST /threads/search` (status interrupted, the configured metadata filter) answers page by page with each
thread's id, times, metadata and pending interrupts; each page is handed to the poller as it arrives, so the first
items are stored and shown after the first request. The search names neither the node, nor the run, nor the time of
an interrupt: those come from the thread's state (`GET /threads/{id}/state`), read afterwards, a few at a time, only
for interrupts never read before; until then an item is provisional (no node, no trace, its thread's creation time),
except on a page with only a few such threads (a new interrupt in a running queue): those are read before it goes out.
An idle poll is one small probe (the most recently updated threads and the total count): when it shows nothing new,
nothing else is read. An item's `created_at` is its interrupt's time (the state's checkpoint time) and its `trace`
names the run that raised it (the checkpoint metadata's `run_id`). The cursor names this process's memory of the
server, so after a restart the poller lists everything once (a snapshot), which also drops what vanished meanwhile.

Sending. Before resuming, the adapter (1) looks for a run it already started with this decision (run metadata carries
the decision ids: a resend after a crash is reported as applied, never resumed twice), (2) re-reads the thread: the
interrupt must still be pending and translate to the same digest (a resume on a finished thread would be silently
accepted by the server), (3) validates the answer locally (allowed decision, edit against the arguments' schema, the
whole answer against `response_schema`; a malformed resume would destroy the pending approval on the server), then
(4) resumes by interrupt id with `multitask_strategy: "reject"`, so a concurrent resume from another console gets 409.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from console.engine.config import SourceConfig
from console.engine.schema_check import schema_problem
from console.engine.secrets import Token
from console.engine.sources.answers import Kind, busy_answer, classify
from console.engine.sources.base import DecisionAnswer, LabelAnswer, Page, SourceError
from console.engine.sources.http import MemoryListingSource, source_client
from console.engine.sources.langgraph_payloads import (
    Interrupt,
    InvalidDecision,
    as_dict,
    parse_item_id,
    pending_items,
    provisional,
    translate_listed,
    translate_state,
)
from console.engine.sources.langgraph_threads import Thread, Translated, forget, merged, remember
from storage.db import Removal
from storage.labels import Label
from storage.records import Decision, Outcome, SyncState

PAGE_SIZE = 100  # threads per search page (the server caps limit at 1000; Agent Inbox uses 100)
PROBE_SIZE = 10  # most recently updated threads read by an idle poll
STATE_CONCURRENCY = 8  # thread states fetched at once after a change
READ_FIRST = STATE_CONCURRENCY  # new threads in a search page whose states are read before it is handed out
RUNS_CHECKED = 20  # recent runs of a thread searched for a decision already sent
BUSY_RETRY = 1.0  # seconds: the thread is running (ours or another console's resume); look again soon
WAITING_RETRY = 3.0  # seconds: a decision waits for the other actions of its request
DECISIONS_KEY = "approval_console_decisions"  # run metadata: which decisions a resume carries
LABEL_KEY_PREFIX = "approval_console_label:"  # thread metadata: one key per label
_LISTED = ["thread_id", "created_at", "updated_at", "metadata", "interrupts"]


class LangGraphSource(MemoryListingSource):
    EPOCH_PREFIX = "langgraph"
    SUCCESS = (200,)  # the LangGraph API answers 200 to everything it takes

    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, source_client(config, {} if token is None else {"x-api-key": token.value}, client))
        self._threads: dict[str, Thread] = {}
        self._held: dict[tuple[str, str], dict[int, tuple[Decision, Any]]] = {}
        self._sending: set[tuple[str, str]] = set()
        self._applied: dict[str, str] = {}  # decision id -> run id, for decisions sent together with another

    # ---------------------------------------------------------------- listing
    async def fetch(self, cursor: str | None) -> Page:
        """The whole listing as one page: what `pages` hands out as it reads, merged."""
        pages = [page async for page in self.pages(cursor)]
        return pages[-1] if pages[-1].reset else merged(pages, pages[-1].cursor)

    async def pages(self, cursor: str | None) -> AsyncGenerator[Page, None]:
        """The listing as it arrives, so the first items are stored and shown after the first request.

        One page per search page: the search answer carries each thread's interrupts, so its items are shown at once,
        provisional where an interrupt's state was never read (no node, run or time of its own), unless only a few
        are (see `_listed_page`). Then those states are read, STATE_CONCURRENCY at a time, a page of threads per page
        handed out; the last page (`has_more` false) carries the threads that left the queue.
        """
        if self._foreign(cursor):
            yield Page(reset=True)
            return
        if cursor is None:
            self._threads = {}
        elif await self._unchanged():
            yield Page(cursor=self._epoch)
            return
        listed: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            body = self._search_body(
                limit=PAGE_SIZE, offset=offset, sort_by="created_at", sort_order="asc", select=_LISTED
            )
            found = await self._search(body)
            rows = [r for r in found if r["thread_id"] not in listed]  # offsets shift as threads move
            listed.update((r["thread_id"], r) for r in rows)
            yield await self._listed_page(rows)
            if len(found) < PAGE_SIZE:
                break
            offset += PAGE_SIZE
        missing = [tid for tid in self._threads if tid not in listed]
        moved = await self._search_by_id(missing) if missing else {}  # moved while we paged: listed again by id
        listed.update(moved)
        page = await self._listed_page(list(moved.values()))
        removed = [
            Removal(item_id, "gone") for tid in missing if tid not in moved for item_id in forget(self._threads, tid)
        ]
        yield dataclasses.replace(page, removed=page.removed + removed)
        unread = [row for tid, row in listed.items() if self._threads.get(tid, Thread("")).unread]
        for start in range(0, len(unread), PAGE_SIZE):
            yield await self._read_states(unread[start : start + PAGE_SIZE])
        yield Page(cursor=self._epoch)

    async def _listed_page(self, rows: list[dict[str, Any]]) -> Page:
        """The items of listed threads whose `updated_at` moved, from the search answer's interrupts.

        When only a few of them (READ_FIRST) hold an interrupt whose state was never read, those states are read first
        and the items go out complete: in a running queue a new interrupt never changes version just after it shows.
        """
        page = await self._translated_page(rows)
        unread = [r for r in rows if self._threads.get(r["thread_id"], Thread("")).unread]
        if 0 < len(unread) <= READ_FIRST:
            page = merged([page, await self._read_states(unread)], self._epoch, has_more=True)
        return page

    async def _translated_page(self, rows: list[dict[str, Any]]) -> Page:
        changed = [r for r in rows if self._threads.get(r["thread_id"], Thread("")).updated_at != r["updated_at"]]
        known = {r["thread_id"]: self._threads.get(r["thread_id"], Thread("")) for r in changed}
        name = self.config.name

        def translate() -> list[Translated]:  # in a thread: validating a page of items takes tens of milliseconds
            done = []
            for row in changed:
                memory = known[row["thread_id"]]
                interrupts = translate_listed(name, row, memory.nodes, memory.raised)
                done.append(Translated(row, interrupts, *pending_items(name, interrupts)))
            return done

        return self._apply(await asyncio.to_thread(translate), has_more=True)

    async def _read_states(self, rows: list[dict[str, Any]]) -> Page:
        """Read the states of threads listed with provisional items: each interrupt's node, run and time."""
        gate = asyncio.Semaphore(STATE_CONCURRENCY)

        async def read(row: dict[str, Any]) -> Translated:
            async with gate:
                interrupts = await self._interrupts(row)
            if interrupts is None:
                return Translated(row, None)
            return Translated(row, interrupts, *await asyncio.to_thread(pending_items, self.config.name, interrupts))

        return self._apply(await asyncio.gather(*(read(row) for row in rows)), has_more=True, read=True)

    def _apply(self, translated: Sequence[Translated], *, has_more: bool, read: bool = False) -> Page:
        items, rejected, removed = remember(self._threads, translated, read=read)
        return Page(items=items, rejected=rejected, removed=removed, cursor=self._epoch, has_more=has_more)

    def _search_body(self, **extra: Any) -> dict[str, Any]:
        metadata: dict[str, Any] = dict(self.config.metadata)
        if self.config.graph_id:
            metadata["graph_id"] = self.config.graph_id
        if self.config.assistant_id:
            metadata["assistant_id"] = self.config.assistant_id
        body: dict[str, Any] = {"status": "interrupted", **extra}
        if metadata:
            body["metadata"] = metadata
        return body

    async def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self._call("POST", "/threads/search", json=body)
        return await asyncio.to_thread(_thread_rows, response)  # a page of interrupts is large: parsed off the loop

    async def _unchanged(self) -> bool:
        """The idle poll: nothing changed when the count is the same and the newest updates are all known.

        (Any change to an interrupted thread moves its `updated_at` to the top; a thread that left changes the count
        unless another arrived, and that one is on top.) The search's x-pagination-total only says "more follow", so
        the count is asked for separately.
        """
        if any(thread.unread for thread in self._threads.values()):
            return False
        total = _json(await self._call("POST", "/threads/count", json=self._search_body()))
        if not isinstance(total, int) or total != len(self._threads):
            return False
        body = self._search_body(
            limit=PROBE_SIZE, sort_by="updated_at", sort_order="desc", select=["thread_id", "updated_at"]
        )
        rows = await self._search(body)
        return all(
            r["thread_id"] in self._threads and self._threads[r["thread_id"]].updated_at == r["updated_at"]
            for r in rows
        )

    async def _search_by_id(self, thread_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(thread_ids), PAGE_SIZE):
            chunk = list(thread_ids[start : start + PAGE_SIZE])
            rows = await self._search(self._search_body(ids=chunk, limit=len(chunk), select=_LISTED))
            found.update((r["thread_id"], r) for r in rows)
        return found

    async def _interrupts(self, row: dict[str, Any]) -> list[Interrupt] | None:
        """The pending interrupts of one listed thread, translated; None when the thread is gone."""
        read = await self._read_state(row)
        return None if read is None else read[0]

    async def _read_state(self, row: dict[str, Any]) -> tuple[list[Interrupt], list[Interrupt]] | None:
        """A listed thread's pending interrupts as its state says, and as a listing showed them before reading it."""
        tid = row["thread_id"]
        response = await self._call("GET", f"/threads/{quote(tid, safe='')}/state", missing_ok=True)
        if response.status_code == 404:
            return None
        state = _json(response)
        if not isinstance(state, dict):
            raise SourceError("answered a thread state with the wrong shape")
        first_seen = self._threads.get(tid, Thread("")).raised
        name = self.config.name

        def translate() -> tuple[list[Interrupt], list[Interrupt]]:
            return translate_state(name, row, state, first_seen), provisional(name, row, state)

        # In a thread: the response schema's checks wait for the checker process (a hostile pattern, up to its bound).
        return await asyncio.to_thread(translate)

    # ----------------------------------------------------------------- labels
    async def send_labels(self, labels: Sequence[Label]) -> LabelAnswer:
        """Put each label on its thread's metadata, so the agent's owners find the human verdict next to the run.

        One metadata key per label (`approval_console_label:<id>`): metadata merges by key, so a resend changes
        nothing. A thread that no longer exists refuses its labels (kept locally, with the reason).
        """
        by_thread: dict[str, list[Label]] = {}
        refused: dict[str, str] = {}
        for label in labels:
            parsed = parse_item_id(label.item_id)
            if parsed is None:
                refused[label.label_id] = "not a LangGraph item id"
            else:
                by_thread.setdefault(parsed[0], []).append(label)
        sent: set[str] = set()
        for thread_id, thread_labels in by_thread.items():
            metadata = {f"{LABEL_KEY_PREFIX}{label.label_id}": label.wire_body() for label in thread_labels}
            try:
                response = await self._call(
                    "PATCH", f"/threads/{quote(thread_id, safe='')}", missing_ok=True, json={"metadata": metadata}
                )
            except SourceError as exc:  # retry what is left; keep what went through
                return LabelAnswer(
                    frozenset(sent), refused, str(exc), retry_after=exc.retry_after, auth_refused=exc.auth
                )
            if response.status_code == 404:
                refused.update((label.label_id, "the thread no longer exists") for label in thread_labels)
            else:
                sent.update(label.label_id for label in thread_labels)
        return LabelAnswer(frozenset(sent), refused)

    # ---------------------------------------------------------------- sending
    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        parsed = parse_item_id(decision.item_id)
        if parsed is None:
            return DecisionAnswer(SyncState.failed, Outcome.invalid.value, "not an item id of a LangGraph source")
        thread_id, interrupt_id, index = parsed
        key = (thread_id, interrupt_id)
        if decision.id in self._applied:
            return _applied(self._applied[decision.id])
        if key in self._sending:
            return DecisionAnswer(
                None, "busy", "another decision on this request is being sent", retry_after=BUSY_RETRY
            )
        self._sending.add(key)
        try:
            return await self._send(decision, thread_id, interrupt_id, index)
        except SourceError as exc:
            if exc.auth:
                return DecisionAnswer(None, Outcome.unauthorized.value, str(exc), auth_refused=True)
            return DecisionAnswer(None, "unreachable", str(exc), retry_after=exc.retry_after)
        finally:
            self._sending.discard(key)

    async def _send(self, decision: Decision, thread_id: str, interrupt_id: str, index: int) -> DecisionAnswer:
        path = f"/threads/{quote(thread_id, safe='')}"
        run_id = await self._run_with(decision.id, path)
        if run_id is not None:
            return _applied(run_id)
        rows = await self._search_by_id([thread_id])
        if thread_id not in rows:
            return await self._not_pending(decision, path, "the thread is no longer interrupted")
        interrupts, shown_first = await self._read_state(rows[thread_id]) or ([], [])
        pending = next((i for i in interrupts if i.interrupt_id == interrupt_id), None)
        if pending is None:
            return await self._not_pending(decision, path, "the thread no longer waits on this interrupt")
        # The version listed before its state was read is the same request (only its node, run and time were unknown).
        shown = [i for i in (pending, *shown_first) if i.interrupt_id == interrupt_id]

        def current(action: int, digest: str) -> bool:
            return action < len(pending.requests) and any(
                action < len(i.requests) and i.requests[action].payload["digest"] == digest for i in shown
            )

        if not current(index, decision.item_digest):
            return DecisionAnswer(
                SyncState.conflict,
                Outcome.stale.value,
                "the interrupt changed after you saw it; the new version is in the queue",
            )
        try:
            answer = await asyncio.to_thread(pending.requests[index].answer, decision)  # checks the edit: as above
        except InvalidDecision as exc:
            return _invalid(str(exc))
        key = (thread_id, interrupt_id)
        held = self._held.setdefault(key, {})
        held[index] = (decision, answer)
        for other, (earlier, _) in list(held.items()):  # a sibling decided on an older version cannot go out
            if not current(other, earlier.item_digest):
                del held[other]
        waiting = len(pending.requests) - len(held)
        if waiting:
            return DecisionAnswer(
                None,
                "waiting",
                f"waiting for decisions on {waiting} more action(s) of the same request; the agent gets them together",
                retry_after=WAITING_RETRY,
            )
        resume = pending.combine([held[i][1] for i in range(len(pending.requests))])
        if pending.response_schema is not None:
            problem = await asyncio.to_thread(schema_problem, resume, pending.response_schema)
            if problem is not None:
                self._held.pop(key, None)
                return _invalid(f"the answer does not match the interrupt's response schema: {problem}")
        carried = [held[i][0].id for i in range(len(pending.requests))]
        result = await self._resume(path, rows[thread_id], interrupt_id, resume, carried)
        if result.state is SyncState.applied:
            self._held.pop(key, None)
            run_id = str((result.response or {}).get("run_id", ""))
            self._applied.update(dict.fromkeys(carried, run_id))
        return result

    async def _run_with(self, decision_id: str, path: str) -> str | None:
        """The id of a run this console already started with the decision, if any (a resend after a crash)."""
        response = await self._call("GET", f"{path}/runs", params={"limit": RUNS_CHECKED}, missing_ok=True)
        runs = _json(response) if response.status_code == 200 else []
        for run in runs if isinstance(runs, list) else []:
            metadata = run.get("metadata") if isinstance(run, dict) else None
            carried = metadata.get(DECISIONS_KEY) if isinstance(metadata, dict) else None
            if isinstance(carried, list) and decision_id in carried:
                return str(run.get("run_id", ""))
        return None

    async def _not_pending(self, decision: Decision, path: str, why: str) -> DecisionAnswer:
        thread_id = path.rsplit("/", 1)[-1]
        rows = await self._search({"ids": [thread_id], "limit": 1, "select": ["thread_id", "status"]})
        status = rows[0].get("status") if rows else None
        if status == "busy":  # a run is under way: maybe another console's resume; look again when it ends
            return DecisionAnswer(None, "busy", "the thread is running; checking again", retry_after=BUSY_RETRY)
        if status is None:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "the source no longer has this thread")
        return DecisionAnswer(
            SyncState.conflict,
            Outcome.conflict.value,
            f"{why} (thread {status}): it was answered elsewhere or moved on; nothing was sent",
            {"thread_status": status},
        )

    async def _resume(
        self, path: str, row: dict[str, Any], interrupt_id: str, resume: Any, carried: list[str]
    ) -> DecisionAnswer:
        metadata = as_dict(row.get("metadata"))
        assistant = metadata.get("assistant_id") or self.config.assistant_id or metadata.get("graph_id")
        if not isinstance(assistant, str) or not assistant:
            assistant = self.config.graph_id
        if not assistant:
            return _invalid("the thread names no assistant or graph to resume; set assistant_id in the config")
        body = {
            "assistant_id": assistant,
            "command": {"resume": {interrupt_id: resume}},
            "multitask_strategy": "reject",
            "metadata": {DECISIONS_KEY: carried},
        }
        try:
            response = await self._client.post(f"{path}/runs", json=body)
        except httpx.HTTPError as exc:
            # The run may or may not exist now: the next attempt looks for it by decision id before resuming.
            return DecisionAnswer(None, "unreachable", f"{type(exc).__name__}: {exc}"[:200])
        answer = classify(response)
        status = answer.status
        reply = _json(response)
        reply = reply if isinstance(reply, dict) else None
        if status == 200:
            return DecisionAnswer(SyncState.applied, Outcome.applied.value, "resumed", reply)
        if status == 409:  # multitask_strategy reject: a run holds the thread; the next look tells whose it was
            return DecisionAnswer(
                None, "busy", "the thread is running another resume; checking again", reply, BUSY_RETRY
            )
        if answer.kind is Kind.auth:
            return DecisionAnswer(
                None, Outcome.unauthorized.value, f"refused our credentials ({status})", reply, auth_refused=True
            )
        if status == 404:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "the source no longer has this thread")
        if answer.busy:
            return busy_answer(answer, reply)
        return DecisionAnswer(SyncState.failed, f"http_{status}", f"the source refused the resume ({status})", reply)


def _thread_rows(response: httpx.Response) -> list[dict[str, Any]]:
    rows = _json(response)
    if not isinstance(rows, list) or not all(_is_thread_row(r) for r in rows):
        raise SourceError("answered a thread search with the wrong shape")
    return rows


def _is_thread_row(raw: Any) -> bool:
    return (
        isinstance(raw, dict) and isinstance(raw.get("thread_id"), str) and isinstance(raw.get("updated_at", ""), str)
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise SourceError("answered with invalid JSON") from exc


def _applied(run_id: str) -> DecisionAnswer:
    return DecisionAnswer(SyncState.applied, Outcome.applied.value, "resumed", {"run_id": run_id})


def _invalid(detail: str) -> DecisionAnswer:
    return DecisionAnswer(SyncState.conflict, Outcome.invalid.value, f"refused here, nothing was sent: {detail}")
