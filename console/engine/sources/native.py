"""The native protocol (PROTOCOL.md): incremental listing by cursor with long-poll, decisions with idempotency keys.

This module talks HTTP; native_payloads beside it reads what the server answers (pure, tested without a server).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from console.engine.config import SourceConfig, public_url, token_fix
from console.engine.secrets import Token
from console.engine.sources.answers import Kind, brief, classify, read_refused
from console.engine.sources.base import DecisionAnswer, ExtendAnswer, LabelAnswer, Page, SourceError
from console.engine.sources.http import source_client
from console.engine.sources.native_payloads import (
    interpret_decision_answer,
    interpret_extend_answer,
    interpret_feedback_answer,
    listing_page,
)
from storage.labels import Label, batch_id
from storage.records import Decision, Item, SyncState, id_problem

PAGE_SIZE = 500
# A listing page is read into memory up to this many bytes (or twice an item's cap, if more); past it the console
# stops reading and asks for fewer items, so a huge or endless answer never fills memory.
PAGE_BYTES = 8_000_000
_RESET = b"\x00reset"  # the cursor is too old (410): list everything again


class NativeSource:
    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        auth = {} if token is None else {"Authorization": f"Bearer {token.value}"}
        self._client = source_client(config, auth, client)
        self._long_poll: bool | None = None  # learnt from /v1/info on first use
        self._claims = False  # features.claims, learnt with long_poll

    @property
    def long_polls(self) -> bool:
        return bool(self._long_poll and self.config.long_poll > 0)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _features(self) -> None:
        if self._long_poll is not None:
            return
        try:
            response = await self._client.get("/v1/info")
            info = response.json() if response.status_code == 200 else {}
            features = info.get("features", {}) if isinstance(info, dict) else {}
            self._long_poll = bool(isinstance(features, dict) and features.get("long_poll"))
            self._claims = bool(isinstance(features, dict) and features.get("claims"))
        except (httpx.HTTPError, ValueError):
            self._long_poll = None  # ask again next time; fetch reports the real error

    async def fetch(self, cursor: str | None) -> Page:
        await self._features()
        wait = self.config.long_poll if (self._long_poll and cursor is not None) else 0.0
        params: dict[str, str | int | float] = {"limit": PAGE_SIZE}
        if cursor is not None:
            params["cursor"] = cursor
        if wait:
            params["wait"] = wait
        page_cap = max(PAGE_BYTES, 2 * self.config.max_item_bytes)
        raw = await self._read_listing(params, wait, page_cap)
        # Over the page cap: ask for fewer items until one page fits; a single item over it cannot be read at all.
        while raw is None and int(params["limit"]) > 1:
            params["limit"] = max(1, int(params["limit"]) // 8)
            raw = await self._read_listing(params, wait, page_cap)
        if raw is None:
            raise SourceError(
                f"the next item is larger than {page_cap:,} bytes; it was not read, and the listing cannot go past it"
                " until the agent withdraws or shrinks it"
            )
        if raw is _RESET:
            return Page(reset=True)
        # Parsing and checking a page of 500 items takes tens of milliseconds: off the event loop, keys stay prompt.
        return await asyncio.to_thread(listing_page, self.config.name, self.config.max_item_bytes, raw, cursor)

    async def _read_listing(self, params: dict[str, str | int | float], wait: float, cap: int) -> bytes | None:
        """The listing's body, streamed: None as soon as it passes `cap` bytes (the rest is never read)."""
        timeout = self.config.timeout + wait
        try:
            # Overall, not per read (httpx's): a slow drip must not hold the poll for ever.
            async with (
                asyncio.timeout(timeout),
                self._client.stream("GET", "/v1/items", params=params, timeout=httpx.Timeout(timeout)) as response,
            ):
                if response.status_code == 410:
                    return _RESET
                _raise_for_listing(response, self.config.name)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        return None
                return bytes(body)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise SourceError(f"no answer within {timeout:g} s") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise SourceError(f"the answer was cut off ({brief(exc)})") from exc
        except httpx.HTTPError as exc:
            raise SourceError(public_url(f"cannot reach {self.config.url}: {brief(exc)}")) from exc

    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        unusable = id_problem(decision.item_id)
        if unusable is not None:  # only an older console stored such an item (R5): its URL would name another
            return DecisionAnswer(SyncState.failed, "invalid_id", f"not sent: {unusable}")
        try:
            # httpx's timeout is per read: a server dripping a byte at a time never trips it. This one is overall.
            async with asyncio.timeout(self.config.timeout):
                response = await self._client.post(
                    f"/v1/items/{quote(decision.item_id, safe='')}/decision",
                    json=decision.wire_body(),
                    headers={"Idempotency-Key": decision.id},
                )
        except TimeoutError:
            return DecisionAnswer(None, "timeout", f"no answer within {self.config.timeout:g} s")
        except httpx.HTTPError as exc:
            return DecisionAnswer(None, "unreachable", brief(exc))
        return interpret_decision_answer(response)

    async def send_labels(self, labels: Sequence[Label]) -> LabelAnswer:
        """POST /v1/feedback (PROTOCOL.md section 4): one batch, keyed by its label ids so a resend is a replay."""
        ordered = sorted(labels, key=lambda label: label.label_id)  # the same batch is the same body, too
        ids = [label.label_id for label in ordered]
        try:
            response = await self._client.post(
                "/v1/feedback",
                json={"labels": [label.wire_body() for label in ordered]},
                headers={"Idempotency-Key": batch_id(ids)},
            )
        except httpx.HTTPError as exc:
            return LabelAnswer(detail=brief(exc))
        return interpret_feedback_answer(response, ids)

    async def claim(self, item_id: str, operator: str) -> str | None:
        """POST /v1/items/{id}/claim (PROTOCOL.md section 5): who holds the item now, or None if claims are off.

        Best effort: a claim is advisory, so a failure is logged by the caller's silence, never raised.
        """
        await self._features()
        if not self._claims or id_problem(item_id) is not None:
            return None
        try:
            response = await self._client.post(
                f"/v1/items/{quote(item_id, safe='')}/claim", json={"operator": operator}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        holder = body.get("claimed_by") if isinstance(body, dict) else None
        return holder if isinstance(holder, str) and holder else None

    async def release(self, item_id: str, operator: str) -> None:
        if not self._claims or id_problem(item_id) is not None:
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._client.request(
                "DELETE", f"/v1/items/{quote(item_id, safe='')}/claim", json={"operator": operator}
            )

    async def extend(self, item: Item, seconds: int, operator: str) -> ExtendAnswer:
        """POST /v1/items/{id}/extend (PROTOCOL.md section 10): the item's deadline `seconds` later, bound to the
        version shown by its digest (so a resend after a lost answer is refused as stale, never applied twice)."""
        if id_problem(item.id) is not None:
            return ExtendAnswer(None, "not sent: the item's id cannot be put in a URL")
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self._client.post(
                    f"/v1/items/{quote(item.id, safe='')}/extend",
                    json={"seconds": seconds, "item_digest": item.digest, "operator": operator},
                )
        except TimeoutError:
            return ExtendAnswer(None, f"no answer within {self.config.timeout:g} s")
        except httpx.HTTPError as exc:
            return ExtendAnswer(None, f"cannot reach the source: {brief(exc)}")
        return await asyncio.to_thread(interpret_extend_answer, self.config.name, item, response)


def _raise_for_listing(response: httpx.Response, source: str) -> None:
    if response.status_code == 200:
        return
    answer = classify(response)
    if answer.kind is Kind.redirect:
        # Not followed: the token would go wherever the redirect points. A moved source is a config change.
        raise SourceError(
            f"answered {answer.status}, a redirect to {answer.location}; not followed (the token stays here):"
            " update the url"
        )
    raise read_refused(answer, auth=f"; fix: {token_fix(source)}", otherwise=f"answered {answer.status} to a listing")
