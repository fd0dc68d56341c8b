""" "Why is this on top?": one line under the item's deadline that says where it ranks, what put it there, and what
happens when its deadline passes.

What ranks it is the view's own ORDER BY, read through `QueueView.rank_factors` (storage/queue.py): this line names
those factors and the item's value for each, so it cannot tell a different story than the list's order does.
The on-expiry text is the agent's: known values are said in words, anything else is shown cleaned, as one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from textual.content import Content

from storage.records import Item

from .badges import format_age, format_left
from .safe_text import one_line

__all__ = ["ON_EXPIRY_WORDS", "Rank", "expiry_words", "ordinal", "why_content"]

SHOWN_FACTORS: Final = 3  # the rest only break ties
_LABEL: Final = "$foreground-muted"
_FACT: Final = "bold"
# PROTOCOL.md section 1: `on_expiry` is free text with three known values.
ON_EXPIRY_WORDS: Final[dict[str, str]] = {
    "reject": "rejected by the agent",
    "approve": "approved by the agent: it runs without anyone deciding",
    "escalate": "passed on by the agent to someone else",
}


@dataclass(frozen=True)
class Rank:
    """Where the item stands in the view on screen: `position` from 0 among `count`, ranked by `factors` (most
    significant first, QueueView.rank_factors), and the view said in words (QueueView.describe)."""

    position: int
    count: int
    factors: tuple[str, ...]
    view: str


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number:,}{suffix}"


def _fact(item: Item, factor: str, now: float) -> Content:
    """The item's value for one rank factor, in a few words."""
    if factor == "risk":
        return Content.styled(f"{item.risk.value} risk", _FACT)
    if factor == "time left":
        if item.expires_at is None:
            return Content.styled("no deadline", _FACT)
        left = item.expires_at.timestamp() - now
        return Content.styled("deadline passed" if left <= 0 else f"{format_left(left)} left", _FACT)
    if factor == "age":
        return Content.styled(f"created {format_age(now - item.created_at.timestamp())} ago", _FACT)
    if factor == "confidence":
        if item.confidence is None:
            return Content.styled("no confidence given", _FACT)
        return Content.styled(f"confidence {item.confidence:.2f}", _FACT)
    if factor == "agent":
        return Content.assemble(("agent ", _LABEL), (one_line(item.agent, 40), _FACT))
    if factor == "source":
        return Content.assemble(("source ", _LABEL), (one_line(item.source, 40), _FACT))
    return Content.styled(one_line(factor, 40), _FACT)


def expiry_words(on_expiry: str) -> Content:
    known = ON_EXPIRY_WORDS.get(on_expiry.strip().casefold())
    if known is not None:
        return Content.styled(known, _FACT)
    return Content.assemble(("the agent does ", _LABEL), (one_line(on_expiry, 80), _FACT))


def why_content(item: Item, rank: Rank | None, now: float) -> Content:
    """ "Ranked 3rd of 40 (sorted by urgency): critical risk, 4m left, created 3m ago. On expiry: rejected by the
    agent." Without a rank (the item is not in the view: hidden by the filter, or no longer pending) only the expiry."""
    parts: list[Content | tuple[str, str] | str] = []
    if rank is not None:
        facts = [_fact(item, factor, now) for factor in rank.factors[:SHOWN_FACTORS]]
        parts += [
            ("Ranked ", _LABEL),
            (ordinal(rank.position + 1), "bold $text-primary"),
            (f" of {rank.count:,} ({one_line(rank.view, 80)}): ", _LABEL),
            Content(", ").join(facts),
            (". ", _LABEL),
        ]
    if item.expires_at is None:
        parts += [("No deadline: ", _LABEL), ("it waits for a decision", _FACT), (".", _LABEL)]
    else:
        parts += [("On expiry: ", _LABEL), expiry_words(item.on_expiry), (".", _LABEL)]
    return Content.assemble(*parts)
