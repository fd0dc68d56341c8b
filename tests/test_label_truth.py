"""Labels say what happened: a lost conflict, an expiry of a shown item, the trace, and labels stored before version 2.

Real SQLite files in tmp dirs, through the Store the console uses.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from console.cli.labels import format_stats
from storage import schema
from storage.db import DecisionSyncUpdate, Store
from storage.items import Removal
from storage.label_stats import label_stats
from storage.labels import LABEL_VERSION, Label, build_label, expiry_label, record_json
from storage.records import MAX_NAME, Item, Outcome, SyncState, Verdict, now_utc
from tests import factories

TRACE = {"run_id": "1f0c2a4e-0000-4000-8000-000000000001", "project": "billing", "url": "https://smith.example/r/1"}


def labels_of(store: Store) -> dict[str, Label]:
    rows = store.db.execute("SELECT item_id, record FROM labels").fetchall()
    return {item_id: Label.model_validate_json(record) for item_id, record in rows}


def test_an_item_trace_is_kept_when_usable_and_dropped_without_losing_the_item_when_not() -> None:
    kept = factories.item(trace={**TRACE, "later_field": "ignored"})
    assert kept.trace == TRACE, "known members kept, members of a later version ignored"
    for bad in (
        "run-1",  # not an object
        {"run_id": 7},
        {"run_id": ""},
        {"run_id": "x" * (MAX_NAME + 1)},
        {"trace_id": "a\x1b[31mb"},
        {"url": "javascript:alert(1)"},
        {"run_id": "r1", "url": "file:///etc/passwd"},  # one bad member drops the whole trace
    ):
        item = factories.item(trace=bad)
        assert item.trace is None and item.id == "itm_1", bad
    assert factories.item(trace={}).trace is None


def test_a_label_carries_trace_inputs_and_reasoning_never_the_summary() -> None:
    item = factories.item(trace=TRACE)
    label = build_label(item, factories.decision(item), None)
    assert label.label_version == LABEL_VERSION == 2
    assert label.trace == TRACE
    assert label.inputs == {"action": "issue_refund", "args": {"amount": 1250.0, "customer_id": "cus_1"}}
    assert label.reasoning == "two captures" and "double charge" not in str(label.inputs)
    assert label.outcome == "pending"
    bare = factories.item(kind="escalation", action=None, output={"tag": "x"})
    expiry = expiry_label(bare, now_utc())
    assert (expiry.inputs, expiry.outcome, expiry.trace) == (None, "timed_out", None)


def _decided(store: Store, item_id: str, verdict: Verdict = Verdict.approve) -> str:
    item = factories.item(item_id)
    store.items.apply_changes("billing", [item], [], None)
    decision = factories.decision(factories.item(item_id, source="billing"), verdict)
    store.outbox.record(decision)
    return decision.id


def test_a_lost_conflict_is_its_own_outcome_in_labels_and_stats(store: Store) -> None:
    won = _decided(store, "itm_won")
    lost = _decided(store, "itm_lost")
    late = _decided(store, "itm_late", Verdict.reject)
    stale = _decided(store, "itm_stale")
    store.outbox.record_results(
        [
            DecisionSyncUpdate(won, SyncState.applied, Outcome.applied.value, ""),
            DecisionSyncUpdate(lost, SyncState.conflict, Outcome.conflict.value, "decided by bob"),
            DecisionSyncUpdate(late, SyncState.conflict, Outcome.expired.value, "too late"),
            DecisionSyncUpdate(stale, SyncState.conflict, Outcome.stale.value, "changed"),
        ]
    )
    outcomes = {item_id: label.outcome for item_id, label in labels_of(store).items()}
    assert outcomes == {
        "itm_won": "applied",
        "itm_lost": "conflict_lost",
        "itm_late": "timed_out",
        "itm_stale": "refused",
    }
    stats = label_stats(store.db.conn)
    overall = stats.overall
    assert overall.conflicts_lost == 1 and overall.total == 4
    assert overall.counts == {"approve": 2, "reject": 1, "edit": 0, "timed_out": 0}, "the lost approval is apart"
    assert overall.approve_rate == round(2 / 3, 4)
    # `approval-console stats` says it too, on the line of every agent.
    assert all(line.endswith("conflicts lost 1") for line in format_stats(stats).splitlines()[1:])


def test_an_expiry_of_a_shown_item_keeps_when_it_was_first_shown(store: Store) -> None:
    shown, unseen = factories.item("itm_shown"), factories.item("itm_unseen")
    store.items.apply_changes("billing", [shown, unseen], [], None)
    when = datetime(2026, 11, 21, 23, 5, tzinfo=UTC)
    assert store.items.mark_shown("billing", "itm_shown", shown.digest, when.timestamp())
    later = when + timedelta(minutes=3)
    assert not store.items.mark_shown("billing", "itm_shown", shown.digest, later.timestamp()), "first time kept"
    assert not store.items.mark_shown("billing", "itm_shown", "sha256:" + "0" * 64, later.timestamp())
    store.items.apply_changes("billing", [], [Removal("itm_shown", "expired"), Removal("itm_unseen", "expired")], None)
    found = labels_of(store)
    assert found["itm_shown"].first_shown_at == when
    assert found["itm_unseen"].first_shown_at is None
    assert found["itm_shown"].verdict == "timed_out" and found["itm_shown"].outcome == "timed_out"


def test_a_new_version_starts_unshown(store: Store) -> None:
    first = factories.item("itm_1")
    store.items.apply_changes("billing", [first], [], None)
    store.items.mark_shown("billing", "itm_1", first.digest, time.time())
    second = factories.item("itm_1", policy="changed")
    store.items.apply_changes("billing", [second], [], None)
    store.items.apply_changes("billing", [], [Removal("itm_1", "expired")], None)
    [label] = labels_of(store).values()
    assert label.item_digest == second.digest and label.first_shown_at is None


def test_a_decision_without_a_kept_shown_time_reads_the_stored_one(store: Store) -> None:
    item = factories.item("itm_1")
    store.items.apply_changes("billing", [item], [], None)
    when = datetime(2026, 11, 21, 23, 5, tzinfo=UTC)
    store.items.mark_shown("billing", "itm_1", item.digest, when.timestamp())
    store.outbox.record(factories.decision(item, decided_at=when + timedelta(seconds=9)))
    [label] = labels_of(store).values()
    assert label.first_shown_at == when and label.seconds_to_decide == 9.0


def _v1_record(label: Label) -> str:
    """A label as version 1 wrote it: none of the version-2 fields."""
    old = label.model_dump(mode="json", exclude={"trace", "inputs", "reasoning", "outcome", "unknown"})
    return record_json({**old, "label_version": 1})


def test_migration_raises_version_1_labels_filling_what_it_can_and_naming_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    conn = factories.database_at(path, 5)
    cached = factories.item("itm_cached", trace=TRACE)
    gone = factories.item("itm_gone")
    conn.execute(
        "INSERT INTO items(source, id, state, kind, agent, action_name, risk, digest, payload)"
        " VALUES ('billing', 'itm_cached', 'decided', 'approval', 'billing-agent', 'issue_refund', 'high', ?, ?)",
        (cached.digest, cached.model_dump_json()),
    )
    lost = factories.decision(cached)
    conn.execute(
        "INSERT INTO decisions(id, source, item_id, item_digest, verdict, operator, decided_at, sync_state, outcome)"
        " VALUES (?, 'billing', 'itm_cached', ?, 'approve', 'alice', ?, 'conflict', 'conflict')",
        (lost.id, cached.digest, lost.decided_at.isoformat()),
    )
    for label in (build_label(cached, lost, None), expiry_label(gone, now_utc())):
        conn.execute(
            "INSERT INTO labels(label_id, decision_id, source, item_id, item_digest, kind, agent, verdict,"
            " decided_at, record, sync_state, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sent', 1)",
            (
                label.label_id,
                label.decision_id,
                label.source,
                label.item_id,
                label.item_digest,
                label.kind,
                label.agent,
                label.verdict,
                label.decided_at.timestamp(),
                _v1_record(label),
            ),
        )
    conn.close()
    store = Store(path)
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        found = labels_of(store)
        assert all(label.label_version == 2 for label in found.values())
        upgraded = found["itm_cached"]
        assert upgraded.outcome == "conflict_lost" and upgraded.trace == TRACE and upgraded.unknown == []
        assert upgraded.inputs == {"action": "issue_refund", "args": cached.action.args if cached.action else None}
        assert upgraded.reasoning == "two captures"
        expired = found["itm_gone"]
        assert expired.outcome == "timed_out" and expired.trace is None
        assert expired.unknown == ["trace", "inputs", "reasoning"]
        assert label_stats(store.db.conn).overall.conflicts_lost == 1
        settled = [r[0] for r in store.db.execute("SELECT label_id FROM labels_settled ORDER BY seq").fetchall()]
        assert sorted(settled) == sorted(label.label_id for label in found.values()), "both have a final outcome"
    finally:
        store.close()


def test_version_1_records_still_load() -> None:
    item: Item = factories.item()
    old = Label.model_validate_json(_v1_record(build_label(item, factories.decision(item), None)))
    assert old.label_version == 1 and old.trace is None and old.outcome is None and old.unknown == []
