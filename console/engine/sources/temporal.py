"""Temporal workflows as a source: runs that wait for a human (PROTOCOL.md, "Temporal workflows") become queue items.

This module talks to Temporal's HTTP API (a cluster frontend's HTTP port, or `temporal server start-dev --http-port N`);
temporal_payloads beside it reads the answers (pure, tested without a server). The console needs no Temporal SDK.

Listing. `GET /api/v1/namespaces/{ns}/workflows?query=ApprovalState = 'waiting' AND ExecutionStatus = 'Running'`:
each execution carries its memo, so the request comes with the listing and nothing is fetched per item. An idle poll
is two small requests: the count of waiting runs, and the runs whose `ApprovalSince` is newer than the newest seen.
When the count is what those explain, only the new runs are read; otherwise (a run stopped waiting) the whole list is
read again, unchanged runs are not translated again, and each run that left is described (`GET .../workflows/{id}`) so
its removal says why: decided (by whom), expired, or the run ended. The cursor names this process's memory of the
server, so after a restart the poller lists everything once (a snapshot).

Sending. The adapter describes the run first: a run that has ended answers from its own record (our decision applied
before a crash: applied; another's: conflict, by whom; the deadline: expired; otherwise gone). For a waiting run it
checks the digest the operator saw against the request as it is now (stale, nothing sent), the verdict and an edit
against the request's schema (invalid, nothing sent), then sends `POST .../workflows/{id}/update/approval_decision`
with the decision id as the update id: a resend gets the stored outcome, the workflow's validator refuses a late,
stale or malformed decision with the console's outcome name, and an ended run answers 404.

More time. Where the request carries an `extend` offer, `extend` checks the digest the operator saw the same way, then
sends `POST .../update/approval_extend`; the workflow moves its deadline and answers with the new request, which
becomes the new version of the item (temporal_extend reads the answers).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from console.engine.config import SourceConfig, token_fix
from console.engine.schema_check import schema_problem
from console.engine.secrets import Token
from console.engine.sources.answers import (
    Kind,
    brief,
    busy_answer,
    classify,
    credentials_answer,
    json_object,
    odd_answer,
    read_object,
    refused_here_answer,
    send_to_parsed,
    stale_answer,
    timeout_answer,
)
from console.engine.sources.base import DecisionAnswer, ExtendAnswer, Page, Rejected, SourceError
from console.engine.sources.http import (
    MemoryListingSource,
    Remembered,
    forget_unlisted,
    reaching,
    remember_translated,
    source_client,
)
from console.engine.sources.native_payloads import extend_refused
from console.engine.sources.temporal_extend import closed_extend_answer, extend_body, extended_execution
from console.engine.sources.temporal_payloads import (
    NO_SHORTHAND,
    RUNNING,
    WAITING_QUERY,
    Execution,
    Pending,
    closed_answer,
    parse_item_id,
    read_count,
    read_execution,
    read_list,
    removal_detail,
    removal_state,
    translate,
    update_answer,
    update_body,
)
from console.integrations.temporal_convention import EXTEND_UPDATE, SINCE_ATTRIBUTE, UPDATE_NAME
from storage.records import Decision, Item, Outcome, SyncState, Verdict

PAGE_SIZE = 1000  # executions per list page (the server's default cap)


class TemporalSource(MemoryListingSource):
    EPOCH_PREFIX = "temporal"

    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        headers = {"Accept": NO_SHORTHAND}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        super().__init__(config, source_client(config, headers, client))
        self._base = f"/api/v1/namespaces/{quote(config.namespace, safe='')}"
        self._runs: dict[tuple[str, str], Remembered[Execution]] = {}
        self._since = ""  # the newest ApprovalSince listed

    # ---------------------------------------------------------------- listing
    async def fetch(self, cursor: str | None) -> Page:
        if self._foreign(cursor):
            return Page(reset=True)
        if cursor is None:
            self._runs, self._since = {}, ""
            return await self._page(*await self._list(WAITING_QUERY), complete=True)
        count = read_count(await self._get(f"{self._base}/workflow-count", {"query": WAITING_QUERY}))
        newer: list[Execution] = []
        rejected: list[Rejected] = []
        if self._since:
            newer, rejected = await self._list(f"{WAITING_QUERY} AND {SINCE_ATTRIBUTE} > '{self._since}'")
        arrived = {(e.workflow_id, e.run_id) for e in newer} - self._runs.keys()
        if count == len(self._runs) + len(arrived) + len(rejected):
            return await self._page(newer, rejected, complete=False)  # nothing left: only the new runs are read
        return await self._page(*await self._list(WAITING_QUERY), complete=True)

    async def _page(self, listed: list[Execution], rejected: list[Rejected], *, complete: bool) -> Page:
        changed = [e for e in listed if not self._known(e)]
        results = await asyncio.to_thread(self._translate_all, changed)
        translated = [
            ((e.workflow_id, e.run_id), e, r.item if isinstance(r, Pending) else r)
            for e, r in zip(changed, results, strict=True)
        ]
        items, bad, removed = remember_translated(self._runs, translated, "the workflow moved on to another request")
        rejected += bad
        self._since = max([self._since, *(e.since for e in changed)])
        if complete:
            listed_keys = {(e.workflow_id, e.run_id) for e in listed}
            removed += await forget_unlisted(self._runs, listed_keys, lambda key: self._describe(*key), _why_ended)
        return Page(items=items, rejected=rejected, removed=removed, cursor=self._epoch)

    def _known(self, execution: Execution) -> bool:
        before = self._runs.get((execution.workflow_id, execution.run_id))
        return (
            before is not None and before.listed.since == execution.since and before.listed.request == execution.request
        )

    def _translate_all(self, executions: list[Execution]) -> list[Pending | Rejected]:
        # In a thread: checking a page of items takes tens of milliseconds, keys stay prompt.
        return [self._translate(execution) for execution in executions]

    def _translate(self, execution: Execution) -> Pending | Rejected:
        config = self.config
        return translate(
            config.name,
            execution,
            namespace=config.namespace,
            ui_url=config.ui_url,
            max_item_bytes=config.max_item_bytes,
        )

    async def _list(self, query: str) -> tuple[list[Execution], list[Rejected]]:
        executions: list[Execution] = []
        rejected: list[Rejected] = []
        token = ""
        while True:
            params = {"query": query, "pageSize": str(PAGE_SIZE)}
            if token:
                params["nextPageToken"] = token
            try:
                page, bad, token = read_list(await self._get(f"{self._base}/workflows", params))
            except ValueError as exc:
                raise SourceError(str(exc)) from exc
            executions += page
            rejected += bad
            if not token:
                return executions, rejected

    async def _describe(self, workflow_id: str, run_id: str) -> Execution | None:
        """The run as Temporal describes it now; None when it no longer has it."""
        path = f"{self._base}/workflows/{quote(workflow_id, safe='')}"
        body = await self._get(path, {"execution.runId": run_id}, missing_ok=True)
        return None if body is None else read_execution(body.get("workflowExecutionInfo"))

    async def _get(self, path: str, params: dict[str, str], *, missing_ok: bool = False) -> Any:
        with reaching(self.config):
            response = await self._client.get(path, params=params)
        if missing_ok and response.status_code == 404:
            return None
        return read_object(response, f"GET {path}", fix=f"; fix: {token_fix(self.config.name)}")

    # ---------------------------------------------------------------- sending
    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        return await send_to_parsed(decision, parse_item_id, self._send, "a Temporal")

    async def _send(self, decision: Decision, parsed: tuple[str, str, str]) -> DecisionAnswer:
        workflow_id, run_id, _ = parsed
        execution = await self._describe(workflow_id, run_id)
        if execution is None or execution.status != RUNNING:
            return closed_answer(decision, execution)
        request_digest = ""  # the run waits on another request now: the workflow answers from its record, or stale
        current = await asyncio.to_thread(self._translate, execution)
        if isinstance(current, Pending) and current.item.id == decision.item_id:
            if current.item.digest != decision.item_digest:
                return stale_answer()
            problem = await asyncio.to_thread(_local_problem, current.item, decision)
            if problem is not None:
                return refused_here_answer(problem)
            request_digest = current.request_digest
        return await self._update(decision, workflow_id, run_id, request_digest)

    async def _update(self, decision: Decision, workflow_id: str, run_id: str, request_digest: str) -> DecisionAnswer:
        path = f"{self._base}/workflows/{quote(workflow_id, safe='')}/update/{UPDATE_NAME}"
        try:
            async with asyncio.timeout(self.config.timeout):  # overall, not per read
                response = await self._client.post(
                    path, json=update_body(decision, workflow_id, run_id, request_digest)
                )
        except TimeoutError:
            return timeout_answer(self.config.timeout)
        except httpx.HTTPError as exc:
            return DecisionAnswer(None, "unreachable", brief(exc))
        answer = classify(response)
        body = json_object(response)
        if answer.status == 200:
            return update_answer(body)
        if answer.status == 404:  # the run has ended (or never was): its own record says how
            return closed_answer(decision, await self._describe(workflow_id, run_id))
        if answer.kind is Kind.auth:
            return credentials_answer(answer, body)
        if answer.busy:
            return busy_answer(answer, body)
        message = str((body or {}).get("message", ""))[:200]
        if answer.status == 400:  # InvalidArgument: the request itself, never taken
            return DecisionAnswer(SyncState.failed, "http_400", f"Temporal refused the update: {message}", body)
        return odd_answer(answer, body)

    # ---------------------------------------------------------------- more time
    async def extend(self, item: Item, seconds: int, operator: str) -> ExtendAnswer:
        """The `approval_extend` Update (PROTOCOL.md, "Temporal workflows"): the workflow moves its own deadline and
        answers with the new request, translated here as a listing would translate it. Bound to the version shown."""
        parsed = parse_item_id(item.id)
        if parsed is None:
            return ExtendAnswer(None, "not sent: not a Temporal item id")
        workflow_id, run_id, _ = parsed
        try:
            async with asyncio.timeout(self.config.timeout):  # overall, not per read
                return await self._extend(item, seconds, operator, workflow_id, run_id)
        except TimeoutError:
            return ExtendAnswer(None, f"no answer within {self.config.timeout:g} s")
        except SourceError as exc:
            return ExtendAnswer(None, f"cannot read the workflow run: {exc}")
        except httpx.HTTPError as exc:
            return ExtendAnswer(None, f"cannot reach the source: {brief(exc)}")

    async def _extend(self, item: Item, seconds: int, operator: str, workflow_id: str, run_id: str) -> ExtendAnswer:
        execution = await self._describe(workflow_id, run_id)
        if execution is None or execution.status != RUNNING:
            return closed_extend_answer(execution)
        current = await asyncio.to_thread(self._translate, execution)
        request_digest = ""  # the run waits on another request now: the workflow refuses (conflict or stale)
        if isinstance(current, Pending) and current.item.id == item.id:
            if current.item.digest != item.digest:
                return extend_refused(Outcome.stale.value) or ExtendAnswer(None, Outcome.stale.value)
            request_digest = current.request_digest
        path = f"{self._base}/workflows/{quote(workflow_id, safe='')}/update/{EXTEND_UPDATE}"
        ask = extend_body(workflow_id, run_id, request_digest, seconds, operator)
        response = await self._client.post(path, json=ask)
        body = json_object(response)
        if response.status_code == 404:
            return closed_extend_answer(await self._describe(workflow_id, run_id))
        if response.status_code != 200:
            message = str((body or {}).get("message", ""))[:200]
            return ExtendAnswer(None, f"Temporal answered {response.status_code}; nothing changed {message}".strip())
        moved = extended_execution(body, execution)
        if isinstance(moved, ExtendAnswer):
            return moved
        now = await asyncio.to_thread(self._translate, moved)
        if not isinstance(now, Pending) or now.item.id != item.id:
            why = now.reason if isinstance(now, Rejected) else "another item"
            return ExtendAnswer(None, f"the workflow answered with a request this console cannot use ({why})")
        return ExtendAnswer(now.item, "extended")


def _why_ended(execution: Execution | None) -> tuple[str, str]:
    return removal_state(execution), removal_detail(execution)


def _local_problem(item: Item, decision: Decision) -> str | None:
    """What the workflow would refuse, found before anything is sent: a verdict not offered, an edit off its schema."""
    if not item.allows(decision.verdict):
        return f"the request does not allow {decision.verdict.value}"
    if decision.verdict is Verdict.edit and item.args_schema is not None:
        problem = schema_problem(decision.edited, item.args_schema)
        if problem is not None:
            return f"the edit breaks the request's schema: {problem}"
    return None
