"""The demo fleet and `serve` follow PROTOCOL.md's clarified rules: their answers' status and body agree, their ids
and cursors fit, they send no Retry-After outside the bounds, and they refuse what an agent may not create (duplicate
member names, inexact integers, remote schema references)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.engine.sources.answers import RETRY_AFTER_CEILING, RETRY_AFTER_FLOOR
from console.engine.sources.native_payloads import interpret_decision_answer, interpret_feedback_answer
from console.servers.fleet import Fleet
from storage.records import SyncState
from tests.queue_servers import ByRole, TestServe
from tests.test_fleet import decide, edit, listing

ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,200}")
CURSOR = re.compile(r"[A-Za-z0-9\-._~:+/=]{1,1024}")


class Recording(httpx.Client):
    """A client that keeps every answer, to check what the fleet sent besides what each test looks at."""

    def __init__(self, base_url: str, auth: httpx.Auth | None) -> None:
        super().__init__(base_url=base_url, timeout=10, auth=auth)
        self.answers: list[httpx.Response] = []

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = super().send(request, **kwargs)
        response.read()
        self.answers.append(response)
        return response


@pytest.fixture(params=["fleet", "serve"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Fleet, Recording]]:
    """The demo fleet, then `serve` with the same agent-side hooks (tests/queue_servers.py)."""
    fleet: Fleet | TestServe
    fleet = (
        Fleet(seed=17, interval=None, initial=12)
        if request.param == "fleet"
        else TestServe(tmp_path, seed=17, initial=12)
    )
    fleet.start()
    with Recording(fleet.url, ByRole(fleet) if isinstance(fleet, TestServe) else None) as http:
        yield fleet, http  # type: ignore[misc]
        for answer in http.answers:  # every answer of every test here
            value = answer.headers.get("Retry-After")
            assert value is None or (value.isdigit() and RETRY_AFTER_FLOOR <= int(value) <= RETRY_AFTER_CEILING)
    fleet.close() if isinstance(fleet, TestServe) else fleet.stop()


def test_every_decision_answer_is_one_the_console_takes_as_final(served: tuple[Fleet, Recording]) -> None:
    fleet, http = served
    items = fleet.pending()
    schema_item = next(i for i in items if i["action"]["args_schema"] and "edit" in i["allowed_decisions"])
    rest = [i for i in items if i is not schema_item]
    answers: dict[str, httpx.Response] = {}
    key = str(uuid.uuid4())
    answers["applied"] = decide(http, rest[0], key=key)
    answers["replay"] = decide(http, rest[0], key=key)
    answers["idempotency_conflict"] = decide(http, rest[0], "reject", key=key, reason_code="other")
    answers["conflict"] = decide(http, rest[0])
    fleet.change_item(rest[1]["id"], policy="tightened")
    answers["stale"] = decide(http, rest[1])
    fleet.expire(rest[2]["id"])
    answers["expired"] = decide(http, rest[2])
    fleet.withdraw(rest[3]["id"])
    answers["withdrawn"] = decide(http, rest[3])
    fleet.supersede(rest[4]["id"], policy="replaced")
    answers["superseded"] = decide(http, rest[4])
    answers["not_found"] = decide(http, {**rest[5], "id": "itm_nobody"})
    answers["invalid verdict"] = decide(http, rest[5], "maybe")
    answers["invalid reject"] = decide(http, rest[5], "reject")
    answers["invalid edit"] = edit(http, schema_item, {"definitely": "not what the schema wants"})
    url = f"/v1/items/{rest[6]['id']}/decision"
    answers["idempotency_key_required"] = http.post(url, json={"verdict": "approve"})
    answers["bad_json"] = http.post(url, content=b"{not json", headers={"Idempotency-Key": str(uuid.uuid4())})
    duplicate = b'{"verdict": "reject", "verdict": "approve", "item_digest": "x"}'
    answers["duplicate names"] = http.post(url, content=duplicate, headers={"Idempotency-Key": str(uuid.uuid4())})
    expected = {
        "applied": (SyncState.applied, "applied"),
        "replay": (SyncState.applied, "applied"),
        "idempotency_conflict": (SyncState.conflict, "idempotency_conflict"),
        "conflict": (SyncState.conflict, "conflict"),
        "stale": (SyncState.conflict, "stale"),
        "expired": (SyncState.conflict, "expired"),
        "withdrawn": (SyncState.conflict, "withdrawn"),
        "superseded": (SyncState.conflict, "superseded"),
        "not_found": (SyncState.conflict, "not_found"),
        "invalid verdict": (SyncState.conflict, "invalid"),
        "invalid reject": (SyncState.conflict, "invalid"),
        "invalid edit": (SyncState.conflict, "invalid"),
        "idempotency_key_required": (SyncState.failed, "idempotency_key_required"),
        "bad_json": (SyncState.failed, "bad_json"),
        "duplicate names": (SyncState.failed, "bad_json"),
    }
    seen = {name: interpret_decision_answer(answer) for name, answer in answers.items()}
    assert {name: (result.state, result.outcome) for name, result in seen.items()} == expected
    assert len(fleet.applied_decisions()) == 1


def test_every_feedback_answer_is_sent_or_refused_never_odd(served: tuple[Fleet, Recording]) -> None:
    _, http = served
    label = {"label_id": "lbl-1", "item_id": "itm_x", "verdict": "approve"}
    key = str(uuid.uuid4())
    sent = http.post("/v1/feedback", json={"labels": [label]}, headers={"Idempotency-Key": key})
    assert interpret_feedback_answer(sent, ["lbl-1"]).sent == {"lbl-1"}
    refusals = [
        http.post("/v1/feedback", json={"labels": [{**label, "verdict": "?"}]}, headers={"Idempotency-Key": "k2"}),
        http.post("/v1/feedback", json={"labels": []}, headers={"Idempotency-Key": key}),  # another body, same key
        http.post("/v1/feedback", json={"labels": [label]}),  # no key
        http.post("/v1/feedback", content=b'{"labels": [], "labels": []}', headers={"Idempotency-Key": "k3"}),
    ]
    for answer in refusals:
        result = interpret_feedback_answer(answer, ["lbl-1"])
        assert set(result.refused) == {"lbl-1"}, (answer.status_code, answer.text)


def test_ids_and_cursors_fit_the_rules(served: tuple[Fleet, Recording]) -> None:
    fleet, http = served
    page = listing(http)
    cursors = [page["cursor"]]
    for n in range(30):
        added = fleet.add_item()
        if n % 3 == 0:
            fleet.change_item(added["id"], policy=f"changed {n}")
        if n % 5 == 0:
            fleet.decide_elsewhere(added["id"])
        page = listing(http, cursors[-1], limit=4)
        cursors.append(page["cursor"])
    ids = {item["id"] for item in fleet.pending()} | {d["item_id"] for d in fleet.applied_decisions()}
    assert ids and all(ID.fullmatch(i) and i not in (".", "..") for i in ids)
    assert all(CURSOR.fullmatch(c) for c in cursors)


def _agent_item(fleet: Fleet) -> dict[str, Any]:
    listed = fleet.pending()[0]
    return {k: v for k, v in listed.items() if k not in ("id", "digest", "seq", "claimed_by")}


def test_what_an_agent_may_not_create_is_refused(served: tuple[Fleet, Recording]) -> None:
    fleet, http = served
    item = _agent_item(fleet)

    def create(body: bytes) -> httpx.Response:
        return http.post("/v1/items", content=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    assert create(json.dumps(item).encode()).status_code == 201
    duplicate = json.dumps(item)[:-1] + ', "risk": "low"}'
    assert (create(duplicate.encode()).status_code, create(duplicate.encode()).json()["error"]) == (400, "bad_json")
    huge = json.loads(json.dumps(item))
    huge["action"]["args"] = {"count": 2**53}
    assert create(json.dumps(huge).encode()).status_code == 422
    local = {"$defs": {"n": {"type": "number"}}, "type": "object", "properties": {"count": {"$ref": "#/$defs/n"}}}
    remote = {"type": "object", "properties": {"count": {"$ref": "https://schemas.example/beacon.json"}}}
    for schema, status in ((local, 201), (remote, 422)):
        body = {**item, "action": {**item["action"], "args": {"count": 1}, "args_schema": schema}}
        answer = create(json.dumps(body).encode())
        assert answer.status_code == status, answer.text
