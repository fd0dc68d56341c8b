"""The source-health report: per source, its state, its last error in full, when it is tried again, what the console
holds for it (pending, quarantined, unsynced) and why items were quarantined.

Errors and quarantine reasons come from the source (or quote it): each is cleaned and drawn as plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Final

from textual.content import Content

from storage.records import Quarantined, SourceCounts, SourceHealth

from .badges import format_age, format_left
from .safe_text import clean, one_line
from .status_bar import STATE_LABELS, STATE_STYLES
from .timefmt import zoned_time

__all__ = ["REASONS_SHOWN", "source_report"]

REASONS_SHOWN: Final = 5  # the newest quarantine reasons per source; Problems (`p`) lists them all
_LABEL: Final = "$foreground-muted"
_TITLE: Final = "bold"
_WARN: Final = "bold $text-warning"
_ERROR: Final = "$text-error"
_INDENT: Final = "  "


def _when(epoch: float, zone: tzinfo | None) -> str:
    return zoned_time(datetime.fromtimestamp(epoch, UTC), zone)


def _field(name: str) -> tuple[str, str]:
    return (f"{_INDENT}{name:<12}", _LABEL)


def _retry(health: SourceHealth, now: float, zone: tzinfo | None) -> Content:
    if health.state in ("up", "starting") or health.next_retry_at is None:
        return Content.styled("polled on its interval" if health.state == "up" else "—", _LABEL)
    left = health.next_retry_at - now
    when = "now" if left <= 0 else f"in {format_left(left)}"
    return Content.assemble((when, _TITLE), (f"  ({_when(health.next_retry_at, zone)})", _LABEL))


def _counts(counts: SourceCounts) -> Content:
    waiting = counts.unacknowledged
    quarantine = f"{counts.quarantined:,} quarantined" + (f" ({waiting:,} not acknowledged)" if waiting else "")
    return Content.assemble(
        (f"{counts.pending:,} pending", _TITLE),
        (" · ", _LABEL),
        (quarantine, _WARN if waiting else _TITLE),
        (" · ", _LABEL),
        (f"{counts.unsynced:,} unsynced", _WARN if counts.unsynced else _TITLE),
    )


def _source(
    health: SourceHealth, counts: SourceCounts, quarantined: Sequence[Quarantined], now: float, zone: tzinfo | None
) -> list[Content | tuple[str, str] | str]:
    state = STATE_LABELS.get(health.state, health.state)
    parts: list[Content | tuple[str, str] | str] = [
        (one_line(health.name, 60), "bold $text-primary"),
        "  ",
        (f" {one_line(state, 20)} ", STATE_STYLES.get(health.state, "")),
        "\n",
        _field("last error"),
        Content.styled(clean(health.error), _ERROR) if health.error else Content.styled("none", _LABEL),
        "\n",
        _field("last poll"),
        ("never" if health.last_poll_at is None else f"{format_age(now - health.last_poll_at)} ago", ""),
        ("   last good poll ", _LABEL),
        ("never" if health.last_ok_at is None else f"{format_age(now - health.last_ok_at)} ago", ""),
        "\n",
        _field("next retry"),
        _retry(health, now, zone),
        "\n",
        _field("holds"),
        _counts(counts),
        "\n",
    ]
    if quarantined:
        parts += [_field("quarantined"), ("why, newest first:", _LABEL), "\n"]
        for entry in quarantined[:REASONS_SHOWN]:
            style = _LABEL if entry.acknowledged else ""
            parts += [
                (_INDENT * 2 + "- ", _LABEL),
                (one_line(entry.item_id, 30), style or _TITLE),
                (": ", _LABEL),
                (one_line(entry.reason, 200), style),
                (" (acknowledged)" if entry.acknowledged else "", _LABEL),
                "\n",
            ]
        if len(quarantined) > REASONS_SHOWN:
            parts += [(f"{_INDENT * 2}+{len(quarantined) - REASONS_SHOWN:,} more: p lists every problem", _LABEL), "\n"]
    return parts


def source_report(
    health: Sequence[SourceHealth],
    counts: Mapping[str, SourceCounts],
    quarantined: Sequence[Quarantined],
    now: float,
    zone: tzinfo | None = None,
) -> Content:
    """Every source, one block each, in the order given (the config's)."""
    if not health:
        return Content.styled("No sources configured.", _WARN)
    by_source: dict[str, list[Quarantined]] = {}
    for entry in quarantined:
        by_source.setdefault(entry.source, []).append(entry)
    parts: list[Content | tuple[str, str] | str] = []
    for index, source in enumerate(health):
        if index:
            parts.append("\n")
        parts += _source(source, counts.get(source.name, SourceCounts()), by_source.get(source.name, []), now, zone)
    return Content.assemble(*parts)
