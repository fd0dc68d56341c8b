"""The demo fleet and `serve` against PROTOCOL.md, over real HTTP on a free loopback port.

Each test that checks the protocol runs against both servers (the `make_fleet` fixture's two parameters); the tests of
what only the demo fleet has (generated items, its pace, its HTTP test hooks, its cursor horizon, its optional tokens)
are marked FLEET_ONLY."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from console.servers.fleet import Fleet
from storage.records import Item, digest_problem, item_digest
from tests.queue_servers import TestServe, connect

MakeFleet = Callable[..., Fleet]


def _servers(kind: str, tmp_path: Path) -> Iterator[MakeFleet]:
    started: list[Fleet | TestServe] = []

    def make(**options: Any) -> Fleet:
        options = {"seed": 7, "initial": 8, **options}
        server: Fleet | TestServe
        if kind == "serve":
            server = TestServe(tmp_path / f"serve-{len(started)}", **options)
        else:
            server = Fleet(**{"interval": None, **options})
        server.start()
        started.append(server)
        return server  # type: ignore[return-value]  # the hooks and the protocol: what the tests use of either

    yield make
    for server in started:
        server.close() if isinstance(server, TestServe) else server.stop()


@pytest.fixture(params=["fleet", "serve"])
def make_fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeFleet]:
    """The demo fleet, then `serve` (with the same agent-side hooks, tests/queue_servers.py)."""
    yield from _servers(request.param, tmp_path)


# What only the demo fleet has (its pace, its HTTP test hooks, garbage, its optional tokens).
FLEET_ONLY = pytest.mark.parametrize("make_fleet", ["fleet"], indirect=True)


@pytest.fixture
def fleet(make_fleet: MakeFleet) -> Fleet:
    return make_fleet()


@pytest.fixture
def client(fleet: Fleet) -> Iterator[httpx.Client]:
    with connect(fleet, timeout=10) as http:
        yield http


def decide(
    http: httpx.Client, item: dict[str, Any], verdict: str = "approve", key: str | None = None, **fields: Any
) -> httpx.Response:
    body = {
        "verdict": verdict,
        "item_digest": item["digest"],
        "edited": None,
        "edited_digest": None,
        "reason_code": None,
        "comment": "",
        "operator": "alice",
        "decided_at": "2026-11-21T23:42:10Z",
        **fields,
    }
    headers = {"Idempotency-Key": key or str(uuid.uuid4())}
    return http.post(f"/v1/items/{item['id']}/decision", json=body, headers=headers)


def edit(http: httpx.Client, item: dict[str, Any], edited: Any, key: str | None = None) -> httpx.Response:
    return decide(http, item, "edit", key, edited=edited, edited_digest=item_digest(edited))


def listing(http: httpx.Client, cursor: str | None = None, **params: Any) -> dict[str, Any]:
    if cursor is not None:
        params["cursor"] = cursor
    response = http.get("/v1/items", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refund(**overrides: Any) -> dict[str, Any]:
    """Overrides for an approval whose schema caps the amount."""
    action = {
        "name": "issue_refund",
        "args": {"customer_id": "cus_1042", "amount": 1250.0, "currency": "EUR"},
        "args_schema": {
            "type": "object",
            "required": ["customer_id", "amount"],
            "properties": {"amount": {"type": "number", "maximum": 5000}, "customer_id": {"type": "string"}},
        },
    }
    return {"kind": "approval", "agent": "billing-agent", "action": action, **overrides}


# -- items ---------------------------------------------------------------------------------------------------------


def test_info_announces_the_protocol_and_features(client: httpx.Client) -> None:
    info = client.get("/v1/info").json()
    assert info["protocol"] == "approval-console/1"
    assert info["features"] == {"long_poll": True, "claims": True, "feedback": True, "outcomes": True, "extend": True}


def test_generated_items_are_valid_realistic_and_varied() -> None:
    fleet = Fleet(seed=3, interval=None, initial=400)  # never started: generation only
    items = fleet.pending()
    now = time.time()
    assert len(items) == 400 and len({i["id"] for i in items}) == 400
    for raw in items:
        assert digest_problem(raw) is None, raw["id"]
        item = Item.model_validate(raw)
        schema = raw["action"].get("args_schema")
        if schema is not None:
            # What the agent proposes must satisfy its own schema: approving unchanged is always valid.
            Draft202012Validator(schema).validate(item.editable_value)
        assert item.created_at.timestamp() <= now + 1
        assert item.expires_at is not None and 50 <= item.expires_at.timestamp() - now <= 45 * 60 + 1
        if item.kind == "escalation":
            assert raw["output"] is not None
    assert {i["kind"] for i in items} == {"approval", "escalation"}
    assert {i["risk"] for i in items} == {"low", "medium", "high", "critical"}
    assert len({i["agent"] for i in items}) >= 5
    assert any("confidence" not in i for i in items) and any(i.get("confidence") == 0.41 for i in items)
    no_edit = [i for i in items if "edit" not in i["allowed_decisions"]]
    assert any(i["risk"] == "critical" for i in no_edit) and any(i["kind"] == "escalation" for i in no_edit)
    assert sum(i["action"].get("args_schema") is not None for i in items) == len(items)
    assert any(datetime.fromisoformat(i["expires_at"]).timestamp() - now < 300 for i in items)  # a few expire soon


def test_the_same_seed_gives_the_same_items() -> None:
    def contents(fleet: Fleet) -> list[dict[str, Any]]:
        skip = {"created_at", "expires_at", "digest", "seq"}
        return [{k: v for k, v in item.items() if k not in skip} for item in fleet.pending()]

    first, again, other = (Fleet(seed=s, interval=None, initial=30) for s in (11, 11, 12))
    assert contents(first) == contents(again)
    assert first.add_item()["id"] == again.add_item()["id"]
    assert {i["id"] for i in first.pending()}.isdisjoint({i["id"] for i in other.pending()})


def test_add_item_applies_overrides(fleet: Fleet) -> None:
    escalation = fleet.add_item(kind="escalation", risk="critical", agent="support-agent")
    assert (escalation["kind"], escalation["risk"], escalation["agent"]) == ("escalation", "critical", "support-agent")
    assert escalation["output"] is not None and digest_problem(escalation) is None
    pinned = fleet.add_item(id="itm_pinned", expires_in=60, claimed_by="carol")
    assert pinned["id"] == "itm_pinned" and pinned["claimed_by"] == "carol"
    assert abs(datetime.fromisoformat(pinned["expires_at"]).timestamp() - time.time() - 60) < 2
    with pytest.raises(ValueError, match="not a new item id"):
        fleet.add_item(id="itm_pinned")


# -- listing -------------------------------------------------------------------------------------------------------


def test_snapshot_then_incremental_changes(fleet: Fleet, client: httpx.Client) -> None:
    snapshot = listing(client)
    assert [i["id"] for i in snapshot["items"]] == [i["id"] for i in fleet.pending()]
    assert all(digest_problem(i) is None for i in snapshot["items"])
    assert snapshot["has_more"] is False and snapshot["removed"] == []
    cursor = snapshot["cursor"]

    idle = client.get("/v1/items", params={"cursor": cursor})
    assert idle.json() == {"items": [], "removed": [], "cursor": cursor, "has_more": False}
    assert len(idle.content) < 100  # an idle poll costs a few dozen bytes

    added = fleet.add_item()
    first, second, third, fourth = (i["id"] for i in snapshot["items"][:4])
    old_digest = snapshot["items"][4]["digest"]
    changed = fleet.change_item(snapshot["items"][4]["id"])
    fleet.decide_elsewhere(first, by="bob", verdict="reject")
    fleet.expire(second)
    fleet.withdraw(third)
    replacement = fleet.supersede(fourth)

    page = listing(client, cursor)
    assert [i["id"] for i in page["items"]] == [added["id"], changed["id"], replacement["id"]]
    assert changed["digest"] != old_digest and page["items"][1]["digest"] == changed["digest"]
    assert all(digest_problem(i) is None for i in page["items"])
    removed = {r["id"]: r for r in page["removed"]}
    assert removed[first]["state"] == "decided"
    assert (removed[first]["decided_by"], removed[first]["verdict"]) == ("bob", "reject")
    assert removed[second]["state"] == "expired" and removed[second]["on_expiry"]
    assert removed[third]["state"] == "withdrawn"
    assert removed[fourth] | {"seq": 0} == {
        "id": fourth,
        "state": "superseded",
        "seq": 0,
        "superseded_by": replacement["id"],
    }
    seqs = [e["seq"] for e in page["items"] + page["removed"]]
    assert all(s > int(cursor.rsplit("-", 1)[1]) for s in seqs)
    assert listing(client, page["cursor"])["items"] == []


def test_paging_with_has_more(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(initial=25)
    with connect(fleet) as http:
        pages = [listing(http, limit=10)]
        while pages[-1]["has_more"]:
            pages.append(listing(http, pages[-1]["cursor"], limit=10))
        assert [len(p["items"]) for p in pages] == [10, 10, 5]
        assert [p["has_more"] for p in pages] == [True, True, False]
        ids = [i["id"] for p in pages for i in p["items"]]
        assert ids == [i["id"] for i in fleet.pending()]
        clamped = listing(http, limit=0)
        assert len(clamped["items"]) == 1 and clamped["has_more"] is True


def test_long_poll_answers_as_soon_as_something_changes(fleet: Fleet, client: httpx.Client) -> None:
    cursor = listing(client)["cursor"]
    added: list[dict[str, Any]] = []
    timer = threading.Timer(0.3, lambda: added.append(fleet.add_item()))
    timer.start()
    started = time.monotonic()
    page = listing(client, cursor, wait=10)
    elapsed = time.monotonic() - started
    timer.join()
    assert [i["id"] for i in page["items"]] == [added[0]["id"]]
    assert elapsed > 0.2, "the long-poll held until the item came"


def test_long_poll_without_change_waits_then_answers_empty(fleet: Fleet, client: httpx.Client) -> None:
    cursor = listing(client)["cursor"]
    started = time.monotonic()
    page = listing(client, cursor, wait=0.5)
    assert time.monotonic() - started >= 0.45
    assert page == {"items": [], "removed": [], "cursor": cursor, "has_more": False}


def test_old_or_foreign_cursors_get_410(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(initial=6, remember_removals=2)
    other = make_fleet()
    with connect(fleet) as http:
        start = listing(http)["cursor"]
        ids = [i["id"] for i in fleet.pending()]
        fleet.withdraw(ids[0])
        after_first = listing(http, start)["cursor"]
        fleet.withdraw(ids[1])
        fleet.withdraw(ids[2])  # the first removal is forgotten now
        gone = http.get("/v1/items", params={"cursor": start})
        assert gone.status_code == 410 and gone.json()["error"] == "cursor_expired"
        page = listing(http, after_first)
        assert [r["id"] for r in page["removed"]] == ids[1:3]
        with connect(other) as elsewhere:
            foreign = listing(elsewhere)["cursor"]
        for cursor in (foreign, "53", "garbage", start.split("-")[0] + "-999999"):
            assert http.get("/v1/items", params={"cursor": cursor}).status_code == 410, cursor
        assert [i["id"] for i in listing(http)["items"]] == ids[3:]


@FLEET_ONLY
def test_garbage_is_listed_as_is(fleet: Fleet, client: httpx.Client) -> None:
    cursor = listing(client)["cursor"]
    forged = {**fleet.pending()[0], "id": "itm_forged", "digest": "sha256:" + "0" * 64}
    fleet.inject_garbage(forged)
    fleet.inject_garbage("not an item")
    items = listing(client, cursor)["items"]
    assert items == [forged, "not an item"]
    assert digest_problem(items[0]) is not None


@FLEET_ONLY
def test_background_thread_adds_items(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(interval=0.2, initial=0)
    with connect(fleet) as http:
        snapshot = listing(http)
        page = snapshot if snapshot["items"] else listing(http, snapshot["cursor"], wait=5)
        assert page["items"] and all(digest_problem(i) is None for i in page["items"])


def test_items_expire_at_their_deadline(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(expire_check=0.1)
    item = fleet.add_item(expires_in=1.0, on_expiry="reject")
    with connect(fleet) as http:
        cursor = listing(http)["cursor"]
        deadline = time.monotonic() + 5
        # pending() does not sweep: only the background check can remove the item.
        while any(i["id"] == item["id"] for i in fleet.pending()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(i["id"] != item["id"] for i in fleet.pending())
        [removal] = listing(http, cursor)["removed"]
        assert (removal["id"], removal["state"], removal["on_expiry"]) == (item["id"], "expired", "reject")


# -- deciding ------------------------------------------------------------------------------------------------------


def test_applied_decision(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    cursor = listing(client)["cursor"]
    response = decide(client, item, key="key-1", comment="looks right")
    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["item_id"], body["decision_id"]) == ("applied", item["id"], "key-1")
    [record] = fleet.applied_decisions()
    assert record == {
        "decision_id": "key-1",
        "item_id": item["id"],
        "verdict": "approve",
        "edited": None,
        "reason_code": None,
        "comment": "looks right",
        "operator": "alice",
        "applied_at": body["applied_at"],
    }
    [removal] = listing(client, cursor)["removed"]
    assert (removal["state"], removal["decided_by"], removal["verdict"]) == ("decided", "alice", "approve")
    assert fleet.decision_requests(item["id"]) == 1


def test_decided_elsewhere_is_a_conflict(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    fleet.decide_elsewhere(item["id"], by="bob", verdict="reject")
    response = decide(client, item)
    assert response.status_code == 409
    body = response.json()
    assert (body["outcome"], body["decided_by"], body["verdict"]) == ("conflict", "bob", "reject")
    assert datetime.fromisoformat(body["decided_at"]).tzinfo is not None
    assert [(d["operator"], d["verdict"]) for d in fleet.applied_decisions()] == [("bob", "reject")]


def test_a_changed_item_is_stale_and_never_applied(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    changed = fleet.change_item(item["id"], risk="low" if item["risk"] != "low" else "high")
    assert changed["risk"] != item["risk"]
    response = decide(client, item)
    assert response.status_code == 409
    assert response.json()["outcome"] == "stale"
    assert response.json()["current_digest"] == changed["digest"] != item["digest"]
    assert fleet.applied_decisions() == []
    assert decide(client, changed).status_code == 200


@pytest.mark.parametrize(
    ("leave", "status", "outcome"),
    [("expire", 410, "expired"), ("withdraw", 410, "withdrawn"), ("supersede", 410, "superseded")],
)
def test_items_that_left_answer_with_their_state(
    fleet: Fleet, client: httpx.Client, leave: str, status: int, outcome: str
) -> None:
    item = fleet.pending()[0]
    result = getattr(fleet, leave)(item["id"])
    response = decide(client, item)
    assert (response.status_code, response.json()["outcome"]) == (status, outcome)
    if outcome == "superseded":
        assert response.json()["superseded_by"] == result["id"]
    if outcome == "expired":
        assert response.json()["on_expiry"] == item["on_expiry"]
    assert fleet.applied_decisions() == []


def test_a_decision_after_the_deadline_is_expired_even_before_the_sweep(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(expire_check=60)
    item = fleet.add_item(expires_in=0.2)
    time.sleep(0.3)
    with connect(fleet) as http:
        response = decide(http, item)
    assert (response.status_code, response.json()["outcome"]) == (410, "expired")
    assert fleet.applied_decisions() == []


def test_unknown_item_is_not_found(client: httpx.Client) -> None:
    response = decide(client, {"id": "itm_nope", "digest": "sha256:" + "0" * 64})
    assert (response.status_code, response.json()["outcome"]) == (404, "not_found")


def test_an_edit_that_breaks_the_schema_is_invalid_and_not_applied(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.add_item(**refund())
    response = edit(client, item, {"customer_id": "cus_1042", "amount": 9000})
    assert response.status_code == 422
    body = response.json()
    assert body["outcome"] == "invalid"
    assert [(e["path"], e["in"]) for e in body["errors"]] == [("/amount", "edited")]
    assert "5000" in body["errors"][0]["message"]
    missing = edit(client, item, {"amount": 10})
    assert [e["path"] for e in missing.json()["errors"]] == ["/customer_id"]
    assert fleet.applied_decisions() == []
    # An invalid decision is not the item's decision: a valid one still applies.
    fixed = {"customer_id": "cus_1042", "amount": 900}
    assert edit(client, item, fixed).status_code == 200
    assert fleet.applied_decisions()[0]["edited"] == fixed


def test_an_edit_with_a_wrong_digest_is_invalid(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.add_item(**refund())
    edited = {"customer_id": "cus_1042", "amount": 900}
    response = decide(client, item, "edit", edited=edited, edited_digest=item_digest({**edited, "amount": 901}))
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["/edited_digest"]
    approve_with_edit = decide(client, item, "approve", edited=edited, edited_digest=item_digest(edited))
    assert approve_with_edit.status_code == 422  # only an edit may carry an edited value
    assert fleet.applied_decisions() == []


def test_an_escalation_edit_is_checked_against_the_output_schema(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.add_item(kind="escalation", agent="crm-agent")  # a lead score: score 0..100, tier A/B/C
    assert item["action"]["name"] == "score_lead"
    wrong = {**item["output"], "score": 150}
    assert [e["path"] for e in edit(client, item, wrong).json()["errors"]] == ["/score"]
    right = {**item["output"], "score": 20, "tier": "C"}
    assert edit(client, item, right).status_code == 200


def test_verdicts_outside_the_allowed_ones_are_invalid(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.add_item(**refund(allowed_decisions=["approve", "reject"]))
    edited = {"customer_id": "cus_1042", "amount": 900}
    response = edit(client, item, edited)
    assert (response.status_code, response.json()["errors"][0]["path"]) == (422, "/verdict")
    unknown = decide(client, item, "maybe")
    assert (unknown.status_code, unknown.json()["outcome"]) == (422, "invalid")
    assert fleet.applied_decisions() == []


def test_a_reject_needs_a_reason(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    response = decide(client, item, "reject")
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["/reason_code"]
    assert decide(client, item, "reject", reason_code="wrong_target").status_code == 200
    assert fleet.applied_decisions()[0]["reason_code"] == "wrong_target"


def test_a_replay_returns_the_first_answer_and_applies_once(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    first = decide(client, item, key="same-key")
    time.sleep(0.01)
    again = decide(client, item, key="same-key")
    assert (again.status_code, again.content) == (first.status_code, first.content) == (200, first.content)
    # The same body spelled differently is the same request.
    body = json.dumps(dict(reversed(list(json.loads(first.request.content).items()))), indent=2)
    respelled = client.post(
        f"/v1/items/{item['id']}/decision",
        content=body,
        headers={"Idempotency-Key": "same-key", "Content-Type": "application/json"},
    )
    assert respelled.content == first.content
    assert len(fleet.applied_decisions()) == 1
    assert fleet.decision_requests(item["id"]) == 3 and fleet.decision_requests() == 3


def test_a_key_reused_with_another_body_is_an_idempotency_conflict(fleet: Fleet, client: httpx.Client) -> None:
    first, second = fleet.pending()[:2]
    assert decide(client, first, key="k").status_code == 200
    other_body = decide(client, first, "reject", key="k", reason_code="wrong_target")
    other_item = decide(client, second, key="k")
    for response in (other_body, other_item):
        assert (response.status_code, response.json()["outcome"]) == (409, "idempotency_conflict")
    assert [d["item_id"] for d in fleet.applied_decisions()] == [first["id"]]


def test_a_final_refusal_is_replayed_too(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    fleet.change_item(item["id"])
    stale = decide(client, item, key="k-stale")
    assert decide(client, item, key="k-stale").content == stale.content
    assert stale.json()["outcome"] == "stale"


def test_concurrent_decisions_apply_exactly_one(fleet: Fleet) -> None:
    item = fleet.pending()[0]
    statuses: list[int] = []

    def one() -> None:
        with connect(fleet) as http:
            statuses.append(decide(http, item).status_code)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 11
    assert len(fleet.applied_decisions()) == 1


def test_malformed_decision_requests(fleet: Fleet, client: httpx.Client) -> None:
    item = fleet.pending()[0]
    url = f"/v1/items/{item['id']}/decision"
    no_key = client.post(url, json={"verdict": "approve", "item_digest": item["digest"]})
    assert (no_key.status_code, no_key.json()["error"]) == (400, "idempotency_key_required")
    bad_json = client.post(url, content=b'{"verdict": "appr', headers={"Idempotency-Key": "k1"})
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "bad_json")
    not_object = client.post(url, json=[1, 2], headers={"Idempotency-Key": "k2"})
    assert (not_object.status_code, not_object.json()["outcome"]) == (422, "invalid")
    assert fleet.decision_requests(item["id"]) == 3 and fleet.applied_decisions() == []
    assert decide(client, item, key="k1").status_code == 200  # a refused request does not claim its key


# -- auth, feedback, the agent side ------------------------------------------------------------------------------


@FLEET_ONLY
def test_auth_refuses_missing_and_wrong_tokens_and_names_the_operator(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(tokens={"tok-alice": "alice"})
    item = fleet.pending()[0]
    with connect(fleet) as anonymous:
        for path in ("/v1/info", "/v1/items"):
            response = anonymous.get(path)
            assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
        refused = decide(anonymous, item)
        assert (refused.status_code, refused.json()["outcome"]) == (401, "unauthorized")
        assert anonymous.post("/_fleet/items", json={}).status_code == 200  # test hooks need no token
    with httpx.Client(base_url=fleet.url, headers={"Authorization": "Bearer tok-mallory"}) as wrong:
        assert wrong.get("/v1/items").status_code == 401
    with httpx.Client(base_url=fleet.url, headers={"Authorization": "Bearer tok-alice"}) as alice:
        assert len(listing(alice)["items"]) == 9
        assert decide(alice, item, operator="mallory").status_code == 200
    assert fleet.applied_decisions()[0]["operator"] == "alice"
    assert fleet.decision_requests(item["id"]) == 2


def test_feedback_is_idempotent_by_key_and_label(fleet: Fleet, client: httpx.Client) -> None:
    def label(label_id: str) -> dict[str, Any]:
        return {"label_id": label_id, "item_id": "itm_1", "item_digest": "sha256:x", "verdict": "edit", "edited": {}}

    batch = {"labels": [label("l1"), label("l2")]}
    first = client.post("/v1/feedback", json=batch, headers={"Idempotency-Key": "b1"})
    assert (first.status_code, first.json()) == (200, {"accepted": 2, "duplicates": 0})
    again = client.post("/v1/feedback", json=batch, headers={"Idempotency-Key": "b1"})
    assert again.content == first.content
    overlap = client.post(
        "/v1/feedback", json={"labels": [label("l2"), label("l3")]}, headers={"Idempotency-Key": "b2"}
    )
    assert overlap.json() == {"accepted": 1, "duplicates": 1}
    conflict = client.post("/v1/feedback", json={"labels": []}, headers={"Idempotency-Key": "b1"})
    assert (conflict.status_code, conflict.json()["error"]) == (409, "idempotency_conflict")
    invalid = client.post("/v1/feedback", json={"labels": [{"item_id": "x"}]}, headers={"Idempotency-Key": "b3"})
    assert invalid.status_code == 422
    assert {e["path"] for e in invalid.json()["errors"]} == {"/labels/0/label_id", "/labels/0/verdict"}
    assert sorted(lab["label_id"] for lab in fleet.feedback()) == ["l1", "l2", "l3"]


def test_agents_submit_items_idempotently(fleet: Fleet, client: httpx.Client) -> None:
    proposal = {k: v for k, v in fleet.pending()[0].items() if k not in ("id", "digest", "seq")}
    proposal["context"] = {**proposal["context"], "summary": "submitted by an agent"}
    created = client.post("/v1/items", json=proposal, headers={"Idempotency-Key": "a1"})
    assert created.status_code == 201
    item = created.json()
    assert digest_problem(item) is None and item["context"]["summary"] == "submitted by an agent"
    replay = client.post("/v1/items", json=proposal, headers={"Idempotency-Key": "a1"})
    assert replay.content == created.content
    assert [i["id"] for i in fleet.pending()].count(item["id"]) == 1
    conflict = client.post("/v1/items", json={**proposal, "risk": "low"}, headers={"Idempotency-Key": "a1"})
    assert conflict.status_code == 409
    broken = client.post("/v1/items", json={**proposal, "risk": "extreme"}, headers={"Idempotency-Key": "a2"})
    assert broken.status_code == 422 and broken.json()["errors"][0]["path"] == "/risk"


def test_an_agent_waits_for_the_outcome_and_withdraws(fleet: Fleet, client: httpx.Client) -> None:
    waiting, decided, left = fleet.pending()[:3]
    assert client.get(f"/v1/items/{waiting['id']}/outcome", params={"wait": 0}).json()["state"] == "pending"
    outcomes: list[dict[str, Any]] = []
    waiter = threading.Thread(
        target=lambda: outcomes.append(client.get(f"/v1/items/{decided['id']}/outcome", params={"wait": 20}).json())
    )
    waiter.start()
    assert decide(client, decided, "reject", reason_code="unsafe").json()["outcome"] == "applied"
    waiter.join(timeout=25)
    assert [(o["state"], o["verdict"], o["reason_code"]) for o in outcomes] == [("decided", "reject", "unsafe")]
    assert client.post(f"/v1/items/{left['id']}/withdraw").json()["state"] == "withdrawn"
    assert decide(client, left).json()["outcome"] == "withdrawn"
    assert client.post(f"/v1/items/{decided['id']}/withdraw").status_code == 409, "a decision stands"
    assert client.get("/v1/items/itm_nobody/outcome").status_code == 404


# -- HTTP plumbing -------------------------------------------------------------------------------------------------


@FLEET_ONLY
def test_http_test_hooks(fleet: Fleet, client: httpx.Client) -> None:
    item = client.post("/_fleet/items", json={"risk": "critical", "expires_in": 600}).json()
    assert item["risk"] == "critical" and digest_problem(item) is None
    changed = client.post(f"/_fleet/items/{item['id']}/change", json={"policy": "changed"}).json()
    assert changed["digest"] != item["digest"] and changed["policy"] == "changed"
    revised = client.post(f"/_fleet/items/{item['id']}/change", json={"policy": "changed"}).json()
    # A change that alters nothing shown still makes a new version.
    assert revised["digest"] != changed["digest"]
    assert revised["seq"] > changed["seq"]
    ids = [i["id"] for i in fleet.pending()]
    assert client.post(f"/_fleet/items/{ids[0]}/decide_elsewhere", json={"by": "dana"}).status_code == 200
    assert client.post(f"/_fleet/items/{ids[1]}/expire").status_code == 200
    assert client.post(f"/_fleet/items/{ids[2]}/withdraw").status_code == 200
    assert client.post(f"/_fleet/items/{ids[2]}/withdraw").status_code == 409  # no longer pending
    assert client.post("/_fleet/items/itm_nope/expire").status_code == 404
    assert client.post("/_fleet/garbage", json={"id": 5}).status_code == 200
    decide(client, {"id": ids[3], "digest": changed["digest"]})  # stale, but counted
    decisions = client.get("/_fleet/decisions").json()
    assert [(d["item_id"], d["operator"]) for d in decisions["applied"]] == [(ids[0], "dana")]
    assert decisions["requests"] == 1
    assert client.get("/_fleet/decisions", params={"item_id": ids[0]}).json()["requests"] == 0
    assert client.get("/_fleet/feedback").json() == {"labels": []}
    pending = {i["id"] for i in client.get("/_fleet/pending").json()["items"]}
    assert pending == {i["id"] for i in fleet.pending()} and ids[0] not in pending


def test_bad_requests_get_json_errors_and_the_server_carries_on(fleet: Fleet, client: httpx.Client) -> None:
    for method, path, status in [("GET", "/nope", 404), ("GET", "/v1/nope", 404), ("DELETE", "/v1/items", 405)]:
        response = client.request(method, path)
        assert response.status_code == status and "error" in response.json()
    assert client.get("/v1/items", params={"limit": "many"}).status_code == 400
    host, port = fleet.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"\x00\xffnot http at all\r\n\r\n")
        raw.recv(1024)
    assert listing(client)["items"]


@FLEET_ONLY
def test_keep_alive_serves_many_requests_on_one_connection(fleet: Fleet) -> None:
    host, port = fleet.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.connect()
    first_socket = connection.sock
    for _ in range(5):
        connection.request("GET", "/v1/info")
        response = connection.getresponse()
        assert response.getheader("Content-Length") == str(len(response.read()))
        assert response.getheader("Connection") != "close"
    assert connection.sock is first_socket
    connection.close()


def test_stop_releases_long_polls_and_closes_the_port() -> None:
    fleet = Fleet(seed=1, interval=None, initial=1)
    url = fleet.start()
    with httpx.Client(base_url=url) as http:
        cursor = listing(http)["cursor"]
    outcome: list[str] = []

    def poll() -> None:
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                outcome.append(str(http.get("/v1/items", params={"cursor": cursor, "wait": 30}).status_code))
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)
    fleet.stop()
    poller.join(timeout=30)  # a safety for a stop that never ends the long-poll; the assertion is that it ended
    assert not poller.is_alive() and outcome
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/info")
