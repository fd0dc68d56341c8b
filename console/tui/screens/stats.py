"""`s`: how the agents are doing over the last hour, day or week: rates, time to decide, queue depth, as charts.

The figures come from `storage.stats.read_window_stats` (rates from the labels, as `approval-console stats` gives
them; traffic from the items), computed in a worker thread over a read-only connection, so a large database never
freezes the screen. Agent and source names are the agents' text: always rendered through `safe_text`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import ClassVar, Final

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from storage.label_stats import GroupStats
from storage.stats import DEFAULT_WINDOW, WINDOWS, Traffic, WindowStats, read_window_stats
from widgets.badges import format_age
from widgets.charts import ColumnChart, share_bar, sparkline
from widgets.safe_text import one_line
from widgets.timefmt import zoned_time

__all__ = ["FULL_WIDTH", "MAX_ROWS", "StatsScreen", "stats_table", "table_columns"]

MAX_ROWS: Final = 40  # agents (or sources) listed per table, busiest first; the rest are counted
REFRESH_SECONDS: Final = 15.0
_MUTED: Final = "$foreground-muted"
# (label, style) of each verdict, in the order the share bar stacks them
VERDICT_PARTS: Final = (
    ("approve", "$success"),
    ("edit", "$primary"),
    ("reject", "$error"),
    ("timed_out", "$warning"),  # nobody decided in time: the agent's on_expiry ran (never a reject)
)
# Decisions another operator beat: not a verdict of this console, so apart from the four (and in no rate).
_LOST_STYLE: Final = "$foreground-muted"
_NAME: Final = 18
_NAME_MIN: Final = 16  # agent names are told apart by their ends too ("billing-agent", "billing-agent-eu")
_BAR: Final = 12
_SPARK: Final = 14
# The table's columns after the name: (key, heading, width, spaces before).
_COLUMNS: Final = (
    ("arrived", "arrived", 7, 1),
    ("handled", "handled", 7, 1),
    ("approve", "approve", 7, 1),
    ("edit", "edit", 5, 1),
    ("reject", "reject", 6, 1),
    ("timed_out", "timeout", 7, 1),  # timed_out: 7 columns, so 80 still hold the figures
    ("outcomes", "outcomes", _BAR, 2),
    ("median", "median", 6, 1),
    ("escal", "escal.", 6, 1),
    ("depth", "queue depth", _SPARK, 2),
    ("now", "now", 4, 1),
)
# Left out, in this order, when the table is narrower than all of them: a row never wraps (80 columns keeps the
# figures and drops the pictures, which repeat them, and the pending count, which the summary gives in all).
_DROPPED_FIRST: Final = ("depth", "outcomes", "now", "escal", "median")
FULL_WIDTH: Final = _NAME + sum(width + gap for _key, _heading, width, gap in _COLUMNS)


def table_columns(width: int) -> tuple[int, list[str]]:
    """The name column's width and the other columns that fit in `width` cells."""
    keys = [key for key, *_ in _COLUMNS]
    sizes = {key: size + gap for key, _heading, size, gap in _COLUMNS}
    for key in _DROPPED_FIRST:
        if _NAME_MIN + sum(sizes[k] for k in keys) <= width:
            break
        keys.remove(key)
    return max(_NAME_MIN, min(_NAME, width - sum(sizes[k] for k in keys))), keys


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def _median(group: GroupStats | None) -> str:
    median = None if group is None else group.seconds_to_decide.median
    return "—" if median is None else format_age(median)


def _rate(group: GroupStats | None, name: str) -> str:
    return _pct(None if group is None else getattr(group, name))


def _row(name: str, group: GroupStats | None, traffic: Traffic | None, width: int) -> Content:
    counts = group.counts if group is not None else {}
    depth = traffic.depth if traffic is not None else ()
    cells: dict[str, Content | tuple[str, str] | str] = {
        "arrived": f"{traffic.arrived if traffic else 0:>7,}",
        "handled": f"{group.total if group else 0:>7,}",
        "approve": (f"{_rate(group, 'approve_rate'):>7}", "$text-success"),
        "edit": (f"{_rate(group, 'edit_rate'):>5}", "$text-primary"),
        "reject": (f"{_rate(group, 'reject_rate'):>6}", "$text-error"),
        "timed_out": (f"{_rate(group, 'timed_out_rate'):>7}", "$text-warning"),
        "outcomes": share_bar(
            [(counts.get(verdict, 0), style) for verdict, style in VERDICT_PARTS]
            + [(group.conflicts_lost if group is not None else 0, _LOST_STYLE)],
            _BAR,
        ),
        "median": f"{_median(group):>6}",
        "escal": f"{_rate(group, 'escalation_rate'):>6}",
        "depth": (sparkline(depth, _SPARK).ljust(_SPARK), "$accent"),
        "now": f"{traffic.pending_now if traffic else 0:>4,}",
    }
    name_width, keys = table_columns(width)
    parts: list[Content | tuple[str, str] | str] = [(one_line(name, name_width).ljust(name_width), "bold")]
    for key, _heading, _size, gap in _COLUMNS:
        if key in keys:
            parts += [" " * gap, cells[key]]
    return Content.assemble(*parts)


def _header(title: str, width: int) -> Content:
    name_width, keys = table_columns(width)
    headings = "".join(
        " " * gap + (heading.ljust(size) if key in ("outcomes", "depth") else heading.rjust(size))
        for key, heading, size, gap in _COLUMNS
        if key in keys
    )
    return Content.assemble((title.ljust(name_width), "bold"), (headings, f"bold {_MUTED}"))


def stats_table(
    title: str,
    labels: dict[str, GroupStats],
    traffic: dict[str, Traffic],
    limit: int = MAX_ROWS,
    width: int = FULL_WIDTH,
) -> Content:
    """One line per agent (or source), busiest first: counts, rates, a share bar, median, depth sparkline.

    Each line fits in `width` cells: on a narrow screen the pictures are left out rather than the line wrapped.
    """
    names = sorted(
        labels.keys() | traffic.keys(),
        key=lambda n: (-(labels[n].total if n in labels else 0), -(traffic[n].arrived if n in traffic else 0), n),
    )
    lines = [_header(title, width)]
    if not names:
        lines.append(Content.styled("  nothing arrived or was handled in this window", _MUTED))
    lines += [_row(name, labels.get(name), traffic.get(name), width) for name in names[:limit]]
    if len(names) > limit:
        lines.append(Content.styled(f"  … and {len(names) - limit:,} more, less busy", _MUTED))
    return Content("\n").join(lines)


def _legend() -> Content:
    parts: list[tuple[str, str] | str] = [("outcomes: ", _MUTED)]
    for verdict, style in VERDICT_PARTS:
        parts += [("█", style), (f" {verdict}  ", _MUTED)]
    parts += [("█", _LOST_STYLE), (" conflict lost  ", _MUTED)]
    parts.append(("· approve/edit/reject: % of verdicts not lost; timed out/escal.: % of all handled", _MUTED))
    return Content.assemble(*parts)


def _window_keys(current: str) -> Iterable[tuple[str, str]]:
    for index, name in enumerate(WINDOWS, start=1):
        yield (f" {index} ", "bold reverse" if name == current else _MUTED)
        yield (f"{name}  ", "bold" if name == current else _MUTED)


class StatsScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("stats.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="close"),
        Binding("s", "close", "Close", show=False, id="stats"),
        *(
            Binding(str(index), f"window('{name}')", f"Last {name}", id=f"window_{name}")
            for index, name in enumerate(WINDOWS, start=1)
        ),
    ]

    def __init__(
        self,
        db_path: Path,
        now: Callable[[], float] = time.time,
        window: str = DEFAULT_WINDOW,
        zone: tzinfo | None = None,
    ) -> None:
        super().__init__()
        self._db_path = db_path
        self._zone = zone  # times are drawn in it (None: local)
        self._now = now
        self.window = window
        self.stats: WindowStats | None = None  # what is on screen now

    def compose(self) -> ComposeResult:
        yield Static(id="stats-head")
        yield Static(id="stats-summary")
        yield Static(id="depth-title")
        yield ColumnChart(id="depth")
        with VerticalScroll(id="stats-tables"):
            yield Static(_legend(), id="stats-legend")
            yield Static(id="by-agent")
            yield Static(id="by-source")
        yield Footer()

    def on_mount(self) -> None:
        self._head(loading=True)
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def load(self) -> None:
        """Compute in a thread: a week over 100,000 items must not freeze the keys."""
        window, now = self.window, self._now()
        try:
            stats = read_window_stats(self._db_path, WINDOWS[window], now)
        except sqlite3.Error as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._show, window, stats)

    def _head(self, loading: bool = False) -> None:
        parts: list[tuple[str, str] | str] = [("How the agents are doing", "bold"), "   ", *_window_keys(self.window)]
        if self.stats is not None and not loading:
            as_of = zoned_time(datetime.fromtimestamp(self.stats.until, UTC), self._zone, "%Y-%m-%d %H:%M")
            parts.append((f"   as of {as_of}", _MUTED))
        else:
            parts.append(("   counting…", _MUTED))
        self.query_one("#stats-head", Static).update(Content.assemble(*parts))

    def _failed(self, problem: str) -> None:
        self.query_one("#stats-summary", Static).update(
            Content.styled(one_line(f"The database could not be read: {problem}", 200), "bold $text-error")
        )

    def _show(self, window: str, stats: WindowStats) -> None:
        if window != self.window or not self.is_attached:
            return  # the operator switched windows (or left) while this was counting
        self.stats = stats
        self._head()
        overall = stats.labels.overall
        times = overall.seconds_to_decide
        self.query_one("#stats-summary", Static).update(
            Content.assemble(
                ("All agents  ", "bold"),
                f"{stats.traffic.arrived:,} arrived · {overall.total:,} handled · ",
                (f"approve {_pct(overall.approve_rate)}", "$text-success"),
                " · ",
                (f"edit {_pct(overall.edit_rate)}", "$text-primary"),
                " · ",
                (f"reject {_pct(overall.reject_rate)}", "$text-error"),
                " · ",
                (f"timed out {_pct(overall.timed_out_rate)}", "$text-warning"),
                f" · escalations {_pct(overall.escalation_rate)}\n",
                ("Time to decide  ", "bold"),
                f"median {_median(overall)}" + (f", p90 {format_age(times.p90)}" if times.p90 is not None else ""),
                (f" · {stats.traffic.pending_now:,} pending now", "bold"),
            )
        )
        every = format_age(stats.bucket_seconds)
        peak = max(stats.traffic.depth, default=0)
        self.query_one("#depth-title", Static).update(
            Content.assemble(
                ("Queue depth", "bold"),
                (f"  items pending, all agents, sampled every {every}; peak {peak:,}", _MUTED),
            )
        )
        self.query_one(ColumnChart).plot(stats.traffic.depth, f"-{window}", "now")
        self._tables()

    def _tables(self) -> None:
        stats = self.stats
        if stats is None:
            return
        for table, title, labels, traffic in (
            ("#by-agent", "By agent", stats.labels.by_agent, stats.traffic_by_agent),
            ("#by-source", "By source", stats.labels.by_source, stats.traffic_by_source),
        ):
            shown = self.query_one(table, Static)
            # Cut to the width the table gets (before the first layout: all columns).
            shown.update(stats_table(title, labels, traffic, width=shown.size.width or FULL_WIDTH))

    def on_resize(self) -> None:
        self.call_after_refresh(self._tables)

    def action_window(self, window: str) -> None:
        if window not in WINDOWS or window == self.window:
            return
        self.window = window
        self._head(loading=True)
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)
