"""The native protocol's payloads read without a server: listing pages, and answers classified for every adapter."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from console.engine.sources.answers import Kind, busy_answer, classify, read_refused
from console.engine.sources.native_payloads import interpret_decision_answer, interpret_feedback_answer, listing_page
from storage.records import SyncState
from tests.factories import payload


def page_bytes(**envelope: Any) -> bytes:
    return json.dumps({"items": [], "removed": [], "cursor": None, "has_more": False, **envelope}).encode()


def test_a_listing_page_keeps_valid_items_and_quarantines_the_rest_with_reasons() -> None:
    broken = {**payload("itm_2"), "risk": "apocalyptic"}
    raw = page_bytes(
        items=[payload("itm_1"), broken, "not an object"],
        removed=[{"id": "itm_0", "state": "decided", "decided_by": "bob", "verdict": "approve"}, {"no": "id"}],
        cursor="c-2",
        has_more=True,
    )
    page = listing_page("billing", 1_000_000, raw, "c-1")
    assert [item.id for item in page.items] == ["itm_1"]
    assert page.rejected[0].item_id == "itm_2" and "risk" in page.rejected[0].reason
    assert "must be a JSON object" in page.rejected[1].reason
    assert [(r.item_id, r.state) for r in page.removed] == [("itm_0", "decided")]
    assert json.loads(page.removed[0].detail) == {"decided_by": "bob", "verdict": "approve"}
    assert (page.cursor, page.has_more) == ("c-2", True)


def test_an_item_over_the_cap_is_quarantined_before_it_is_checked() -> None:
    big = payload("itm_big", policy="x" * 5_000)
    page = listing_page("billing", 2_000, page_bytes(items=[payload("itm_1"), big]), None)
    assert [item.id for item in page.items] == ["itm_1"]
    [refused] = page.rejected
    assert refused.item_id == "itm_big" and "over this source's cap of 2,000" in refused.reason


def test_more_without_a_cursor_ends_the_paging_and_keeps_the_old_cursor() -> None:
    page = listing_page("billing", 1_000_000, page_bytes(has_more=True), "c-1")
    assert (page.cursor, page.has_more) == ("c-1", False)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *((200, Kind.ok), (204, Kind.ok), (302, Kind.redirect), (401, Kind.auth), (403, Kind.auth)),
        *((429, Kind.throttled), (503, Kind.throttled), (500, Kind.failing), (502, Kind.failing)),
        *((404, Kind.refused), (422, Kind.refused)),
    ],
)
def test_every_status_falls_in_one_class(status: int, kind: Kind) -> None:
    answer = classify(httpx.Response(status, headers={"Retry-After": "7", "Location": "https://elsewhere/"}))
    assert answer.kind is kind
    assert answer.busy is (kind in (Kind.throttled, Kind.failing))
    assert (answer.retry_after, answer.location) == (7.0, "https://elsewhere/")


def test_a_refused_read_says_why_and_how_to_pace() -> None:
    auth = read_refused(classify(httpx.Response(401)), auth="; fix: set the token", otherwise="-")
    assert (str(auth), auth.auth) == ("refused our credentials (401); fix: set the token", True)
    busy = read_refused(classify(httpx.Response(429, headers={"Retry-After": "0"})), auth="", otherwise="-")
    assert (str(busy), busy.throttled, busy.retry_after) == ("busy (429)", True, 1.0)
    other = read_refused(classify(httpx.Response(500)), auth="", otherwise="answered 500 to a listing")
    assert (str(other), other.auth, other.throttled) == ("answered 500 to a listing", False, False)


def test_a_busy_decision_is_retried_at_the_servers_pace() -> None:
    answer = busy_answer(classify(httpx.Response(503, headers={"Retry-After": "12"})), {"detail": "later"})
    assert (answer.state, answer.outcome, answer.retry_after) == (None, "http_503", 12.0)


@pytest.mark.parametrize(
    ("status", "body", "state", "outcome"),
    [
        (200, {"outcome": "applied"}, SyncState.applied, "applied"),
        (409, {"outcome": "stale"}, SyncState.conflict, "stale"),
        (400, {"error": "bad_json"}, SyncState.failed, "bad_json"),
        (200, {"outcome": "stale"}, None, "uncertain"),  # status and body disagree: sent again under the same key
        (401, {}, None, "unauthorized"),
        (307, {}, None, "http_307"),
    ],
)
def test_a_decision_answer_is_final_only_when_status_and_body_agree(
    status: int, body: dict[str, Any], state: SyncState | None, outcome: str
) -> None:
    answer = interpret_decision_answer(httpx.Response(status, json=body))
    assert (answer.state, answer.outcome) == (state, outcome)


def test_a_feedback_refusal_names_only_the_labels_its_errors_point_at() -> None:
    body = {"error": "invalid", "errors": [{"path": "/labels/1/verdict", "message": "bad"}]}
    answer = interpret_feedback_answer(httpx.Response(422, json=body), ["a", "b", "c"])
    assert set(answer.refused) == {"b"} and answer.retry_after == 0.0
    assert interpret_feedback_answer(httpx.Response(200, json={"accepted": 3}), ["a", "b", "c"]).sent == {"a", "b", "c"}
