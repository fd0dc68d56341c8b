"""`timed_out`: a deadline that passed before anyone decided (or before a decision arrived) is its own outcome in
labels, stats, exports and history, never a reject; the protocol still says `expired` on the wire (version 1), and
the schema v8 migration renames what an older console stored."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

from console.engine.session import Session
from console.servers.fleet import Fleet
from storage.db import Store
from storage.export import export_labels
from storage.label_stats import label_stats
from storage.labels import Label, build_label, expiry_label, record_json
from storage.records import Verdict, now_utc
from tests import factories
from tests.conftest import eventually


def labels_by_item(store: Store) -> dict[str, Label]:
    rows = store.db.execute("SELECT item_id, record FROM labels").fetchall()
    return {item_id: Label.model_validate_json(record) for item_id, record in rows}


async def test_an_item_nobody_decided_times_out_and_is_no_reject(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    session = make_session()
    try:
        await session.poll_once()
        rows = session.store.queue.rows(0, 2)
        undecided, late = (session.item(row.source, row.id) for row in rows)
        assert undecided is not None and late is not None
        # Decided here, but the deadline passes at the source before the decision gets there.
        session.decide(late[0], Verdict.approve)
        fleet.expire(undecided[0].id)
        fleet.expire(late[0].id)
        await session.poll_once()
        await session.sync_once()

        [decision] = session.store.outbox.decisions()
        assert decision.outcome == "timed_out"
        wire = session.store.db.execute("SELECT response FROM decisions").fetchone()[0]
        assert json.loads(wire)["outcome"] == "expired", "version 1 of the protocol still says expired"

        found = labels_by_item(session.store)
        assert (found[undecided[0].id].verdict, found[undecided[0].id].outcome) == ("timed_out", "timed_out")
        assert (found[late[0].id].verdict, found[late[0].id].outcome) == ("approve", "timed_out")
        overall = label_stats(session.store.db.conn).overall
        assert overall.counts["timed_out"] == 1 and overall.counts["reject"] == 0
        assert overall.reject_rate == 0.0 and overall.timed_out_rate == 0.5

        out = io.StringIO()
        export_labels(session.store.db.conn, out, "labels")
        verdicts = sorted(json.loads(line)["verdict"] for line in out.getvalue().splitlines())
        assert verdicts == ["approve", "timed_out"]
    finally:
        await session.aclose()


async def test_the_stats_screen_shows_timed_out_apart_from_reject(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    from console.tui.app import ApprovalApp
    from console.tui.screens.stats import StatsScreen
    from tests.conftest import screen_text

    session = make_session()
    await session.poll_once()
    top = session.store.queue.rows(0, 1)[0]
    fleet.expire(top.id)
    await session.poll_once()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("s")
        await eventually(lambda: isinstance(app.screen, StatsScreen), what="the stats screen")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "timed out 100%" in text and "reject —" in text


def test_schema_v8_renames_what_an_older_console_stored(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    conn = factories.database_at(path, 7)
    gone, late = factories.item("itm_gone"), factories.item("itm_late")
    decision = factories.decision(late)
    conn.execute(
        "INSERT INTO decisions(id, source, item_id, item_digest, verdict, operator, decided_at, sync_state, outcome)"
        " VALUES (?, 'billing', 'itm_late', ?, 'approve', 'alice', ?, 'conflict', 'expired')",
        (decision.id, late.digest, decision.decided_at.isoformat()),
    )
    expiry = expiry_label(gone, now_utc()).model_dump(mode="json")
    late_label = build_label(late, decision, None).model_dump(mode="json")
    for record, verdict, outcome in ((expiry, "expired", "expired"), (late_label, "approve", "timed_out")):
        record.update(verdict=verdict, outcome=outcome)  # as a console before v8 wrote them
        conn.execute(
            "INSERT INTO labels(label_id, decision_id, source, item_id, item_digest, kind, agent, verdict,"
            " decided_at, record, sync_state, attempts, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sent', 1, ?)",
            (
                record["label_id"],
                record["decision_id"],
                record["source"],
                record["item_id"],
                record["item_digest"],
                record["kind"],
                record["agent"],
                verdict,
                now_utc().timestamp(),
                record_json(record),
                outcome,
            ),
        )
    conn.close()
    store = Store(path)
    try:
        assert store.db.execute("SELECT outcome FROM decisions").fetchone()[0] == "timed_out"
        columns = dict(store.db.execute("SELECT item_id, verdict || '/' || outcome FROM labels").fetchall())
        assert columns == {"itm_gone": "timed_out/timed_out", "itm_late": "approve/timed_out"}
        found = labels_by_item(store)  # the records read back as labels of today
        assert (found["itm_gone"].verdict, found["itm_gone"].outcome) == ("timed_out", "timed_out")
        counts = label_stats(store.db.conn).overall.counts
        assert counts == {"approve": 1, "reject": 0, "edit": 0, "timed_out": 1}
    finally:
        store.close()
