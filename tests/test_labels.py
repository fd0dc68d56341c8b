"""Labels: the record, redaction, the labels table on a real SQLite file, stats, sync to the fleet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonpatch import apply_patch  # an independent RFC 6902 implementation checks ours

from console.engine.config import SourceConfig
from console.engine.sources.base import LabelSink, validate_items
from console.engine.sources.native import NativeSource
from console.engine.sync import SyncEngine
from console.servers.fleet import Fleet
from storage.db import Store
from storage.label_stats import label_stats
from storage.labels import (
    REDACTED,
    TIMED_OUT,
    Label,
    LabelOutbox,
    LabelSyncState,
    LabelSyncUpdate,
    batch_id,
    build_label,
    due_labels,
    expiry_label,
    insert_label,
    label_statuses,
    record_label_results,
    redact,
    redact_label,
    refused_labels,
    void_label,
)
from storage.records import Verdict, item_digest
from tests import factories
from tests.conftest import SOURCE, eventually
from tests.label_data import SHOWN, decision_on, open_labels_db
from tests.servers import Fault, FaultyProxy, running

# ------------------------------------------------------------------------------------------------------- redaction


def test_redact_masks_or_drops_named_keys_everywhere_without_touching_the_original() -> None:
    value: dict[str, Any] = {
        "api_key": "sk-1",
        "nested": {"API_KEY": "sk-2", "keep": 1, "list": [{"Api_Key": "sk-3", "ok": [{"password": "pw"}]}]},
        "password": {"whole": "object"},
        "plain": ["api_key", "not a member name, kept"],
    }
    masked = redact(value, ["api_key", "password"])
    text = json.dumps(masked)
    assert "sk-" not in text and "pw" not in text and "whole" not in text
    assert masked["nested"]["API_KEY"] == REDACTED and masked["nested"]["list"][0]["ok"][0]["password"] == REDACTED
    assert masked["plain"] == value["plain"] and masked["nested"]["keep"] == 1
    dropped = redact(value, ["API_KEY", "password"], drop=True)
    assert (
        "api_key" not in dropped and "API_KEY" not in dropped["nested"] and dropped["nested"]["list"][0] == {"ok": [{}]}
    )
    assert value["api_key"] == "sk-1" and value["nested"]["list"][0]["Api_Key"] == "sk-3", "the original is unchanged"
    assert redact(value, []) is value


def test_redacting_a_label_recomputes_its_patch_so_no_secret_survives() -> None:
    item = factories.item(action={"name": "call_api", "args": {"url": "https://x", "auth": {"token": "old-secret"}}})
    edited = {"url": "https://y", "auth": {"token": "new-secret"}}
    label = build_label(item, decision_on(item, Verdict.edit, edited=edited), SHOWN)
    assert any("new-secret" in json.dumps(op) for op in label.patch)
    clean = redact_label(label, ["token"])
    text = clean.model_dump_json()
    assert "secret" not in text
    assert clean.patch == [{"op": "replace", "path": "/url", "value": "https://y"}]
    assert apply_patch(clean.proposed, clean.patch) == clean.edited


# ----------------------------------------------------------------------------------------------------------- label


def test_a_decision_yields_a_complete_label() -> None:
    item = factories.item()
    edited = {"amount": 500.0, "customer_id": "cus_1", "note": "partial"}
    decision = decision_on(item, Verdict.edit, edited=edited, reason_code="wrong_amount", comment="only one charge")
    label = build_label(item, decision, SHOWN)
    assert label.label_id == decision.id == label.decision_id
    assert (label.source, label.item_id, label.item_digest) == (item.source, item.id, item.digest)
    assert (label.kind, label.agent, label.workflow, label.action_name) == (
        "approval",
        "billing-agent",
        "refunds",
        "issue_refund",
    )
    assert label.proposed == item.editable_value and label.edited == edited
    assert label.edited_digest == item_digest(edited)
    assert (label.confidence, label.risk, label.context_summary) == (0.8, "high", "double charge")
    assert apply_patch(label.proposed, label.patch) == edited
    assert (label.reason_code, label.comment, label.operator) == ("wrong_amount", "only one charge", "alice")
    assert label.seconds_to_decide == 12.5 and label.first_shown_at == SHOWN
    body = label.wire_body()
    assert body["label_id"] == decision.id and body["verdict"] == "edit" and body["seconds_to_decide"] == 12.5

    rejected = build_label(item, decision_on(item, Verdict.reject, reason_code="unsafe"), None)
    assert rejected.patch == [] and rejected.edited is None and rejected.seconds_to_decide is None

    escalation = factories.item(
        "itm_e", kind="escalation", output={"category": "billing"}, allowed_decisions=["approve", "edit"]
    )
    corrected = build_label(escalation, decision_on(escalation, Verdict.edit, edited={"category": "fraud"}), SHOWN)
    assert corrected.proposed == {"category": "billing"}
    assert corrected.patch == [{"op": "replace", "path": "/category", "value": "fraud"}]

    with pytest.raises(ValueError, match="not about this item version"):
        build_label(factories.item("itm_other"), decision, SHOWN)


def test_an_expiry_yields_one_label_with_a_stable_id() -> None:
    item = factories.item()
    when = SHOWN + timedelta(minutes=30)
    label = expiry_label(item, when, SHOWN)
    assert label.verdict == TIMED_OUT and label.operator is None and label.decision_id is None
    assert label.on_expiry == "reject" and label.decided_at == when and label.seconds_to_decide is None
    assert expiry_label(item, when + timedelta(seconds=5)).label_id == label.label_id
    assert batch_id(["b", "a"]) == batch_id(["a", "b"]) != batch_id(["a"])


# ------------------------------------------------------------------------------------------------------- the table


@pytest.fixture
def labels_db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = open_labels_db(tmp_path / "labels.db")
    yield conn
    conn.close()


def state_of(conn: sqlite3.Connection, label_id: str) -> tuple[str, int, str]:
    row = conn.execute("SELECT sync_state, attempts, last_error FROM labels WHERE label_id = ?", (label_id,)).fetchone()
    return row[0], row[1], row[2]


def test_labels_table_outbox_lifecycle(labels_db: sqlite3.Connection) -> None:
    conn = labels_db
    items = [factories.item(f"itm_{n}") for n in range(4)]
    approve = build_label(items[0], decision_on(items[0], Verdict.approve, seconds=1), SHOWN)
    reject = build_label(items[1], decision_on(items[1], Verdict.reject, seconds=2, reason_code="unsafe"), SHOWN)
    held = build_label(items[2], decision_on(items[2], Verdict.approve, seconds=3), SHOWN)
    expired = expiry_label(items[3], SHOWN)
    assert insert_label(conn, approve) and insert_label(conn, reject)
    assert insert_label(conn, held, not_before=2e9)  # still in its undo window
    assert insert_label(conn, expired)
    assert not insert_label(conn, approve) and not insert_label(conn, expiry_label(items[3], SHOWN)), "held once"
    assert state_of(conn, expired.label_id)[0] == LabelSyncState.local, "an expiry is not sent back"

    due = due_labels(conn, 10, ["billing"])
    assert due == [approve, reject], "oldest first, read back exactly as written"
    assert due_labels(conn, 10, ["elsewhere"]) == [] and due_labels(conn, 10, []) == []
    assert due_labels(conn, 10, ["billing"], now=3e9)[-1] == held

    assert void_label(conn, held.decision_id or "")
    assert conn.execute("SELECT count(*) FROM labels WHERE label_id = ?", (held.label_id,)).fetchone()[0] == 0

    outbox = LabelOutbox(conn)
    finals = outbox.record(
        [
            LabelSyncUpdate(approve.label_id, LabelSyncState.sent, "accepted 1, duplicates 0"),
            LabelSyncUpdate(reject.label_id, None, "the source is busy or failing (503)", next_attempt_at=2e9),
        ]
    )
    assert finals == 1
    assert state_of(conn, approve.label_id) == ("sent", 1, "accepted 1, duplicates 0")
    assert state_of(conn, reject.label_id) == ("pending", 1, "the source is busy or failing (503)")
    assert outbox.due(10, ["billing"]) == [] and outbox.next_due_at(["billing"]) == 2e9
    assert not void_label(conn, approve.decision_id or ""), "a label that left the machine cannot be voided"
    assert not void_label(conn, reject.decision_id or ""), "nor one whose sending has started"

    record_label_results(conn, [LabelSyncUpdate(reject.label_id, LabelSyncState.refused, "invalid: /labels/0/verdict")])
    record_label_results(conn, [LabelSyncUpdate(reject.label_id, LabelSyncState.sent, "late answer")])
    assert state_of(conn, reject.label_id)[:1] == ("refused",), "a final state is recorded once"
    [(kept, reason)] = refused_labels(conn)
    assert kept == reject and reason == "invalid: /labels/0/verdict"
    statuses = label_statuses(conn, [approve.label_id, reject.label_id, "undone-or-unknown"])
    assert statuses[reject.label_id].sync_state is LabelSyncState.refused
    assert statuses[approve.label_id].sync_state is LabelSyncState.sent and "undone-or-unknown" not in statuses


def test_stats_come_from_labels(labels_db: sqlite3.Connection) -> None:
    conn = labels_db
    verdicts = [Verdict.approve] * 6 + [Verdict.reject] * 2 + [Verdict.edit] * 2
    for n, verdict in enumerate(verdicts):
        item = factories.item(f"itm_{n}", agent="billing-agent" if n % 2 else "crm-agent")
        edited = {"amount": 1.0} if verdict is Verdict.edit else None
        insert_label(conn, build_label(item, decision_on(item, verdict, edited=edited, seconds=n + 1), SHOWN))
    insert_label(conn, expiry_label(factories.item("itm_x", kind="escalation", output="draft"), SHOWN))
    stats = label_stats(conn)
    overall = stats.overall
    assert overall.total == 11 and overall.counts == {"approve": 6, "reject": 2, "edit": 2, "timed_out": 1}
    assert (overall.approve_rate, overall.reject_rate, overall.edit_rate) == (0.6, 0.2, 0.2)
    assert overall.timed_out_rate == round(1 / 11, 4) and overall.escalation_rate == round(1 / 11, 4)
    assert overall.seconds_to_decide.count == 10
    assert (overall.seconds_to_decide.median, overall.seconds_to_decide.p90) == (5.0, 9.0)
    assert set(stats.by_agent) == {"billing-agent", "crm-agent"} and stats.by_agent["billing-agent"].total == 6
    decided = SHOWN.timestamp() + 3.5
    assert label_stats(conn, since=decided).overall.counts["approve"] == 3, "only labels decided in the window"
    assert label_stats(conn, until=decided).overall.total == 4  # three decisions and the expiry at SHOWN


# ------------------------------------------------------------------------------------------------------------ sync


class Console:
    """The parts that send labels, over a data dir: a Store (decisions), the labels table, a native source."""

    def __init__(self, data_dir: Path, url: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(data_dir / "console.db")
        self.conn = open_labels_db(data_dir / "console.db")
        self.source = NativeSource(SourceConfig(name=SOURCE, url=url, timeout=5.0), None)
        self.engine = SyncEngine(self.store, {SOURCE: self.source}, labels=LabelOutbox(self.conn), label_batch=2)

    def record(self, labels: list[Label]) -> None:
        for label in labels:
            insert_label(self.conn, label)

    def states(self) -> dict[str, tuple[str, int, str]]:
        rows = self.conn.execute("SELECT label_id, sync_state, attempts, last_error FROM labels").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    async def aclose(self) -> None:
        await self.source.aclose()
        self.conn.close()
        self.store.close()


def fleet_labels(fleet: Fleet, count: int) -> list[Label]:
    items, rejected = validate_items(SOURCE, fleet.pending()[:count])
    assert not rejected and len(items) == count
    verdicts = [Verdict.approve, Verdict.reject, Verdict.edit]
    labels = []
    for n, item in enumerate(items):
        verdict = verdicts[n % 3] if item.kind == "approval" else Verdict.approve
        edited = {**item.editable_value, "reviewed": True} if verdict is Verdict.edit else None
        labels.append(build_label(item, decision_on(item, verdict, edited=edited, reason_code="other"), SHOWN))
    return labels


async def test_labels_are_sent_once_however_often_sync_restarts(fleet: Fleet, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running(FaultyProxy(fleet.url)) as proxy:
        console = Console(data_dir, proxy.url)
        assert isinstance(console.source, LabelSink)
        labels = fleet_labels(fleet, 5)
        console.record(labels)
        # The first batch reaches the fleet but its answer is lost; the second is refused as busy. Then the console
        # stops with every label still pending here.
        proxy.inject(
            Fault(503, b"", {"Retry-After": "2"}, path_prefix="/v1/feedback", forward=True),
            Fault(503, b"", {"Retry-After": "0"}, path_prefix="/v1/feedback"),
        )
        assert await console.engine.drain_labels_once() == 2  # label_batch=2: one batch per source per round
        assert await console.engine.drain_labels_once() == 2
        assert {s[0] for s in console.states().values()} == {"pending"}
        lost = {label["label_id"] for label in fleet.feedback()}
        assert len(lost) == 2, "the fleet holds the batch whose answer was lost"
        await console.aclose()

        # Restarted: the real sync loop sends everything that is due.
        console = Console(data_dir, proxy.url)
        task = asyncio.create_task(console.engine.run())
        await eventually(lambda: {s[0] for s in console.states().values()} == {"sent"}, what="all labels sent")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        states = console.states()
        await console.aclose()

        held = {label["label_id"]: label for label in fleet.feedback()}
        assert sorted(held) == sorted(label.label_id for label in labels), "each label once, none lost"
        # The lost batch was resent under its key and the fleet replayed its first answer; a resend under a new key
        # would have been answered "accepted 0, duplicates 2".
        assert {states[i][2] for i in lost} == {"accepted 2, duplicates 0"}
        edit = next(label for label in labels if label.verdict == "edit")
        assert held[edit.label_id]["patch"] == edit.patch and held[edit.label_id]["edited"] == edit.edited

        # Restarted again: nothing is due, nothing is sent.
        requests = proxy.requests.count("/v1/feedback")
        console = Console(data_dir, proxy.url)
        assert await console.engine.drain_labels_once() == 0
        assert proxy.requests.count("/v1/feedback") == requests
        await console.aclose()


async def test_a_refused_label_is_kept_with_the_reason_and_the_rest_are_sent(fleet: Fleet, tmp_path: Path) -> None:
    console = Console(tmp_path / "data", fleet.url)
    good, other = fleet_labels(fleet, 2)
    bad = good.model_copy(update={"label_id": "0-sorts-first", "decision_id": "d-bad", "item_id": ""})
    console.record([good, bad, other])
    for _ in range(5):
        await console.engine.drain_labels_once()
    states = console.states()
    assert states[bad.label_id][0] == "refused" and "/labels/0/item_id" in states[bad.label_id][2]
    assert states[good.label_id][0] == states[other.label_id][0] == "sent"
    assert {label["label_id"] for label in fleet.feedback()} == {good.label_id, other.label_id}
    [(kept, reason)] = refused_labels(console.conn)
    assert kept == bad and "non-empty string" in reason
    await console.aclose()


@pytest.mark.parametrize(
    ("fault", "final"),
    [
        (Fault(404, b'{"error": "not_found", "detail": "no route /v1/feedback"}'), "refused"),
        (Fault(409, b'{"error": "idempotency_conflict"}'), "refused"),
        (Fault(429, b"", {"Retry-After": "30"}), "pending"),
        (Fault(500, b"oops"), "pending"),
        (Fault(401, b'{"error": "unauthorized"}'), "pending"),
        (Fault(200, b"<html>not json</html>"), "pending"),
    ],
)
async def test_only_answers_retrying_cannot_fix_refuse_labels(
    fleet: Fleet, tmp_path: Path, fault: Fault, final: str
) -> None:
    with running(FaultyProxy(fleet.url)) as proxy:
        console = Console(tmp_path / "data", proxy.url)
        labels = fleet_labels(fleet, 1)
        console.record(labels)
        proxy.inject(fault)
        await console.engine.drain_labels_once()
        [(state, attempts, reason)] = console.states().values()
        assert (state, attempts) == (final, 1) and reason
        assert fleet.feedback() == []
        if final == "pending":
            assert due_labels(console.conn, 10, [SOURCE]) == [], "retried later, not at once"
        await console.aclose()
