"""How every adapter reads an HTTP answer: one classification of its status, its Retry-After and its JSON body.

The adapters decide what a class of answer means for their protocol (a listing fails, a decision is retried or final);
which statuses form a class, how Retry-After is read and clamped, and what a refused read raises are written here once.
So are the decision answers the adapters give alike: a request that changed (stale), one refused before sending, refused
credentials, no answer in time, an odd status, and a decision that could not be sent because a read failed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, TypeVar

import httpx

from console.engine.sources.base import DecisionAnswer, SourceError
from storage.records import Decision, Outcome, SyncState

Parsed = TypeVar("Parsed")
RETRY_AFTER_FLOOR = 1.0  # PROTOCOL.md section 6: a Retry-After below this (or 0, negative, NaN) is taken as 1 s
RETRY_AFTER_CEILING = 300.0  # and one above this (or inf, or an overflow) as 300 s: a recovered server is heard soon


class Kind(StrEnum):
    ok = "ok"  # 2xx
    redirect = "redirect"  # 3xx: never followed, the token would go wherever it points
    auth = "auth"  # 401, 403: our credentials were refused
    throttled = "throttled"  # 429, 503: up, but asking us to slow down (at its pace: Retry-After)
    failing = "failing"  # any other 5xx
    refused = "refused"  # any other 4xx (and anything stranger): the request itself was not taken


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, classified. The body is not read here: a streamed listing is classified before its body."""

    response: httpx.Response
    kind: Kind

    @property
    def status(self) -> int:
        return self.response.status_code

    @property
    def busy(self) -> bool:
        """Busy or failing: not an answer to the request, so it may be sent again (after `retry_after`)."""
        return self.kind in (Kind.throttled, Kind.failing)

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.response)

    @property
    def location(self) -> str:
        """Where a redirect points, clipped: it is server text, shown and logged."""
        return str(self.response.headers.get("Location", "?"))[:200]


def classify(response: httpx.Response) -> Answer:
    return Answer(response, kind_of(response.status_code))


def kind_of(status: int) -> Kind:
    """The class of an HTTP status (also for SDK clients that report only the status of their answer)."""
    if 200 <= status < 300:
        return Kind.ok
    if 300 <= status < 400:
        return Kind.redirect
    if status in (401, 403):
        return Kind.auth
    if status in (429, 503):
        return Kind.throttled
    if status >= 500:
        return Kind.failing
    return Kind.refused


def read_refused(answer: Answer, *, auth: str, otherwise: str) -> SourceError:
    """Why a read (a listing, a thread search) was not answered: `auth` follows the credentials line, `otherwise` is
    the error for any answer that is neither refused credentials nor a request to slow down."""
    if answer.kind is Kind.auth:
        return SourceError(f"refused our credentials ({answer.status}){auth}", auth=True)
    if answer.kind is Kind.throttled:
        return SourceError(f"busy ({answer.status})", retry_after=answer.retry_after, throttled=True)
    return SourceError(otherwise)


def busy_answer(answer: Answer, body: dict[str, Any] | None) -> DecisionAnswer:
    """A decision answered busy or failing: not final, sent again at the server's pace when it gave one."""
    return DecisionAnswer(
        None, f"http_{answer.status}", f"the source is busy or failing ({answer.status})", body, answer.retry_after
    )


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The server's Retry-After (delay-seconds or an HTTP-date), clamped to [1 s, 300 s]; None if absent or unreadable.

    A hostile or buggy value can neither make the console hammer the server nor park a decision for hours.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # unreadable: the caller's own backoff applies
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return RETRY_AFTER_FLOOR
    return max(RETRY_AFTER_FLOOR, min(seconds, RETRY_AFTER_CEILING))


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's body when it is a JSON object; None when it is anything else or no JSON at all."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def brief(exc: BaseException) -> str:
    """An exception in one short line, for a health line or a decision's last error."""
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__


def read_object(response: httpx.Response, asked: str, *, fix: str) -> dict[str, Any]:
    """A read's answer (`asked`: "GET /path") as a JSON object; anything else raises why: a redirect (not followed),
    refused credentials (`fix` follows that line), a request to slow down, or another status or body."""
    if response.status_code != 200:
        answer = classify(response)
        if answer.kind is Kind.redirect:
            raise SourceError(f"answered {answer.status}, a redirect to {answer.location}; not followed")
        raise read_refused(answer, auth=fix, otherwise=f"answered {answer.status} to {asked}")
    body = json_object(response)
    if body is None:
        raise SourceError(f"answered {asked} with something that is not a JSON object")
    return body


STALE_REQUEST = "the request changed after you saw it; the new version is in the queue; nothing was sent"


def unsent_answer(exc: SourceError) -> DecisionAnswer:
    """A decision not sent because reading the source failed: refused credentials wait for a new token, the rest is
    sent again (at the server's pace when it gave one)."""
    if exc.auth:
        return DecisionAnswer(None, Outcome.unauthorized.value, str(exc), auth_refused=True)
    return DecisionAnswer(None, "unreachable", str(exc), retry_after=exc.retry_after)


async def send_to_parsed(
    decision: Decision,
    parse_item_id: Callable[[str], Parsed | None],
    send: Callable[[Decision, Parsed], Awaitable[DecisionAnswer]],
    source: str,
) -> DecisionAnswer:
    """`send` the decision to the request its item id names. An id this adapter cannot have made (`source`: "a
    Temporal") is final with nothing sent; a read that fails on the way is `unsent_answer`."""
    parsed = parse_item_id(decision.item_id)
    if parsed is None:
        return DecisionAnswer(SyncState.failed, Outcome.invalid.value, f"not an item id of {source} source")
    try:
        return await send(decision, parsed)
    except SourceError as exc:
        return unsent_answer(exc)


def stale_answer(detail: str = STALE_REQUEST) -> DecisionAnswer:
    return DecisionAnswer(SyncState.conflict, Outcome.stale.value, detail)


def refused_here_answer(problem: str) -> DecisionAnswer:
    """A decision the source would refuse, found before anything is sent."""
    return DecisionAnswer(SyncState.conflict, Outcome.invalid.value, f"refused here, nothing was sent: {problem}")


def credentials_answer(answer: Answer, body: dict[str, Any] | None, fix: str = "") -> DecisionAnswer:
    """A decision whose send was refused for our credentials: held until the token is fixed (`fix` says how)."""
    detail = f"refused our credentials ({answer.status}){fix}"
    return DecisionAnswer(None, Outcome.unauthorized.value, detail, body, auth_refused=True)


def timeout_answer(timeout: float) -> DecisionAnswer:
    """A send with no answer in time: it may have been taken, so it is sent again (the source tells a repeat)."""
    return DecisionAnswer(None, "timeout", f"no answer within {timeout:g} s; sending again")


def odd_answer(answer: Answer, body: dict[str, Any] | None) -> DecisionAnswer:
    """A send answered with a status the protocol does not name: sent again."""
    return DecisionAnswer(None, f"http_{answer.status}", f"an odd answer ({answer.status}); sending again", body)
