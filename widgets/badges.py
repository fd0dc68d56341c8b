"""Small fixed-width pieces of text: risk badges, confidence meters and durations.

Each comes as a plain string (for layout and for callers that style with theme variables) and as a Rich `Text`
with styles passed in (resolved theme colours from the caller, e.g. `get_component_rich_style`).
Widths are fixed so columns line up in the queue list.
"""

from __future__ import annotations

import math
from typing import Final

from rich.style import Style
from rich.text import Text

from storage.records import Risk

__all__ = [
    "CONFIDENCE_WIDTH",
    "LOW_CONFIDENCE",
    "METER_CELLS",
    "RISK_LABELS",
    "RISK_WIDTH",
    "TIME_WIDTH",
    "URGENT_SECONDS",
    "confidence_meter",
    "confidence_text",
    "format_age",
    "format_countdown",
    "format_left",
    "is_low_confidence",
    "risk_badge",
    "risk_label",
]

RISK_LABELS: Final[dict[Risk, str]] = {
    Risk.critical: "CRIT",
    Risk.high: "HIGH",
    Risk.medium: "MED",
    Risk.low: "LOW",
}
RISK_WIDTH: Final = 4

METER_CELLS: Final = 5
CONFIDENCE_WIDTH: Final = METER_CELLS + 5  # "▰▰▱▱▱ 0.41"
LOW_CONFIDENCE: Final = 0.5  # below this an output is a doubt, and is styled as a warning
TIME_WIDTH: Final = 7  # widest duration: "expired", "23h59m", "99d23h"
URGENT_SECONDS: Final = 300.0  # less than this left: shown as urgent

_FILLED: Final = "▰"
_EMPTY: Final = "▱"
_ABSENT: Final = "  —  ".ljust(CONFIDENCE_WIDTH)


def risk_label(risk: Risk) -> str:
    """ "CRIT", "HIGH", "MED " or "LOW ": always `RISK_WIDTH` cells."""
    return RISK_LABELS[risk].ljust(RISK_WIDTH)


def risk_badge(risk: Risk, style: str | Style = "") -> Text:
    return Text(risk_label(risk), style=style, end="")


def is_low_confidence(confidence: float | None) -> bool:
    return confidence is not None and confidence < LOW_CONFIDENCE


def _filled_cells(confidence: float) -> int:
    # Half up, clamped: 0.41 -> 2 of 5, 0.5 -> 3 of 5; never more bars than cells.
    return max(0, min(METER_CELLS, math.floor(confidence * METER_CELLS + 0.5)))


def confidence_text(confidence: float | None) -> str:
    """ "▰▰▱▱▱ 0.41", or a dash when the agent gave no confidence; always `CONFIDENCE_WIDTH` cells."""
    if confidence is None or not math.isfinite(confidence):
        return _ABSENT
    value = max(0.0, min(1.0, confidence))
    filled = _filled_cells(value)
    return f"{_FILLED * filled}{_EMPTY * (METER_CELLS - filled)} {value:.2f}"


def confidence_meter(confidence: float | None, style: str | Style = "", empty_style: str | Style = "") -> Text:
    """`confidence_text` as Text: filled bars and the number in `style`, empty bars (or the dash) in `empty_style`."""
    if confidence is None or not math.isfinite(confidence):
        return Text(_ABSENT, style=empty_style, end="")
    value = max(0.0, min(1.0, confidence))
    filled = _filled_cells(value)
    text = Text(end="")
    text.append(_FILLED * filled, style)
    text.append(_EMPTY * (METER_CELLS - filled), empty_style)
    text.append(f" {value:.2f}", style)
    return text


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m"
    days, rest = divmod(seconds, 86400)
    if days > 99:
        return ">99d"
    return f"{days}d{rest // 3600:02d}h"


def format_age(seconds: float) -> str:
    """How long ago: "45s", "12m", "1h05m", "3d04h". Negative ages (clock skew) read as "0s"."""
    if not math.isfinite(seconds):
        return "—"
    return _duration(max(0, math.floor(seconds)))


def format_left(seconds: float | None) -> str:
    """Time left before a deadline: "45s", "12m", "1h05m", "expired", or "—" when there is no deadline.

    Rounds up, so "1s" is shown until the deadline has really passed.
    """
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds <= 0:
        return "expired"
    if math.isinf(seconds):
        return "—"
    return _duration(math.ceil(seconds))


COUNTDOWN_SECONDS: Final = 600.0  # in the last ten minutes a countdown shows seconds


def format_countdown(seconds: float | None) -> str:
    """A live countdown: "1h05m", "9m07s", "42s", "expired", or "—" without a deadline.

    Like `format_left`, but to the second in the last ten minutes, where every second counts.
    """
    if seconds is None or math.isnan(seconds) or math.isinf(seconds) or seconds > COUNTDOWN_SECONDS:
        return format_left(seconds)
    if seconds <= 0:
        return "expired"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
