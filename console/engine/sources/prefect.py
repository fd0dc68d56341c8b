"""Prefect 3 as a source: flow runs paused for input (`pause_flow_run(wait_for_input=...)`) become queue items.

This module talks HTTP to Prefect's REST API (`url` is the API URL, e.g. `http://127.0.0.1:4200/api`);
prefect_payloads beside it turns paused runs into items and decisions into run inputs (pure, tested without a server).

Listing. `POST /flow_runs/filter` (state PAUSED, the configured tags), page by page; a pause's schema and description
(`GET /flow_runs/{id}/input/{key}`) are read once per flow run and state, and flow names once per flow. Prefect can
neither sort nor filter flow runs by update time, so an idle poll asks two small questions instead: how many runs are
paused (`POST /flow_runs/count`), and which flow-run events the server recorded since the last look (`POST
/events/filter`, heartbeats excluded, ids remembered over an overlap window so an event recorded late is still seen).
Only when either shows something new is the queue listed again. A server without the events API is listed every poll.

Token: a Prefect Cloud API key (sent as a bearer token) or a server's auth string `user:password` (HTTP Basic).

Sending. The adapter reads the flow run first. Still paused on this pause: the digest is checked (stale otherwise) and
`POST /flow_runs/{id}/resume` carries the run input (prefect_payloads.run_input); the server checks it against the
RunInput schema (REJECT: invalid, with its reason; past `pause_timeout`: expired). Not paused on it any more (a resend
after a crash, or another console or the Prefect UI answered first): the stored answer (`GET
/flow_runs/{id}/input/{response key}`) tells applied (ours: its `decision_id`) from conflict (someone else's); no
answer means expired (timed out), withdrawn (cancelled) or conflict (the run moved on). Nothing is resumed twice.

Labels go back as markdown artifacts of their flow run, one per label, never stored twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from console.engine.config import SourceConfig
from console.engine.secrets import Token
from console.engine.sources.answers import (
    Kind,
    busy_answer,
    classify,
    credentials_answer,
    json_object,
    refused_here_answer,
    send_to_parsed,
    stale_answer,
)
from console.engine.sources.base import (
    DecisionAnswer,
    LabelAnswer,
    Page,
    Rejected,
    SourceError,
    labels_by_target,
    labels_cut_short,
)
from console.engine.sources.http import MemoryListingSource, source_client
from console.engine.sources.prefect_payloads import (
    PAUSED_TYPES,
    InvalidDecision,
    PausedRun,
    answered_by_us,
    authorization,
    deadline_passed,
    input_value,
    item_payload,
    label_artifact,
    labels_held,
    parse_item_id,
    paused_run,
    run_input,
    run_items,
    ui_base,
)
from storage.db import Removal
from storage.labels import Label
from storage.records import Decision, Item, Outcome, SyncState

PAGE_SIZE = 200  # flow runs per filter page (Prefect's default limit caps a page at 200)
INPUT_CONCURRENCY = 8  # pause inputs read at once after a change
EVENT_OVERLAP = timedelta(seconds=15)  # events recorded up to this late are still noticed (seen: 1-2 s)
EVENTS_LIMIT = 50  # the most Prefect's events API returns at once
BUSY_RETRY = 1.0  # seconds: the server asked us to wait (a resume under way)


class PrefectSource(MemoryListingSource):
    EPOCH_PREFIX = "prefect"

    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        auth = {} if token is None else {"Authorization": authorization(token.value)}
        super().__init__(config, source_client(config, auth, client))
        self._ui = config.ui_url or ui_base(config.url)
        self._runs: dict[str, str] = {}  # paused flow run id -> state id, as last listed
        self._items: dict[str, Item] = {}  # item id -> item, as last listed
        self._inputs: dict[tuple[str, str], tuple[Any, Any]] = {}  # (flow run, state) -> (schema, description)
        self._flows: dict[str, str] = {}  # flow id -> name
        self._deadlines: dict[str, str | None] = {}  # item id -> pause_timeout, for telling a timeout
        self._events_since: datetime | None = None  # None: the server has no events API; list every poll
        self._seen_events: dict[str, datetime] = {}

    # ---------------------------------------------------------------- listing
    async def fetch(self, cursor: str | None) -> Page:
        if self._foreign(cursor):
            return Page(reset=True)
        if cursor is None:
            self._runs, self._items = {}, {}
        elif await self._unchanged():
            return Page(cursor=self._epoch)
        await self._mark_events()  # before listing: anything recorded after this is news to the next poll
        rows = await self._list_paused()
        runs: list[PausedRun] = []
        rejected: list[Rejected] = []
        listed: dict[str, str] = {}
        for row in rows:
            parsed = paused_run(row)
            if isinstance(parsed, Rejected):
                run_id = row.get("id") if isinstance(row, dict) else None
                if isinstance(run_id, str):
                    listed[run_id] = _state_id(row)
                if not isinstance(run_id, str) or self._runs.get(run_id) != listed.get(run_id):
                    rejected.append(parsed)
                continue
            listed[parsed.flow_run_id] = parsed.state_id
            runs.append(parsed)
        await self._read_inputs([r for r in runs if r.cache_key not in self._inputs])
        await self._read_flow_names({r.flow_id for r in runs} - set(self._flows))
        payloads = []
        for run in runs:
            schema, description = self._inputs[run.cache_key]
            payloads.append(
                item_payload(self.config.name, run, self._flows.get(run.flow_id, ""), schema, description, self._ui)
            )
        fresh, bad = run_items(self.config.name, payloads, self.config.max_item_bytes)
        now = {item.id: item for item in fresh}
        changed_runs = {run.item_id for run in runs if self._runs.get(run.flow_run_id) != run.state_id}
        rejected += [r for r in bad if r.item_id in changed_runs]
        removed = [Removal(item_id, "gone") for item_id in self._items if item_id not in now]
        items = [item for item in fresh if self._items.get(item.id) != item]
        self._runs, self._items = listed, now
        # Deadlines of the pauses listed now, and of those that just left (a decision on them may still be on its way).
        gone = {removal.item_id for removal in removed}
        kept = {item_id: when for item_id, when in self._deadlines.items() if item_id in gone}
        self._deadlines = kept | {run.item_id: run.pause_timeout for run in runs}
        live = set(listed.items())
        self._inputs = {key: value for key, value in self._inputs.items() if key in live}
        return Page(items=items, rejected=rejected, removed=removed, cursor=self._epoch)

    def _filter(self) -> dict[str, Any]:
        flow_runs: dict[str, Any] = {"state": {"type": {"any_": list(PAUSED_TYPES)}}}
        if self.config.tags:
            flow_runs["tags"] = {"all_": list(self.config.tags)}
        return {"flow_runs": flow_runs}

    async def _list_paused(self) -> list[Any]:
        rows: list[Any] = []
        offset = 0
        while True:
            body = {**self._filter(), "sort": "ID_DESC", "limit": PAGE_SIZE, "offset": offset}
            page = _json(await self._call("POST", "/flow_runs/filter", json=body))
            if not isinstance(page, list):
                raise SourceError("answered a flow run filter with the wrong shape (not a list)")
            rows += page
            if len(page) < PAGE_SIZE:
                return rows
            offset += PAGE_SIZE

    async def _read_inputs(self, runs: list[PausedRun]) -> None:
        gate = asyncio.Semaphore(INPUT_CONCURRENCY)

        async def read(run: PausedRun) -> None:
            async with gate:
                schema = await self._input(run.flow_run_id, run.schema_key)
                description = await self._input(run.flow_run_id, run.description_key)
            self._inputs[run.cache_key] = (schema, description)

        await asyncio.gather(*(read(run) for run in runs))

    async def _input(self, flow_run_id: str, key: str) -> Any:
        """One flow-run input's JSON value; None when it does not exist."""
        path = f"/flow_runs/{quote(flow_run_id, safe='')}/input/{quote(key, safe='')}"
        response = await self._call("GET", path, missing_ok=True)
        return None if response.status_code == 404 else input_value(_json(response))

    async def _read_flow_names(self, flow_ids: set[str]) -> None:
        wanted = sorted(f for f in flow_ids if f)
        for start in range(0, len(wanted), PAGE_SIZE):
            chunk = wanted[start : start + PAGE_SIZE]
            body = {"flows": {"id": {"any_": chunk}}, "limit": len(chunk)}
            flows = _json(await self._call("POST", "/flows/filter", json=body))
            for flow in flows if isinstance(flows, list) else []:
                if isinstance(flow, dict) and isinstance(flow.get("id"), str) and isinstance(flow.get("name"), str):
                    self._flows[flow["id"]] = flow["name"]

    async def _unchanged(self) -> bool:
        """The idle poll: the same number of paused runs, and no flow-run event this adapter has not seen."""
        count = _json(await self._call("POST", "/flow_runs/count", json=self._filter()))
        if not isinstance(count, int) or count != len(self._runs):
            return False
        return self._events_since is not None and not await self._new_events()

    async def _new_events(self) -> bool:
        assert self._events_since is not None
        body = {
            "filter": {
                "occurred": {"since": self._events_since.isoformat()},
                "event": {"prefix": ["prefect.flow-run."], "exclude_name": ["prefect.flow-run.heartbeat"]},
                "order": "DESC",
            },
            "limit": EVENTS_LIMIT,
        }
        response = await self._call("POST", "/events/filter", missing_ok=True, json=body)
        page = json_object(response) if response.status_code == 200 else None
        events = page.get("events") if page is not None else None
        if not isinstance(events, list):
            self._events_since = None  # no usable events API here: list every poll
            return True
        new = False
        for event in events:
            event_id = event.get("id") if isinstance(event, dict) else None
            if isinstance(event_id, str) and event_id not in self._seen_events:
                new = True
                self._seen_events[event_id] = _occurred(event) or self._events_since
        server_now = _server_time(response)
        if server_now is not None:
            self._events_since = max(self._events_since, server_now - EVENT_OVERLAP)
            self._seen_events = {k: v for k, v in self._seen_events.items() if v >= self._events_since}
        return new

    async def _mark_events(self) -> None:
        """Remember the events recorded so far (the listing that follows reflects them) and where to look next."""
        if self._events_since is None:
            self._events_since = datetime.now(UTC) - EVENT_OVERLAP  # replaced by the server's clock below
        try:
            await self._new_events()
        except SourceError:
            self._events_since = None

    # ----------------------------------------------------------------- labels
    async def send_labels(self, labels: Sequence[Label]) -> LabelAnswer:
        """Each label becomes a markdown artifact of its flow run (the run's Artifacts tab in the Prefect UI), marked
        with the label id in its metadata: a label the run already holds is not stored again. A flow run that no
        longer exists refuses its labels (kept locally, with the reason)."""
        by_run, refused = labels_by_target(labels, parse_item_id, "Prefect")
        sent: set[str] = set()
        for run_id, run_labels in by_run.items():
            try:
                response = await self._call("GET", f"/flow_runs/{quote(run_id, safe='')}", missing_ok=True)
                if response.status_code == 404:
                    refused.update((label.label_id, "the flow run no longer exists") for label in run_labels)
                    continue
                held = await self._labels_held(run_id)
                for label in run_labels:
                    if label.label_id not in held:
                        await self._call("POST", "/artifacts/", json=label_artifact(run_id, label))
                    sent.add(label.label_id)
            except SourceError as exc:
                return labels_cut_short(sent, refused, exc)
        return LabelAnswer(frozenset(sent), refused)

    async def _labels_held(self, run_id: str) -> set[str]:
        held: set[str] = set()
        offset = 0
        while True:
            body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": PAGE_SIZE, "offset": offset}
            page = _json(await self._call("POST", "/artifacts/filter", json=body))
            held |= labels_held(page)
            if not isinstance(page, list) or len(page) < PAGE_SIZE:
                return held
            offset += PAGE_SIZE

    # ---------------------------------------------------------------- sending
    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        return await send_to_parsed(decision, parse_item_id, self._send, "a Prefect")

    async def _send(self, decision: Decision, parsed: tuple[str, str]) -> DecisionAnswer:
        run_id, response_key = parsed
        path = f"/flow_runs/{quote(run_id, safe='')}"
        response = await self._call("GET", path, missing_ok=True)
        if response.status_code == 404:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "the source no longer has this flow run")
        row = json_object(response)
        if row is None:
            raise SourceError("answered a flow run with the wrong shape")
        run = paused_run(row)
        if isinstance(run, Rejected) or run.response_key != response_key:
            return await self._not_paused(decision, row, response_key)
        if run.cache_key not in self._inputs:
            await self._read_inputs([run])
        if run.flow_id not in self._flows:
            await self._read_flow_names({run.flow_id})
        schema, description = self._inputs[run.cache_key]
        payload = item_payload(self.config.name, run, self._flows.get(run.flow_id, ""), schema, description, self._ui)
        if isinstance(payload, Rejected):
            return refused_here_answer(payload.reason)
        if payload["digest"] != decision.item_digest:
            return stale_answer("the paused flow run changed after you saw it; the new version is in the queue")
        try:
            body = run_input(decision, schema)
        except InvalidDecision as exc:
            return refused_here_answer(str(exc))
        return await self._resume(decision, path, row, response_key, body)

    async def _resume(
        self, decision: Decision, path: str, row: dict[str, Any], response_key: str, body: dict[str, Any]
    ) -> DecisionAnswer:
        try:
            response = await self._client.post(f"{path}/resume", json={"run_input": body})
        except httpx.HTTPError as exc:
            # Resumed or not: the next attempt reads the flow run and its stored answer before sending anything.
            return DecisionAnswer(None, "unreachable", f"{type(exc).__name__}: {exc}"[:200])
        answer = classify(response)
        reply = json_object(response)
        if answer.kind is Kind.auth:
            return credentials_answer(answer, reply)
        if answer.status == 404:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "the source no longer has this flow run")
        if answer.busy:
            return busy_answer(answer, reply)
        if answer.kind is not Kind.ok or reply is None:
            return DecisionAnswer(
                None, f"http_{answer.status}", f"the source answered the resume oddly ({answer.status})", reply
            )
        status = reply.get("status")
        details = reply.get("details")
        reason = str(details.get("reason", ""))[:2000] if isinstance(details, dict) else ""
        state = reply.get("state")
        state_type = state.get("type") if isinstance(state, dict) else None
        if status == "ACCEPT":
            return DecisionAnswer(SyncState.applied, Outcome.applied.value, "resumed", reply)
        if status == "REJECT" and state_type in PAUSED_TYPES:
            return DecisionAnswer(
                SyncState.conflict, Outcome.invalid.value, f"Prefect refused the input: {reason}", reply
            )
        if status == "REJECT":  # the transition failed the run instead: the pause timed out
            return DecisionAnswer(SyncState.conflict, Outcome.expired.value, f"the pause timed out: {reason}", reply)
        if status == "ABORT":  # no longer paused: someone answered first, or the run moved on
            return await self._not_paused(decision, row, response_key, sent=body)
        return DecisionAnswer(None, "busy", f"Prefect asked to wait ({status}): {reason}"[:200], reply, BUSY_RETRY)

    async def _not_paused(
        self, decision: Decision, row: dict[str, Any], response_key: str, sent: dict[str, Any] | None = None
    ) -> DecisionAnswer:
        """The run no longer waits on this pause: whose answer it took, if any, says which outcome this is."""
        run_id = str(row.get("id", ""))
        stored = await self._input(run_id, response_key)
        if sent is None:
            sent = await self._input_we_would_send(decision, run_id, response_key)
        if stored is not None:
            if answered_by_us(stored, decision.id, sent):
                return DecisionAnswer(SyncState.applied, Outcome.applied.value, "resumed (answered earlier)", stored)
            who = stored.get("reviewer") if isinstance(stored, dict) else None
            by = f" by {str(who)[:80]}" if isinstance(who, str) and who else ""
            return DecisionAnswer(
                SyncState.conflict,
                Outcome.conflict.value,
                f"the flow run was answered elsewhere{by} first; nothing was sent",
                {"answer": stored, "decided_by": who} if by else {"answer": stored},
            )
        state = row.get("state")
        state = state if isinstance(state, dict) else {}
        state_type = str(state.get("type", row.get("state_type", "")))
        message = str(state.get("message") or "")[:200]
        if state_type in ("CANCELLED", "CANCELLING"):
            return DecisionAnswer(SyncState.conflict, Outcome.withdrawn.value, "the flow run was cancelled")
        if "never resumed" in message or deadline_passed(self._deadlines.get(decision.item_id), datetime.now(UTC)):
            detail = f"the pause timed out ({message or state_type})"
            return DecisionAnswer(SyncState.conflict, Outcome.expired.value, detail)
        return DecisionAnswer(
            SyncState.conflict,
            Outcome.conflict.value,
            f"the flow run moved on without this answer (now {state_type or 'unknown'}); nothing was sent",
        )

    async def _input_we_would_send(self, decision: Decision, run_id: str, response_key: str) -> dict[str, Any] | None:
        """The run input this decision makes, for a model without `decision_id` (its schema, by Prefect's key names)."""
        if not response_key.endswith("-response"):
            return None
        schema = await self._input(run_id, response_key.removesuffix("-response") + "-schema")
        if not isinstance(schema, dict):
            return None
        try:
            return run_input(decision, schema)
        except InvalidDecision:
            return None


def _state_id(row: Any) -> str:
    state = row.get("state") if isinstance(row, dict) else None
    return str(state.get("id", "")) if isinstance(state, dict) else ""


def _occurred(event: dict[str, Any]) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(event.get("occurred")))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _server_time(response: httpx.Response) -> datetime | None:
    try:
        when = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise SourceError("answered with invalid JSON") from exc
