"""Why the queue shows nothing: each explanation from the sources' health and the filter (no server, no screen)."""

from __future__ import annotations

from console.tui.screens.empty_queue import explain_empty
from storage.records import SourceHealth

UP = SourceHealth(name="prod", state="up", last_poll_at=1.0)
DOWN = SourceHealth(name="lab", state="down", error="connection refused")
STARTING = SourceHealth(name="new", state="starting")


def never_asked() -> int:
    raise AssertionError("the whole queue is counted only when a filter hides items")


def test_a_filter_that_hides_pending_items_says_how_many_and_how_to_clear_it() -> None:
    empty = explain_empty([UP], "deploy", lambda: 1_234)
    assert empty.short == "No item matches the filter"
    assert empty.text.startswith("No item matches the filter (1,234 pending items hidden).")
    assert "esc" in empty.text
    assert "(1 pending item hidden)" in explain_empty([UP], "deploy", lambda: 1).text


def test_a_filter_over_a_truly_empty_queue_is_not_blamed() -> None:
    assert explain_empty([UP], "deploy", lambda: 0).short == "Queue is empty"


def test_no_source_readable_names_each_with_its_state() -> None:
    auth = SourceHealth(name="locked", state="auth")
    empty = explain_empty([DOWN, auth], "", never_asked)
    assert empty.short == "Nothing to show: no source can be read now"
    assert "lab (down), locked (auth failed)" in empty.text and "Nothing is lost" in empty.text


def test_before_any_answer_it_waits_and_with_one_source_down_it_says_which() -> None:
    assert explain_empty([STARTING], "", never_asked).text == "Waiting for the sources' first answer…"
    assert explain_empty([], "", never_asked).short == "Waiting for the sources' first answer…"
    down = explain_empty([UP, DOWN], "", never_asked)
    assert down.short == "Queue is empty here, but a source is down"
    assert "lab (down) cannot be read" in down.text


def test_every_source_up_and_nothing_pending_is_a_truly_empty_queue() -> None:
    empty = explain_empty([UP, STARTING], "", never_asked)
    assert (empty.short, empty.text.split(":")[0]) == ("Queue is empty", "Queue is empty")
    assert "every source answered with nothing pending" in empty.text


def test_source_names_are_drawn_on_one_line() -> None:
    hostile = SourceHealth(name="a\nb\x1b[2J", state="down")
    text = explain_empty([hostile], "", never_asked).text
    assert "\n" not in text and "\x1b" not in text


def test_a_saved_view_that_holds_nothing_points_at_the_other_views() -> None:
    empty = explain_empty([UP], "claimed:alice", lambda: 12, view="Mine")
    assert empty.short == "Nothing in the view Mine"
    assert "(12 pending items in other views)" in empty.text and "1 to 9" in empty.text
    assert explain_empty([UP], "claimed:alice", lambda: 0, view="Mine").short == "Queue is empty"
