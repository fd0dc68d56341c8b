"""Extending a deadline (PROTOCOL.md section 10) against the demo fleet and `serve`, over real HTTP on loopback: the
offer, the new deadline and version, the maximum, a stale digest, items that cannot be extended, and `serve` keeping
the new deadline across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.engine.sources.native_payloads import interpret_extend_answer
from console.servers.fleet import Fleet
from storage.records import Item, digest_problem, item_digest, shown_part
from tests import factories
from tests.queue_servers import TestServe, connect
from tests.test_fleet import decide, listing


@pytest.fixture(params=["fleet", "serve"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Fleet, httpx.Client]]:
    server: Fleet | TestServe
    server = Fleet(seed=5, interval=None, initial=0) if request.param == "fleet" else TestServe(tmp_path / "serve")
    server.start()
    with connect(server, timeout=10) as http:
        yield server, http  # type: ignore[misc]
    server.close() if isinstance(server, TestServe) else server.stop()


def extend(http: httpx.Client, item: dict[str, Any], seconds: Any, **fields: Any) -> httpx.Response:
    body = {"seconds": seconds, "item_digest": item["digest"], "operator": "alice", **fields}
    return http.post(f"/v1/items/{item['id']}/extend", json=body)


def when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_info_announces_extend(served: tuple[Fleet, httpx.Client]) -> None:
    _, http = served
    info = http.get("/v1/info").json()
    assert info["features"]["extend"] is True
    assert "extend" in info["additions"]


def test_an_extension_moves_the_deadline_and_makes_a_new_version(served: tuple[Fleet, httpx.Client]) -> None:
    fleet, http = served
    item = fleet.add_item(kind="approval", expires_in=600, extend={"max_seconds": 3600})
    cursor = listing(http)["cursor"]

    answer = extend(http, item, 900)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "extended"
    assert when(body["expires_at"]) == when(item["expires_at"]) + 900
    assert body["digest"] != item["digest"]
    new = body["item"]
    assert digest_problem(new) is None  # the answer's item verifies like a listed one
    assert new["extend"] == {"max_seconds": 3600, "used_seconds": 900}
    assert Item.model_validate(new).extendable_seconds == 2700
    # Consoles hear of the new version in the next listing, as of any change.
    relisted = listing(http, cursor)["items"]
    expected = [(item["id"], new["digest"], new["expires_at"])]
    assert [(i["id"], i["digest"], i["expires_at"]) for i in relisted] == expected
    # A decision on the version shown before the extension is stale; on the new one it applies.
    assert decide(http, item).json()["outcome"] == "stale"
    assert decide(http, new).json()["outcome"] == "applied"


def test_an_extension_beyond_the_maximum_is_refused_and_changes_nothing(served: tuple[Fleet, httpx.Client]) -> None:
    fleet, http = served
    item = fleet.add_item(kind="approval", expires_in=600, extend={"max_seconds": 1200})
    first = extend(http, item, 1000).json()["item"]

    too_long = extend(http, first, 201)

    assert too_long.status_code == 422
    assert too_long.json()["outcome"] == "invalid"
    assert too_long.json()["max_seconds"] == 200
    assert too_long.json()["errors"][0]["path"] == "/seconds"
    assert listing(http)["items"][0]["digest"] == first["digest"]  # nothing moved
    assert extend(http, first, 200).status_code == 200  # the rest of the allowance is still there


def test_an_extension_on_a_stale_digest_is_refused(served: tuple[Fleet, httpx.Client]) -> None:
    fleet, http = served
    item = fleet.add_item(kind="approval", expires_in=600, extend={"max_seconds": 3600})
    extend(http, item, 60)

    replay = extend(http, item, 60)  # the same request again (a retry, or a second console on the old version)

    assert replay.status_code == 409
    assert replay.json()["outcome"] == "stale"
    assert replay.json()["current_digest"] != item["digest"]
    assert when(listing(http)["items"][0]["expires_at"]) == when(item["expires_at"]) + 60  # extended once only


@pytest.mark.parametrize(
    ("overrides", "seconds", "status", "outcome"),
    [
        ({}, 60, 409, "not_extendable"),  # the agent offers no extension
        ({"extend": {"max_seconds": 60}}, 0, 422, "invalid"),
        ({"extend": {"max_seconds": 60}}, 1.5, 422, "invalid"),
        ({"extend": {"max_seconds": 60}}, "60", 422, "invalid"),
    ],
)
def test_what_cannot_be_extended_is_refused_by_name(
    served: tuple[Fleet, httpx.Client], overrides: dict[str, Any], seconds: Any, status: int, outcome: str
) -> None:
    fleet, http = served
    item = fleet.add_item(kind="escalation", expires_in=600, **overrides)
    answer = extend(http, item, seconds)
    assert (answer.status_code, answer.json()["outcome"]) == (status, outcome)


def test_a_decided_or_unknown_item_answers_its_final_outcome(served: tuple[Fleet, httpx.Client]) -> None:
    fleet, http = served
    item = fleet.add_item(kind="approval", expires_in=600, extend={"max_seconds": 3600})
    decide(http, item, "reject", reason_code="unsafe")
    assert extend(http, item, 60).json()["outcome"] == "conflict"
    missing = http.post("/v1/items/itm_nothing/extend", json={"seconds": 60, "item_digest": item["digest"]})
    assert (missing.status_code, missing.json()["outcome"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("offer", "expires"),
    [({"max_seconds": 0}, True), ({"max_seconds": "3600"}, True), ([3600], True), ({"max_seconds": 60}, False)],
)
def test_an_agent_posting_an_unusable_offer_is_told(
    served: tuple[Fleet, httpx.Client], offer: Any, expires: bool
) -> None:
    _, http = served
    item = {
        "kind": "approval",
        "agent": "billing-agent",
        "action": {"name": "issue_refund", "args": {"amount": 5}},
        "risk": "high",
        "expires_at": "2099-01-01T00:00:00Z" if expires else None,
        "extend": offer,
    }
    answer = http.post("/v1/items", json=item, headers={"Idempotency-Key": f"offer-{offer}-{expires}"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["path"] == "/extend"


def test_serve_keeps_an_extended_deadline_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "serve"
    server = TestServe(data)
    server.start()
    with connect(server, timeout=10) as http:
        item = server.add_item(kind="approval", expires_in=600, extend={"max_seconds": 3600})
        extended = extend(http, item, 300).json()["item"]
    server.close()
    again = TestServe(data)
    again.start()
    try:
        with connect(again, timeout=10) as http:
            listed = listing(http)["items"]
            assert [(i["digest"], i["expires_at"], i["extend"]) for i in listed] == [
                (extended["digest"], extended["expires_at"], {"max_seconds": 3600, "used_seconds": 300})
            ]
            assert extend(http, extended, 3301).json()["max_seconds"] == 3300  # the allowance used is kept too
    finally:
        again.close()


# -- the console's reading of the answers (pure: no server) ----------------------------------------------------------


def _answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_the_console_takes_only_an_extended_item_it_can_verify() -> None:
    shown = factories.item("itm_1", expires_at="2026-11-21T23:55:00Z", extend={"max_seconds": 600})
    payload = factories.payload(
        "itm_1", expires_at="2026-11-22T00:05:00Z", extend={"max_seconds": 600, "used_seconds": 600}
    )
    good = {**payload, "digest": item_digest(shown_part(payload))}
    taken = interpret_extend_answer("billing", shown, _answer(200, {"outcome": "extended", "item": good}))
    assert taken.item is not None and taken.item.extendable_seconds == 0 and taken.item.source == "billing"
    forged = {**good, "expires_at": "2026-11-23T00:00:00Z"}  # the digest no longer binds it
    assert interpret_extend_answer("billing", shown, _answer(200, {"outcome": "extended", "item": forged})).item is None
    other = {**payload, "id": "itm_2"}
    other = {**other, "digest": item_digest(shown_part(other))}
    assert interpret_extend_answer("billing", shown, _answer(200, {"outcome": "extended", "item": other})).item is None


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (409, {"outcome": "stale", "current_digest": "sha256:00"}, "changed since you saw it"),
        (409, {"outcome": "not_extendable"}, "does not allow more time"),
        (422, {"outcome": "invalid", "detail": "/seconds: at most 60 more seconds"}, "at most 60 more seconds"),
        (404, {"error": "not_found", "detail": "no route"}, "cannot extend deadlines"),
        (418, {"outcome": "teapot"}, "answered 418; nothing changed"),
        (200, {"outcome": "applied"}, "answered 200; nothing changed"),
    ],
)
def test_a_refused_extension_says_why_and_changes_nothing(status: int, body: Any, said: str) -> None:
    shown = factories.item("itm_1", expires_at="2026-11-21T23:55:00Z", extend={"max_seconds": 600})
    answer = interpret_extend_answer("billing", shown, _answer(status, body))
    assert answer.item is None and said in answer.detail
