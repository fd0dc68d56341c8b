"""Apache Airflow 3.1+ as a source: tasks waiting for a human (HITL details) become queue items.

This module talks to Airflow's REST API v2 (the API server, `airflow api-server` or `airflow standalone`);
airflow_payloads beside it reads the answers and says how Airflow's options map onto the console's decisions (pure,
tested without a server).

Credentials. The source's secret (keyring or environment, like every source's token) is either `USERNAME:PASSWORD`
of an Airflow user, exchanged for a JWT at `POST /auth/token` (again whenever Airflow refuses the JWT as expired), or a
JWT itself (no ':'), sent as it is. The user is who Airflow records as the responder; the console knows it from the
username or the JWT's `sub`, to recognise its own answer after a crash. Neither the secret nor the JWT is logged.

Listing. `GET /api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false&order_by=created_at`, 100 a page. An idle
poll is two small requests: the count of waiting details (`limit=0`), and the details created after the newest seen
(`created_at_gt`). When the count is what those explain, only the new details are read; otherwise (one was answered,
timed out or cleared) the whole list is read again, unchanged details are not translated again, and each one that
left is read (`GET .../hitlDetails` of its task) so its removal says why: answered (by whom), timed out, or gone.
The cursor names this process's memory of the server, so after a restart the poller lists everything once.

Sending. The adapter reads the task's detail first: answered already, it is ours (a resend after a crash: applied) or
another's (conflict, by whom Airflow says); waiting, the digest the operator saw is checked against the detail as it
is now (stale, nothing sent), the answer against the request's schema (invalid, nothing sent), then
`PATCH .../taskInstances/{task}/{map_index}/hitlDetails` sends it. Airflow's 409 is a conflict (read back: by whom),
400 invalid with its reason, 403 "not a respondent" is not yours (final, outcome `unauthorized`), 404 gone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

import httpx

from console.engine.config import SourceConfig, token_fix
from console.engine.schema_check import schema_problem
from console.engine.secrets import Token
from console.engine.sources.airflow_payloads import (
    Detail,
    Pending,
    answer_for,
    answered_answer,
    parse_item_id,
    read_collection,
    read_detail,
    refusal_answer,
    translate,
)
from console.engine.sources.answers import (
    Kind,
    busy_answer,
    classify,
    credentials_answer,
    json_object,
    odd_answer,
    read_object,
    read_refused,
    refused_here_answer,
    send_to_parsed,
    stale_answer,
    timeout_answer,
)
from console.engine.sources.base import DecisionAnswer, Page, Rejected, SourceError
from console.engine.sources.http import (
    MemoryListingSource,
    Remembered,
    forget_unlisted,
    reaching,
    remember_translated,
    source_client,
)
from storage.records import Decision, Outcome, SyncState, Verdict

LISTING = "/api/v2/dags/~/dagRuns/~/hitlDetails"
PAGE_SIZE = 100  # Airflow's default maximum_page_limit
Key = tuple[str, str, str, int]


class AirflowSource(MemoryListingSource):
    EPOCH_PREFIX = "airflow"

    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, source_client(config, {}, client))  # the JWT goes on each request: it is renewed
        self._login: tuple[str, str] | None = None
        self._jwt = ""
        self.user = ""  # the Airflow user the console answers as
        if token is not None and ":" in token.value:
            username, password = token.value.split(":", 1)
            self._login, self.user = (username, password), username
        elif token is not None:
            self._jwt, self.user = token.value, _jwt_subject(token.value)
        self._filters = {"response_received": "false"}
        if config.dag_id_pattern:
            self._filters["dag_id_pattern"] = config.dag_id_pattern
        self._known: dict[Key, Remembered[str]] = {}  # each detail by its fingerprint
        self._newest = ""  # created_at of the newest detail listed, as Airflow wrote it

    # ---------------------------------------------------------------- listing
    async def fetch(self, cursor: str | None) -> Page:
        if self._foreign(cursor):
            return Page(reset=True)
        if cursor is None or not self._newest:
            self._known, self._newest = {}, ""
            return await self._page(*await self._list({}), complete=True)
        _, _, count = read_collection_or_fail(await self._get(LISTING, {**self._filters, "limit": "0"}))
        newer, rejected = await self._list({"created_at_gt": self._newest})
        arrived = {d.key for d in newer} - self._known.keys()
        if count == len(self._known) + len(arrived) + len(rejected):
            return await self._page(newer, rejected, complete=False)  # nothing left: only the new ones are read
        return await self._page(*await self._list({}), complete=True)

    async def _page(self, listed: list[Detail], rejected: list[Rejected], *, complete: bool) -> Page:
        changed = [d for d in listed if self._known.get(d.key, Remembered("", None)).listed != d.fingerprint]
        results = await asyncio.to_thread(self._translate_all, changed)
        translated = [
            (d.key, d.fingerprint, r.item if isinstance(r, Pending) else r)
            for d, r in zip(changed, results, strict=True)
        ]
        items, bad, removed = remember_translated(self._known, translated, "the task asks anew")
        rejected += bad
        for detail in listed:
            self._newest = max(self._newest, detail.created_at)
        if complete:
            removed += await forget_unlisted(self._known, {d.key for d in listed}, self._detail, _why_left)
        return Page(items=items, rejected=rejected, removed=removed, cursor=self._epoch)

    def _translate_all(self, details: list[Detail]) -> list[Pending | Rejected]:
        # In a thread: checking a page of items takes tens of milliseconds, keys stay prompt.
        return [self._translate(detail) for detail in details]

    def _translate(self, detail: Detail) -> Pending | Rejected:
        return translate(self.config.name, detail, ui_url=self.config.url, max_item_bytes=self.config.max_item_bytes)

    async def _list(self, extra: dict[str, str]) -> tuple[list[Detail], list[Rejected]]:
        details: list[Detail] = []
        rejected: list[Rejected] = []
        while True:
            params = {**self._filters, **extra, "order_by": "created_at", "limit": str(PAGE_SIZE)}
            params["offset"] = str(len(details) + len(rejected))
            page, bad, total = read_collection_or_fail(await self._get(LISTING, params))
            details += page
            rejected += bad
            if (not page and not bad) or len(details) + len(rejected) >= total:
                return details, rejected

    async def _detail(self, key: Key) -> Detail | None:
        """The task's HITL detail as Airflow has it now; None when it no longer has it."""
        body = await self._get(_detail_path(*key), {}, missing_ok=True)
        return None if body is None else read_detail(body)

    async def _get(self, path: str, params: dict[str, str], *, missing_ok: bool = False) -> Any:
        response = await self._request("GET", path, params=params)
        if missing_ok and response.status_code == 404:
            return None
        fix = f"; fix: {token_fix(self.config.name)} (USERNAME:PASSWORD or a JWT)"
        return read_object(response, f"GET {path}", fix=fix)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request with the JWT; a JWT refused as expired is renewed from the login once."""
        with reaching(self.config):
            if self._login is not None and not self._jwt:
                self._jwt = await self._new_jwt()
            response = await self._client.request(method, path, headers=self._auth(), **kwargs)
            if response.status_code == 401 and self._login is not None:
                self._jwt = await self._new_jwt()
                response = await self._client.request(method, path, headers=self._auth(), **kwargs)
        return response

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._jwt}"} if self._jwt else {}

    async def _new_jwt(self) -> str:
        assert self._login is not None
        username, password = self._login
        response = await self._client.post("/auth/token", json={"username": username, "password": password})
        body = json_object(response)
        token = body.get("access_token") if body is not None else None
        if response.status_code in (200, 201) and isinstance(token, str) and token:
            return token
        answer = classify(response)
        if answer.status in (400, 401, 403, 422):  # the login itself was refused
            raise SourceError(f"refused our login ({answer.status}); fix: {token_fix(self.config.name)}", auth=True)
        raise read_refused(answer, auth="", otherwise=f"answered {answer.status} to POST /auth/token")

    # ---------------------------------------------------------------- sending
    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        return await send_to_parsed(decision, parse_item_id, self._send, "an Airflow")

    async def _send(self, decision: Decision, key: Key) -> DecisionAnswer:
        detail = await self._detail(key)
        if detail is None:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "Airflow no longer has this request")
        current = await asyncio.to_thread(self._translate, detail)
        if not isinstance(current, Pending):
            return DecisionAnswer(SyncState.conflict, Outcome.invalid.value, f"cannot answer: {current.reason}")
        sent = answer_for(decision, current)
        if detail.answered:
            return answered_answer(detail, sent, self.user)
        if current.item.id != decision.item_id or current.item.digest != decision.item_digest:
            return stale_answer()
        problem = await asyncio.to_thread(_local_problem, current, decision, sent)
        if problem is not None:
            return refused_here_answer(problem)
        return await self.answer(key, sent)

    async def answer(self, key: Key, sent: dict[str, Any]) -> DecisionAnswer:
        """Send an answer as it is (no check here) and read Airflow's reply as the console's outcome."""
        try:
            async with asyncio.timeout(self.config.timeout):  # overall, not per read
                response = await self._request("PATCH", _detail_path(*key), json=sent)
        except TimeoutError:
            return timeout_answer(self.config.timeout)
        answer = classify(response)
        body = json_object(response)
        if answer.status == 200:
            return DecisionAnswer(SyncState.applied, Outcome.applied.value, "applied", body)
        if answer.status == 409:  # answered first elsewhere (or by our own earlier send): Airflow's record says
            now = await self._detail(key)
            if now is not None and now.answered:
                return answered_answer(now, sent, self.user)
            return DecisionAnswer(SyncState.conflict, Outcome.conflict.value, "already answered in Airflow", body)
        if answer.status == 404:
            return DecisionAnswer(SyncState.conflict, Outcome.not_found.value, "Airflow no longer has this request")
        refused = refusal_answer(answer.status, body)
        if refused is not None:
            return refused
        if answer.kind is Kind.auth:
            return credentials_answer(answer, body, fix=f"; fix: {token_fix(self.config.name)}")
        if answer.busy:
            return busy_answer(answer, body)
        return odd_answer(answer, body)


def read_collection_or_fail(body: Any) -> tuple[list[Detail], list[Rejected], int]:
    try:
        return read_collection(body)
    except ValueError as exc:
        raise SourceError(str(exc)) from exc


def _detail_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    dag, run, task = (quote(part, safe="") for part in (dag_id, run_id, task_id))
    return f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails"


def _why_left(detail: Detail | None) -> tuple[str, str]:
    """The removal's state and detail: answered (by whom, what), answered by Airflow's timeout, or gone."""
    if detail is None:
        return "gone", "Airflow no longer has this request"
    if not detail.answered:
        state = (detail.raw.get("task_instance") or {}).get("state")
        return "gone", f"the task is {str(state)[:40]} and no longer waits"
    by_id, by_name = detail.responded_by
    if not by_id and not by_name:
        return "expired", json.dumps({"on_expiry": ", ".join(detail.chosen_options)})
    return "decided", json.dumps({"decided_by": by_name or by_id, "verdict": ", ".join(detail.chosen_options)})


def _local_problem(pending: Pending, decision: Decision, sent: dict[str, Any]) -> str | None:
    """What Airflow would refuse, or take and then fail the task on, found before anything is sent."""
    if not pending.item.allows(decision.verdict):
        return f"the request does not allow {decision.verdict.value}"
    if decision.verdict is Verdict.reject or pending.item.args_schema is None:
        return None
    problem = schema_problem(sent, pending.item.args_schema)
    return None if problem is None else f"the answer breaks the request's schema: {problem}"


def _jwt_subject(token: str) -> str:
    """The `sub` claim of a JWT, unverified (Airflow verifies it; the console only recognises its own answers)."""
    parts = token.split(".")
    if len(parts) != 3:
        return ""
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return ""
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else ""
