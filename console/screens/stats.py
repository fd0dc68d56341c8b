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

__all__ = ["MAX_ROWS", "StatsScreen", "stats_table"]

MAX_ROWS: Final = 40  # agents (or sources) listed per table, busiest first; the rest are counted
REFRESH_SECONDS: Final = 15.0
_MUTED: Final = "$foreground-muted"
# (label, style) of each verdict, in the order the share bar stacks them
VERDICT_PARTS: Final = (
    ("approve", "$success"),
    ("edit", "$primary"),
    ("reject", "$error"),
    ("expired", "$warning"),
)
_NAME: Final = 18
_BAR: Final = 12
_SPARK: Final = 14
_HEADER: Final = (
    f"{'':<{_NAME}} {'arrived':>7} {'handled':>7} {'approve':>7} {'edit':>5} {'reject':>6} {'expired':>7}"
    f"  {'outcomes':<{_BAR}} {'median':>6} {'escal.':>6}  {'queue depth':<{_SPARK}} {'now':>4}"
)


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.0f}%"


def _median(group: GroupStats | None) -> str:
    median = None if group is None else group.seconds_to_decide.median
    return "—" if median is None else format_age(median)


def _rate(group: GroupStats | None, name: str) -> str:
    return _pct(None if group is None else getattr(group, name))


def _row(name: str, group: GroupStats | None, traffic: Traffic | None) -> Content:
    counts = group.counts if group is not None else {}
    depth = traffic.depth if traffic is not None else ()
    return Content.assemble(
        (one_line(name, _NAME).ljust(_NAME), "bold"),
        f" {traffic.arrived if traffic else 0:>7,} {group.total if group else 0:>7,}",
        (f" {_rate(group, 'approve_rate'):>7}", "$text-success"),
        (f" {_rate(group, 'edit_rate'):>5}", "$text-primary"),
        (f" {_rate(group, 'reject_rate'):>6}", "$text-error"),
        (f" {_rate(group, 'expiry_rate'):>7}", "$text-warning"),
        "  ",
        share_bar([(counts.get(verdict, 0), style) for verdict, style in VERDICT_PARTS], _BAR),
        f" {_median(group):>6} {_rate(group, 'escalation_rate'):>6}  ",
        (sparkline(depth, _SPARK).ljust(_SPARK), "$accent"),
        f" {traffic.pending_now if traffic else 0:>4,}",
    )


def stats_table(
    title: str, labels: dict[str, GroupStats], traffic: dict[str, Traffic], limit: int = MAX_ROWS
) -> Content:
    """One line per agent (or source), busiest first: counts, rates, a share bar, median, depth sparkline."""
    names = sorted(
        labels.keys() | traffic.keys(),
        key=lambda n: (-(labels[n].total if n in labels else 0), -(traffic[n].arrived if n in traffic else 0), n),
    )
    lines = [Content.assemble((title, "bold"), (_HEADER[len(title) :], f"bold {_MUTED}"))]
    if not names:
        lines.append(Content.styled("  nothing arrived or was handled in this window", _MUTED))
    lines += [_row(name, labels.get(name), traffic.get(name)) for name in names[:limit]]
    if len(names) > limit:
        lines.append(Content.styled(f"  … and {len(names) - limit:,} more, less busy", _MUTED))
    return Content("\n").join(lines)


def _legend() -> Content:
    parts: list[tuple[str, str] | str] = [("outcomes: ", _MUTED)]
    for verdict, style in VERDICT_PARTS:
        parts += [("█", style), (f" {verdict}  ", _MUTED)]
    parts.append(("· approve/edit/reject: % of verdicts; expired/escal.: % of all handled", _MUTED))
    return Content.assemble(*parts)


def _window_keys(current: str) -> Iterable[tuple[str, str]]:
    for index, name in enumerate(WINDOWS, start=1):
        yield (f" {index} ", "bold reverse" if name == current else _MUTED)
        yield (f"{name}  ", "bold" if name == current else _MUTED)


class StatsScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("stats.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,s,q", "close", "Close"),
        *(Binding(str(index), f"window('{name}')", f"Last {name}") for index, name in enumerate(WINDOWS, start=1)),
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
                (f"expired {_pct(overall.expiry_rate)}", "$text-warning"),
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
        self.query_one("#by-agent", Static).update(
            stats_table("By agent", stats.labels.by_agent, stats.traffic_by_agent)
        )
        self.query_one("#by-source", Static).update(
            stats_table("By source", stats.labels.by_source, stats.traffic_by_source)
        )

    def action_window(self, window: str) -> None:
        if window not in WINDOWS or window == self.window:
            return
        self.window = window
        self._head(loading=True)
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)
