"""The two-person rule (PROTOCOL.md "Two-person items") on the demo fleet and on `serve`, over real HTTP: the first
approval is recorded (202 partial, the item listed again with its approvals), the same operator again is refused, a
second operator applies it, a reject by anyone ends it, and an edit restarts the count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from console.engine.sources.native_payloads import interpret_decision_answer
from console.servers.fleet import Fleet
from storage.records import Item, SyncState, digest_problem, item_digest
from tests.queue_servers import ByRole, TestServe
from tests.test_fleet import MakeFleet, decide, listing, make_fleet, refund
from tests.test_serve import request_item

__all__ = ["make_fleet"]  # the fixture: the demo fleet, then serve


@pytest.fixture
def fleet(make_fleet: MakeFleet) -> Fleet:
    return make_fleet(initial=0)


def _operator(fleet: Fleet, name: str) -> httpx.Client:
    """A reviewer's client: on serve the token says who decides; the fleet (no tokens) takes the body's name."""
    auth = ByRole(fleet, operator=name) if isinstance(fleet, TestServe) else None
    return httpx.Client(base_url=fleet.url, timeout=10, auth=auth)


@pytest.fixture
def alice(fleet: Fleet) -> Iterator[httpx.Client]:
    with _operator(fleet, "alice") as http:
        yield http


@pytest.fixture
def bob(fleet: Fleet) -> Iterator[httpx.Client]:
    with _operator(fleet, "bob") as http:
        yield http


def _listed(http: httpx.Client, item_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [i for i in listing(http)["items"] if i["id"] == item_id]
    assert len(found) == 1, f"{item_id} is not listed as pending"
    return found[0]


def _two_person(fleet: Fleet, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = fleet.add_item(**refund(approvals_required=2, risk="high", **overrides))
    return item


def test_first_approval_is_partial_the_same_operator_is_refused_and_a_second_applies(
    fleet: Fleet, alice: httpx.Client, bob: httpx.Client
) -> None:
    item = _two_person(fleet)
    first = decide(alice, item, operator="alice")
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["outcome"] == "partial" and body["approvals_required"] == 2
    assert [a["operator"] for a in body["approvals"]] == ["alice"]
    assert interpret_decision_answer(first).state is SyncState.partial
    assert fleet.applied_decisions() == []  # recorded, not applied

    # Still pending, as a new version whose digest covers who approved; a client verifies it like any item.
    now = _listed(alice, item["id"])
    assert now["digest"] == body["digest"] and now["digest"] != item["digest"]
    assert digest_problem(now) is None
    parsed = Item.model_validate(now)
    assert parsed.approval_progress.startswith("1 of 2 — approved by alice")

    again = decide(alice, now, operator="alice")
    assert again.status_code == 409 and again.json()["outcome"] == "same_operator", again.text
    refused = interpret_decision_answer(again)
    assert refused.state is SyncState.conflict and refused.outcome == "same_operator"
    assert decide(alice, item, operator="alice").json()["outcome"] == "stale"  # the version before the approval

    second = decide(bob, now, operator="bob")
    assert second.status_code == 200 and second.json()["outcome"] == "applied", second.text
    assert [a["operator"] for a in second.json()["approvals"]] == ["alice", "bob"]
    applied = fleet.applied_decisions()
    assert [(d["operator"], d["verdict"]) for d in applied] == [("bob", "approve")]
    assert item["id"] not in {i["id"] for i in listing(alice)["items"]}


def test_a_removal_and_the_outcome_name_both_approvers(fleet: Fleet, alice: httpx.Client, bob: httpx.Client) -> None:
    item = _two_person(fleet)
    cursor = listing(alice)["cursor"]
    decide(alice, item, operator="alice")
    now = _listed(alice, item["id"])
    assert decide(bob, now, operator="bob").status_code == 200
    page = listing(alice, cursor)
    gone = [r for r in page["removed"] if r["id"] == item["id"]]
    assert len(gone) == 1 and gone[0]["state"] == "decided" and gone[0]["decided_by"] == "bob"
    assert [a["operator"] for a in gone[0]["approvals"]] == ["alice", "bob"]


def test_a_reject_after_one_approval_ends_it(fleet: Fleet, alice: httpx.Client, bob: httpx.Client) -> None:
    item = _two_person(fleet)
    assert decide(alice, item, operator="alice").status_code == 202
    now = _listed(bob, item["id"])
    rejected = decide(bob, now, "reject", operator="bob", reason_code="unsafe")
    assert rejected.status_code == 200 and rejected.json()["outcome"] == "applied", rejected.text
    assert [(d["operator"], d["verdict"]) for d in fleet.applied_decisions()] == [("bob", "reject")]
    late = decide(alice, now, operator="alice", key=str(uuid.uuid4()))
    assert late.status_code == 409 and late.json()["outcome"] == "conflict"


def test_an_edit_restarts_the_count_with_the_edited_action(
    fleet: Fleet, alice: httpx.Client, bob: httpx.Client
) -> None:
    item = _two_person(fleet)
    assert decide(alice, item, operator="alice").status_code == 202
    approved_once = _listed(bob, item["id"])
    changed = {**approved_once["action"]["args"], "amount": 500.0}
    edited = decide(bob, approved_once, "edit", edited=changed, edited_digest=item_digest(changed), operator="bob")
    assert edited.status_code == 202 and edited.json()["outcome"] == "partial", edited.text
    # The listed action is now the edited one; alice's approval was of another action and no longer counts.
    now = _listed(alice, item["id"])
    assert now["action"]["args"]["amount"] == 500.0
    assert [(a["operator"], a["verdict"]) for a in now["approvals"]] == [("bob", "edit")]
    assert decide(bob, now, operator="bob").json()["outcome"] == "same_operator"
    done = decide(alice, now, operator="alice")
    assert done.status_code == 200, done.text
    applied = fleet.applied_decisions()
    assert [(d["operator"], d["verdict"], d["edited"]) for d in applied] == [("alice", "edit", changed)]


def test_an_ordinary_item_is_still_applied_by_one(fleet: Fleet, alice: httpx.Client) -> None:
    item = fleet.add_item(**refund())
    assert "approvals_required" not in item
    answer = decide(alice, item, operator="alice")
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied"


def test_an_agent_cannot_post_approvals_of_its_own(fleet: Fleet, alice: httpx.Client) -> None:
    posted = request_item(
        agent="billing-agent", approvals_required=2, approvals=[{"operator": "mallory", "at": "2026-11-21T23:40:00Z"}]
    )
    answer = alice.post("/v1/items", json=posted, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 201, answer.text
    assert "approvals" not in answer.json() and answer.json()["approvals_required"] == 2
    too_many = alice.post(
        "/v1/items", json={**posted, "approvals_required": 11}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert too_many.status_code == 422, too_many.text


def test_a_partial_answer_is_final_only_as_a_202() -> None:
    request = httpx.Request("POST", "http://fleet.test/v1/items/itm_1/decision")
    body = {"outcome": "partial", "approvals": [{"operator": "alice", "at": "2026-11-21T23:40:00Z"}]}
    partial = interpret_decision_answer(httpx.Response(202, json={**body, "approvals_required": 2}, request=request))
    assert (partial.state, partial.outcome) == (SyncState.partial, "partial")
    assert partial.detail == "recorded: 1 of 2 approvals (alice); another operator must approve it"
    for status in (200, 409):  # status and body disagree: not final, sent again under the same key
        assert interpret_decision_answer(httpx.Response(status, json=body, request=request)).state is None
    odd = interpret_decision_answer(httpx.Response(202, json={"outcome": "applied"}, request=request))
    assert odd.state is None
