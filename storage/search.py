"""The filter's syntax: what the operator types, parsed into terms that storage/queue.py turns into bound SQL.

    refund agent:billing,crm -risk:low -"dry run" kind:ESC

A word must match somewhere (the item's fields; from three letters on, its summary and reasoning too); `-word`
must not. `field:a,b` keeps items whose field matches either value, `-field:x` leaves out those whose field matches.
A `name:` that is no field, or a value an enumerated field does not take, is a problem: it is said, and not applied.
Nothing here is SQL: the terms are values, bound as parameters where they are used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from storage.records import KIND_LABELS, Risk

__all__ = ["FIELD_VALUES", "FILTER_FIELDS", "FieldTerm", "Filter", "parse_filter", "search_text"]

# Filter fields by the name typed, each with its column; a plain word matches any of them.
FILTER_FIELDS: Final[dict[str, str]] = {
    "agent": "agent",
    "action": "action_name",
    "source": "source",
    "kind": "kind",
    "risk": "risk",
    "workflow": "workflow",
    "id": "id",
    "claimed": "claimed_by",
}
# Fields whose values are a known few: a value is the start of one of them (or, for kind, the KIND column's label),
# matched exactly; anything else is a problem, named with what the field takes. The rest match as substrings.
FIELD_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "kind": tuple(KIND_LABELS.values()),
    "risk": tuple(r.value for r in Risk),
}
_KNOWN_VALUES: Final[dict[str, dict[str, str]]] = {
    "kind": {**{k: k for k in KIND_LABELS}, **{label.casefold(): kind for kind, label in KIND_LABELS.items()}},
    "risk": {r.value: r.value for r in Risk},
}
EXACT_FIELDS: Final = frozenset({"claimed"})  # a name, not a part of one: claimed:al is not alice
# [-][name:]value, where the value runs to the next space outside double quotes (an open quote runs to the end).
_TOKEN: Final = re.compile(r'(?P<minus>-(?=\S))?(?:(?P<name>\w+):)?(?P<value>(?:"[^"]*(?:"|$)|[^\s"])*)')
_PIECE: Final = re.compile(r'"([^"]*)"?|([^,"]+)')


@dataclass(frozen=True)
class FieldTerm:
    """`field:a,b` (the column matches any value) or, with `exclude`, `-field:a,b` (it matches none of them)."""

    field: str  # the name typed: "action"
    values: tuple[str, ...]
    exclude: bool = False

    @property
    def column(self) -> str:
        return FILTER_FIELDS[self.field]

    @property
    def exact(self) -> bool:
        return self.field in FIELD_VALUES or self.field in EXACT_FIELDS


@dataclass(frozen=True)
class Filter:
    """A parsed filter: field terms that must each hold, words that must each match, and words that must not."""

    fields: tuple[FieldTerm, ...] = ()
    words: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()  # `-word`
    unknown: tuple[str, ...] = ()  # `name:` prefixes that are no field (not applied)
    refused: tuple[tuple[str, str], ...] = ()  # (field, value) the field does not take (not applied)

    @property
    def empty(self) -> bool:
        return not self.fields and not self.words and not self.excluded

    @property
    def problems(self) -> tuple[str, ...]:
        """Each problem in words, with what would be accepted instead (no markup: the caller styles it)."""
        fields = ", ".join(f"{f}:" for f in FILTER_FIELDS)
        said = [f"unknown field {name}: (fields: {fields})" for name in self.unknown]
        for field, value in self.refused:
            said.append(f"{field}:{value} is not a {field} (takes {', '.join(FIELD_VALUES[field])})")
        return tuple(said)


def _values(field: str, value: str) -> tuple[tuple[str, ...], list[str]]:
    """The values of `field:value` as the column holds them, and the pieces the field does not take."""
    pieces = [m.group(1) if m.group(1) is not None else m.group(2) for m in _PIECE.finditer(value)]
    pieces = [p for p in (p.strip() for p in pieces) if p]
    known = _KNOWN_VALUES.get(field)
    if known is None:
        return tuple(dict.fromkeys(pieces)), []
    found: list[str] = []
    refused: list[str] = []
    for piece in pieces:
        folded = piece.casefold()
        matches = [stored for typed, stored in known.items() if typed == folded or typed.startswith(folded)]
        if not matches:
            refused.append(piece)
        found += [m for m in dict.fromkeys(matches) if m not in found]
    return tuple(found), refused


def parse_filter(text: str) -> Filter:
    """`agent:billing,crm -risk:low refund -"dry run"`: see the module's docstring. Matching ignores case."""
    fields: list[FieldTerm] = []
    words: list[str] = []
    excluded: list[str] = []
    unknown: list[str] = []
    refused: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        minus, name, value = bool(match.group("minus")), match.group("name"), match.group("value")
        if not match.group(0):
            continue
        if name is not None:
            field = name.lower()
            if field not in FILTER_FIELDS:
                if name not in unknown:
                    unknown.append(name)
                continue
            values, bad = _values(field, value)
            refused += [(field, piece) for piece in bad]
            if values:
                fields.append(FieldTerm(field, values, minus))
            continue
        word = value.replace('"', "")
        if word:
            (excluded if minus else words).append(word)
    return Filter(tuple(fields), tuple(words), tuple(excluded), tuple(unknown), tuple(refused))


def search_text(*parts: str) -> str:
    """What a plain filter word is matched against: the fields joined and case-folded (stored per item)."""
    return " ".join(parts).casefold()
