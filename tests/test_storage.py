"""Storage on real SQLite files: the queue order, decisions bound to versions, the outbox, the audit chain."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.db import DecisionRefused, DecisionSyncUpdate, Removal, Store
from storage.records import SyncState, Verdict
from tests import factories
from tests.factories import item


def test_queue_is_most_urgent_first(store: Store) -> None:
    base = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    items = [
        item("low-soon", risk="low", expires_at=(base + timedelta(minutes=1)).isoformat()),
        item("crit-late", risk="critical", expires_at=(base + timedelta(minutes=50)).isoformat()),
        item("crit-soon", risk="critical", expires_at=(base + timedelta(minutes=5)).isoformat()),
        item("high-none", risk="high", expires_at=None),
        item("high-soon", risk="high", expires_at=(base + timedelta(minutes=2)).isoformat()),
    ]
    store.items.apply_changes("billing", items, [], "c1")
    order = [row.id for row in store.queue.rows(0, 10)]
    assert order == ["crit-soon", "crit-late", "high-soon", "high-none", "low-soon"]
    assert store.queue.count() == 5
    assert [store.queue.index_of("billing", i) for i in order] == [0, 1, 2, 3, 4]
    assert [row.id for row in store.queue.rows(2, 2)] == ["high-soon", "high-none"]


def test_changes_and_removals(store: Store) -> None:
    store.items.apply_changes("billing", [item("a"), item("b")], [], "1")
    changed = item("a", policy="a new policy")
    summary = store.items.apply_changes("billing", [changed], [Removal("b", "expired")], "2")
    assert (summary.added, summary.changed, summary.removed) == (0, 1, 1)
    assert store.items.cursor("billing") == "2"
    found = store.items.get("billing", "a")
    assert found is not None and found[0].digest == changed.digest and found[1] == "pending"
    assert store.items.get("billing", "b") is not None and store.items.get("billing", "b")[1] == "removed"  # type: ignore[index]
    assert store.queue.count() == 1


def test_snapshot_drops_what_it_does_not_list_and_keeps_cursor_only_at_the_end(store: Store) -> None:
    store.items.apply_changes("billing", [item("a"), item("b"), item("c")], [], "5")
    generation = store.items.begin_snapshot("billing")
    assert store.items.cursor("billing") is None
    store.items.apply_changes("billing", [item("a")], [], "9", snapshot=generation)
    assert store.items.cursor("billing") is None, "a crash mid-snapshot must start the snapshot over"
    assert store.items.end_snapshot("billing", generation, "10") == 2
    assert store.items.cursor("billing") == "10"
    assert [r.id for r in store.queue.rows(0, 10)] == ["a"]


def test_decision_is_bound_to_the_version_seen(store: Store) -> None:
    old = item("a")
    store.items.apply_changes("billing", [old], [], "1")
    store.items.apply_changes("billing", [item("a", confidence=0.2)], [], "2")
    with pytest.raises(DecisionRefused, match="changed"):
        store.outbox.record(factories.decision(old))
    assert store.outbox.waiting_count() == 0


def test_one_decision_per_item_and_it_leaves_the_queue(store: Store) -> None:
    it = item("a")
    store.items.apply_changes("billing", [it], [], "1")
    store.outbox.record(factories.decision(it))
    assert store.queue.count() == 0
    with pytest.raises(DecisionRefused, match="already decided"):
        store.outbox.record(factories.decision(it, Verdict.reject, reason_code="unsafe"))
    assert store.outbox.waiting_count() == 1
    # Listing the same version again does not put a decided item back in the queue.
    store.items.apply_changes("billing", [it], [], "2")
    assert store.queue.count() == 0


def test_decision_on_an_item_that_left_is_refused(store: Store) -> None:
    it = item("a")
    store.items.apply_changes("billing", [it], [Removal("a", "decided")], "1")
    with pytest.raises(DecisionRefused, match="left the queue"):
        store.outbox.record(factories.decision(it))


def test_outbox_retry_then_final_outcome(store: Store) -> None:
    it = item("a")
    store.items.apply_changes("billing", [it], [], "1")
    decision = factories.decision(it)
    store.outbox.record(decision)
    assert [d.id for d in store.outbox.due(10, ["billing"])] == [decision.id]
    assert store.outbox.due(10, ["other"]) == []
    store.outbox.mark_sending([decision.id])
    store.outbox.record_results([DecisionSyncUpdate(decision.id, None, "http_503", "busy", None, next_attempt_at=4e9)])
    assert store.outbox.due(10, ["billing"]) == [], "not due before its retry time"
    assert store.outbox.waiting_count() == 1
    assert store.outbox.record_results(
        [DecisionSyncUpdate(decision.id, SyncState.conflict, "conflict", "by bob", {"x": 1})]
    ) == [decision.id]
    assert store.outbox.record_results([DecisionSyncUpdate(decision.id, SyncState.applied, "applied", "")]) == [], (
        "final once"
    )
    problems = store.outbox.unseen_problems()
    assert [(p.decision.id, p.outcome, p.detail) for p in problems] == [(decision.id, "conflict", "by bob")]
    store.outbox.mark_seen([decision.id])
    assert store.outbox.unseen_problems() == []


def test_decisions_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    first = Store(path)
    it = item("a", kind="escalation", output={"label": "billing"})
    first.items.apply_changes("billing", [it], [], "1")
    decision = factories.decision(it, Verdict.edit, edited={"label": "refund"})
    first.outbox.record(decision)
    first.close()
    again = Store(path)
    [waiting] = again.outbox.due(10, ["billing"])
    assert waiting == decision
    assert again.integrity_check() == "ok"
    again.close()


def test_audit_chain_records_decisions_and_outcomes_and_catches_tampering(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    store = Store(path)
    a, b = item("a"), item("b")
    store.items.apply_changes("billing", [a, b], [], "1")
    da = factories.decision(a)
    store.outbox.record(da)
    store.outbox.record(factories.decision(b, Verdict.reject, reason_code="unsafe"))
    store.outbox.record_results([DecisionSyncUpdate(da.id, SyncState.applied, "applied", "")])
    result = store.audit.verify()
    assert (result.ok, result.records) == (True, 3)
    store.close()

    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET operator = 'mallory' WHERE seq = 2")
    raw.execute("DROP TRIGGER audit_no_update")
    raw.execute("UPDATE audit SET operator = 'mallory' WHERE seq = 2")
    raw.commit()
    raw.close()
    tampered = Store(path)
    result = tampered.audit.verify()
    assert (result.ok, result.first_bad) == (False, 2)
    tampered.close()


def test_a_newer_schema_is_refused_with_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(RuntimeError, match="newer approval-console"):
        Store(path)


def test_labels_follow_decisions_undos_and_expiries(store: Store) -> None:
    from storage.labels import Label

    kept, undone, expired = item("kept"), item("undone"), item("expired")
    store.items.apply_changes("billing", [kept, undone, expired], [], "1")
    decision = factories.decision(kept, Verdict.reject, reason_code="unsafe")
    store.outbox.record(decision, first_shown_at=decision.decided_at)
    taken_back = factories.decision(undone)
    store.outbox.record(taken_back, hold_seconds=60)
    store.outbox.undo(taken_back.id, "alice")
    store.items.apply_changes("billing", [], [Removal("expired", "expired")], "2")
    records = [Label.model_validate_json(r[0]) for r in store.db.execute("SELECT record FROM labels").fetchall()]
    labels = {label.item_id: label for label in records}
    assert set(labels) == {"kept", "expired"}, "an undone decision leaves no label"
    assert (labels["kept"].verdict, labels["kept"].reason_code, labels["kept"].seconds_to_decide) == (
        "reject",
        "unsafe",
        0,
    )
    assert labels["kept"].label_id == decision.id
    assert labels["expired"].verdict == "timed_out" and labels["expired"].operator is None


def test_deadline_alerts_look_past_items_already_overdue(store: Store) -> None:
    now = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    overdue = [item(f"late-{n}", expires_at=(now - timedelta(minutes=1)).isoformat()) for n in range(150)]
    soon = item("soon", expires_at=(now + timedelta(seconds=60)).isoformat())
    later = item("later", expires_at=(now + timedelta(minutes=30)).isoformat())
    store.items.apply_changes("billing", [*overdue, soon, later], [], "1")
    due = store.queue.deadlines_between(now.timestamp(), now.timestamp() + 120)
    assert [row.id for row in due] == ["soon"], "150 overdue items must not crowd out the one about to pass"
