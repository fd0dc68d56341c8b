"""Marks and the bulk plan over a real Store: which marked items a bulk decision covers, which it skips and why, and
the digests mark-all reads in one query."""

from __future__ import annotations

from console.engine.marks import CHANGED, LEFT, Marks, plan_bulk
from storage.db import Store
from storage.items import Removal
from storage.queue import QueueView
from storage.records import Verdict
from tests.factories import item


def test_the_plan_skips_what_a_bulk_decision_must_not_cover(store: Store) -> None:
    items = [
        item("itm_low", risk="low"),
        item("itm_medium", risk="medium"),
        item("itm_high", risk="high"),
        item("itm_critical", risk="critical"),
        item("itm_held", risk="low", claimed_by="bob"),
        item("itm_mine", risk="low", claimed_by="alice"),
        item("itm_no_approve", risk="low", allowed_decisions=["reject"]),
        item("itm_changed", risk="low"),
        item("itm_gone", risk="low"),
    ]
    store.items.apply_changes("billing", items, [], "c1")
    marks = Marks()
    assert marks.mark(store.queue.visible_digests(QueueView())) == len(items)
    store.items.apply_changes("billing", [item("itm_changed", risk="low", workflow="revised")], [], "c2")
    store.items.apply_changes("billing", [], [Removal("itm_gone", "withdrawn")], "c3")

    approve = plan_bulk(marks, Verdict.approve, store.items.get, "alice")
    assert [i.id for i in approve.decide] == ["itm_low", "itm_medium", "itm_mine"]
    why = {s.key[1]: s.why for s in approve.skipped}
    assert why["itm_high"].startswith("high risk") and why["itm_critical"].startswith("critical")
    assert why["itm_held"] == "bob holds it"
    assert why["itm_no_approve"] == "its source does not allow approve"
    assert why["itm_changed"] == CHANGED and why["itm_gone"] == LEFT
    assert all(i.digest == marks.digest((i.source, i.id)) for i in approve.decide), "the versions marked"

    reject = plan_bulk(marks, Verdict.reject, store.items.get, "alice")
    rejected = {i.id for i in reject.decide}
    assert rejected == {"itm_low", "itm_medium", "itm_high", "itm_critical", "itm_mine", "itm_no_approve"}, (
        "rejecting high and critical items in bulk is allowed"
    )

    assert marks.keep_pending(store.queue.pending_digests) == 1, "the withdrawn item's mark vanishes"
    assert ("billing", "itm_gone") not in marks and ("billing", "itm_changed") in marks


def test_mark_all_reads_the_filters_matches_and_keeps_the_digest_seen_first(store: Store) -> None:
    nine = [item(f"itm_{n}", risk="low", workflow=f"w{n % 3}") for n in range(9)]
    store.items.apply_changes("billing", nine, [], "c")
    view = QueueView(filter_text="workflow:w1")
    rows = store.queue.visible_digests(view)
    assert sorted(r[1] for r in rows) == ["itm_1", "itm_4", "itm_7"]
    assert {r[2] for r in rows} == {store.items.get("billing", r[1])[0].digest for r in rows}  # type: ignore[index]
    marks = Marks()
    marks.mark(rows)
    first = marks.digest(("billing", "itm_1"))
    assert marks.mark([("billing", "itm_1", "sha256:other")]) == 0 and marks.digest(("billing", "itm_1")) == first
    assert marks.toggle(("billing", "itm_1"), "x") is False and len(marks) == 2
    assert store.queue.pending_digests([("billing", "itm_4"), ("billing", "nope")]) == {
        ("billing", "itm_4"): marks.digest(("billing", "itm_4"))
    }
