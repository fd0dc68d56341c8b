"""Column widths by content (widgets/columns.py) and the lines of a grouped list (widgets/list_lines.py): pure."""

from __future__ import annotations

from storage.records import QueueGroup
from widgets.columns import Column, fit_columns
from widgets.list_lines import ListLines

COLUMNS = (
    Column("risk", "RISK", 4, 4),
    Column("agent", "AGENT", 5, 24),
    Column("action", "ACTION", 6, 48, grows=True),
    Column("claimed", "CLAIMED", 0, 16),
    Column("age", "AGE", 7, 7, right=True),
)


def line(widths: dict[str, int]) -> int:
    """The cells a line takes: the widths of the columns shown, one space between each."""
    shown = [w for w in widths.values() if w]
    return sum(shown) + len(shown) - 1


def test_a_column_is_as_wide_as_its_widest_value_within_its_bounds() -> None:
    widths = fit_columns(COLUMNS, {"agent": 13, "action": 12, "claimed": 5}, 200)
    assert widths["agent"] == 13
    assert widths["claimed"] == 7  # its header is wider than "⚑ bob"
    assert widths["risk"] == 4 and widths["age"] == 7  # fixed
    assert widths["action"] == 200 - (4 + 13 + 7 + 7 + 4)  # the room left over
    assert line(widths) == 200
    capped = fit_columns(COLUMNS, {"agent": 90, "action": 3, "claimed": 40}, 200)
    assert capped["agent"] == 24 and capped["claimed"] == 16
    assert fit_columns(COLUMNS, {"agent": 1}, 100)["agent"] == 5  # never narrower than its header or its least


def test_an_empty_column_whose_least_is_zero_disappears_separator_and_all() -> None:
    widths = fit_columns(COLUMNS, {"agent": 13, "action": 12}, 100)
    assert widths["claimed"] == 0
    assert line(widths) == 100
    with_claims = fit_columns(COLUMNS, {"agent": 13, "action": 12, "claimed": 9}, 100)
    assert with_claims["action"] == widths["action"] - 10  # the column and its separator


def test_too_narrow_the_widest_columns_give_up_cells_first_down_to_their_least() -> None:
    widths = fit_columns(COLUMNS, {"agent": 20, "action": 40, "claimed": 9}, 70)
    assert line(widths) == 70
    assert widths["agent"] == 20  # the action, wider, gave up its cells first
    assert widths["action"] == 70 - (4 + 20 + 9 + 7 + 4)
    tighter = fit_columns(COLUMNS, {"agent": 20, "action": 40, "claimed": 9}, 40)
    assert line(tighter) == 40
    assert abs(tighter["agent"] - tighter["action"]) <= 1  # both brought down to one level
    floor = fit_columns(COLUMNS, {"agent": 20, "action": 40, "claimed": 9}, 10)
    assert floor == {"risk": 4, "agent": 5, "action": 6, "claimed": 7, "age": 7}  # the renderer cuts the rest


def test_a_new_column_fits_without_changing_the_others() -> None:
    """A fixed column added in front (a mark glyph, say) takes its cells from the room left over only."""
    marked = (Column("mark", "", 1, 1), *COLUMNS)
    before = fit_columns(COLUMNS, {"agent": 13, "action": 12}, 100)
    after = fit_columns(marked, {"agent": 13, "action": 12}, 100)
    assert after["mark"] == 1
    assert after["action"] == before["action"] - 2
    assert {k: v for k, v in after.items() if k not in ("mark", "action")} == {
        k: v for k, v in before.items() if k != "action"
    }


def test_the_cursor_stops_on_rows_and_collapsed_headers_only() -> None:
    lines = ListLines([QueueGroup("a", 2), QueueGroup("b", 5, True), QueueGroup("c", 1)])
    # line: 0 header a, 1-2 rows 0-1, 3 header b (collapsed), 4 header c, 5 row 2
    assert (lines.rows, lines.total) == (3, 6)
    assert [lines.at_line(n) for n in range(6)] == [(-1, 0), (0, None), (1, None), (-1, 1), (-1, 2), (2, None)]
    assert [lines.line_of(i) for i in range(3)] == [1, 2, 5]
    assert lines.stop(0, 1) == 1  # an open group's header is passed over
    assert lines.stop(3, 1) == 3  # a collapsed one is a stop
    assert lines.stop(4, 1) == 5 and lines.stop(4, -1) == 3
    assert lines.stop(6, 1) is None and lines.stop(0, -1) is None
    assert lines.nearest_stop(99, 1) == 5
    assert [lines.group_of(i) for i in range(3)] == [0, 0, 2]
    assert lines.find("b") == 1 and lines.find("zz") is None
    plain = ListLines(rows=4)
    assert (plain.total, plain.stop(2, 1), plain.group_of(2)) == (4, 2, None)
