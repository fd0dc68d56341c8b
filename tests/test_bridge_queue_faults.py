"""The bridges' queue client against a queue that misbehaves: a fault proxy (tests/servers.py) in front of a
real `serve`, or answering alone with what a test scripts. A queue that is busy or drops a connection is asked again
until the deadline; one that answers nonsense gets a denial, never an exception and never an allow."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from console.bridges.queue_client import QueueClient, Request
from storage.records import Verdict
from tests.bridge_operator import Operator
from tests.queue_servers import TestServe, fixed_token
from tests.servers import Fault, FaultyProxy

AGENT = "billing-agent"
REQUEST = Request(request_id="req-1", action="Bash", args={"command": "make deploy"})


@pytest.fixture
def proxy(serve: TestServe) -> Iterator[FaultyProxy]:
    in_front = FaultyProxy(serve.url)
    in_front.start()
    yield in_front
    in_front.stop()


async def test_a_busy_queue_and_a_dropped_wait_are_asked_again(proxy: FaultyProxy, operator: Operator) -> None:
    proxy.inject(
        Fault(503, b'{"error": "busy"}', path_prefix="/v1/items"),  # the post, refused once
        Fault(path_prefix="/v1/items/", reset=True),  # the first wait, its connection reset
    )
    async with QueueClient(proxy.url, fixed_token("agent", AGENT)) as queue:
        asking = asyncio.create_task(queue.ask(REQUEST, deadline_seconds=30))
        await operator.decide_next(Verdict.approve)
        outcome = await asking
    assert outcome.allowed and outcome.verdict == "approve"
    posts = [p for p in proxy.requests if p == "/v1/items"]
    assert len(posts) == 2, "the refused post was sent again, under the same request id"


@pytest.mark.parametrize(
    "body",
    [b"[1, 2, 3]", b"not json", b'{"id": 42}', b'{"id": "itm_1", "state": "approved"}'],
)
async def test_nonsense_is_a_denial_not_an_exception(body: bytes) -> None:
    hostile = FaultyProxy()
    hostile.default = Fault(200, body)
    hostile.start()
    try:
        async with QueueClient(hostile.url, "acs_test") as queue:
            outcome = await queue.ask(REQUEST, deadline_seconds=1.0)
    finally:
        hostile.stop()
    assert outcome.allowed is False and outcome.reason


async def test_a_queue_that_answers_pending_at_once_is_paced_not_hammered() -> None:
    """A server that ignores `wait` and says `pending` at once: the client paces itself (RETRY), then denies."""
    hostile = FaultyProxy()
    hostile.default = Fault(200, b'{"id": "itm_1", "state": "pending", "seq": 1}')
    hostile.start()
    try:
        async with QueueClient(hostile.url, "acs_test") as queue:
            outcome = await queue.ask(REQUEST, deadline_seconds=1.0)
    finally:
        hostile.stop()
    assert outcome.allowed is False and outcome.reason == "no decision before the deadline"
    # Paced, the waits are at least 0.05, 0.1, 0.2, 0.4 s...: a post, at most five waits and a withdrawal in one second.
    assert len(hostile.requests) <= 8, f"{len(hostile.requests)} requests in one second"
