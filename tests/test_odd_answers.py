"""Decision and feedback answers whose status and body disagree, or are unknown (PROTOCOL.md section 3): never final.

A hostile server answered a decision it had applied with 200 + `conflict`, 409 + `applied` or 418, and the console
recorded the applied decision as refused. Here the fleet really applies the decision and the proxy replaces its answer
with the odd one; the resend under the same key then gets the fleet's recorded answer. The decision ends applied, once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from console.engine.config import Config, SourceConfig
from console.engine.session import Session
from console.servers.fleet import Fleet
from storage.records import SyncState, Verdict
from tests.conftest import SOURCE
from tests.servers import Fault, FaultyProxy, running
from tests.test_labels import Console, fleet_labels

DECISIONS = "/v1/items/"

# name -> (status, body, what the decision's last error must say)
ODD = {
    "200 with conflict": (200, b'{"outcome": "conflict", "decided_by": "mallory"}', "status 200 with outcome"),
    "409 with applied": (409, b'{"outcome": "applied"}', "status 409 with outcome"),
    "410 with applied": (410, b'{"outcome": "applied"}', "status 410 with outcome"),
    "422 with stale": (422, b'{"outcome": "stale"}', "status 422 with outcome"),
    "418": (418, b'{"outcome": "teapot"}', "unknown outcome"),
    "418 without a body": (418, b"", "status 418 came without a known outcome"),
    "unknown outcome on 200": (200, b'{"outcome": "accepted_later"}', "unknown outcome"),
    "unknown outcome on 409": (409, b'{"outcome": "rejected_by_policy"}', "unknown outcome"),
    "hostile outcome name": (409, b'{"outcome": "\\u001b]52;c;x\\u0007\\u202e"}', "unknown outcome"),
    "404 page": (404, b"<html>not here</html>", "status 404 came without a known outcome"),
}


class SimulatedClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("applied_upstream", [True, False], ids=["applied, odd answer", "not applied, odd answer"])
@pytest.mark.parametrize(("status", "body", "said"), ODD.values(), ids=ODD.keys())
async def test_odd_decision_answers_are_retried_under_the_same_key_and_applied_once(
    fleet: Fleet, data_dir: Path, status: int, body: bytes, said: str, applied_upstream: bool
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        source = SourceConfig(name=SOURCE, url=proxy.url, long_poll=0.0)
        config = Config(operator="alice", sources=(source,), undo_seconds=0.0)
        session = Session(config, data_dir, token_for=lambda _n: None)
        await session.poll_once()
        row = session.store.queue.rows(0, 1)[0]
        item = session.store.items.get(row.source, row.id)[0]  # type: ignore[index]
        proxy.inject(Fault(status, body, path_prefix=DECISIONS, forward=applied_upstream))
        session.decide(item, Verdict.approve)
        clock = SimulatedClock()  # from now: the decision is due
        session.sync.clock = clock
        assert await session.sync_once() == 1
        [decision] = session.store.outbox.decisions()
        assert decision.sync_state is SyncState.pending, "an odd answer is never final"
        assert said in decision.detail and "same key" in decision.detail
        assert "\x1b" not in decision.detail and "\u202e" not in decision.detail, "server text stays escaped"
        due = session.store.outbox.next_due_at([SOURCE])
        assert due is not None and due > clock.now, "retried later, not at once"
        clock.now = due
        assert await session.sync_once() == 1
        [decision] = session.store.outbox.decisions()
        assert (decision.sync_state, decision.outcome) == (SyncState.applied, "applied")
        assert [d["item_id"] for d in fleet.applied_decisions()] == [item.id]
        assert fleet.decision_requests(item.id) == (2 if applied_upstream else 1)
        assert await session.sync_once() == 0, "nothing final is sent again"
        await session.aclose()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (418, b'{"error": "teapot"}'),
        (422, b'{"error": "accepted_later"}'),  # a refusal's status with a name that is not a refusal
        (409, b'{"outcome": "applied"}'),
        (200, b'{"outcome": "invalid"}'),  # no `accepted` count: not an acceptance
    ],
    ids=["418", "422 unknown name", "409 applied", "200 without accepted"],
)
async def test_odd_feedback_answers_are_retried_and_the_labels_sent_once(
    fleet: Fleet, tmp_path: Path, status: int, body: bytes
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        console = Console(tmp_path / "data", proxy.url)
        clock = SimulatedClock()
        console.engine.clock = clock
        console.record(fleet_labels(fleet, 2))
        proxy.inject(Fault(status, body, path_prefix="/v1/feedback", forward=True))
        assert await console.engine.drain_labels_once() == 2
        states = console.states().values()
        assert [state for state, _, _ in states] == ["pending", "pending"], "an odd answer refuses nothing"
        assert all(str(status) in error for _, _, error in states)
        assert console.engine.labels is not None
        due = console.engine.labels.next_due_at([SOURCE])
        assert due is not None
        clock.now = due
        assert await console.engine.drain_labels_once() == 2
        assert [state for state, _, _ in console.states().values()] == ["sent", "sent"]
        assert len(fleet.feedback()) == 2, "the resend was a replay: each label stored once"
        await console.aclose()
