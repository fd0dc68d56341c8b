"""The history says what became of a label at the team's tracing tool, and names a lost conflict as such.

The real app under Pilot over a real database filled as tests/test_stats_history.py fills it.
"""

from __future__ import annotations

from console.engine.session import Session
from console.tui.screens.history import HistoryScreen, sync_text
from storage.feedback import FeedbackState, FeedbackUpdate
from storage.records import Outcome, SyncState
from tests.conftest import screen_text
from tests.test_stats_history import SIZE, app_over, session  # noqa: F401  (fixture)


async def test_history_names_the_sink_that_kept_a_label_and_why(session: Session) -> None:  # noqa: F811
    rows = {row.decision.item_id: row for row in session.store.outbox.decisions(20)}
    label_id = rows["b2"].decision.id
    session.store.feedback.record(
        "smith", [FeedbackUpdate(label_id, FeedbackState.local, "no LangSmith run: the item's trace names none")]
    )
    session.store.feedback.record("fuse", [FeedbackUpdate(label_id, FeedbackState.refused, "Langfuse answered 400")])
    app = app_over(session)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        text = screen_text(app)
    assert "not sent to smith: no LangSmith run: the item's trace names none" in text
    assert "fuse refused it: Langfuse answered 400" in text


def test_a_lost_conflict_reads_as_one(session: Session) -> None:  # noqa: F811
    row = session.store.outbox.decisions(1)[0]
    lost = row.model_copy(update={"sync_state": SyncState.conflict, "outcome": Outcome.conflict.value})
    assert sync_text(lost) == "conflict lost: decided elsewhere first"
