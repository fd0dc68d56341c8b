"""Reading a listing page (PROTOCOL.md section 2) item by item: one unreadable item is quarantined, not the page.

The common page is parsed in one pass by the C decoder. Only when that fails (an item nested deeper than the parser's
stack, bad UTF-8 inside one item, a duplicate member name, a NaN) is the page split into the raw text of each item by a
tolerant scan, and each item read on its own: the broken one is quarantined with its reason, the others are listed.
A page whose envelope itself is broken is an error of the whole source.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from console.engine.sources.base import Rejected, SourceError, excerpt
from storage.json_diff import unique_members
from storage.records import MAX_NESTING, cursor_problem


class DuplicateName(ValueError):
    """A JSON object names a member twice (R6): readers disagree on which value counts, so nobody may act on it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"duplicate member name {name[:60]!r}")


_unique_members = unique_members(DuplicateName)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Duplicate names refused everywhere; NaN and Infinity (which Python's json reads by default) are not JSON.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant)


def loads(text: str) -> Any:
    """Strict JSON: duplicate member names and non-JSON constants raise ValueError."""
    return _DECODER.decode(text)


@dataclass
class Listing:
    """A listing page's envelope checked against the protocol's shape, with each item still raw."""

    items: list[Any]
    removed: list[Any]
    cursor: str | None
    has_more: bool
    unreadable: list[Rejected] = field(default_factory=list)  # items that could not be read as JSON at all
    cursor_refused: str = ""  # why the page's cursor cannot be kept (R4); empty when it can


def parse_listing(raw: bytes) -> Listing:
    """The page's envelope and raw items. Raises SourceError when the page is not a listing at all."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        body = loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _item_by_item(raw.decode("utf-8", "surrogateescape"))
    return _envelope(body, [])


def _envelope(body: Any, unreadable: list[Rejected]) -> Listing:
    if not isinstance(body, dict):
        raise SourceError(f"answered with a JSON {_json_type(body)}, not a listing (an object with an 'items' array)")
    if not isinstance(body.get("items"), list):
        names = ", ".join(repr(str(k)[:40]) for k in list(body)[:4]) or "none"
        what = "no 'items' array" if "items" not in body else f"'items' is a JSON {_json_type(body['items'])}"
        raise SourceError(f"answered with something that is not a listing: {what} (its members: {names})")
    removed = body.get("removed")
    if removed is not None and not isinstance(removed, list):
        raise SourceError(f"answered with a listing whose 'removed' is a JSON {_json_type(removed)}, not an array")
    cursor = body.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise SourceError(f"answered with a listing whose 'cursor' is a JSON {_json_type(cursor)}, not a string")
    has_more = body.get("has_more")
    if has_more is not None and not isinstance(has_more, bool):
        raise SourceError(f"answered with a listing whose 'has_more' is a JSON {_json_type(has_more)}, not true/false")
    listing = Listing(body["items"], removed or [], cursor, bool(has_more), unreadable)
    problem = None if cursor is None else cursor_problem(cursor)
    if problem is not None:
        listing.cursor, listing.cursor_refused = None, problem
    return listing


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# Strings (with their escapes) and the characters that give JSON its structure. Anything else (numbers, literals,
# spaces) lies between tokens and is carried along inside an item's text. An unterminated string runs to the end (one
# pass, never a rescan from each quote inside it).
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[][{},:]', re.DOTALL)
_ID = re.compile(r'"id"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


def _item_by_item(text: str) -> Listing:
    """The tolerant pass: find the top-level `items` array, read each element alone, the envelope without them."""
    spans, outside = _split(text)
    try:
        outside.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SourceError("answered with a listing that is not valid UTF-8 outside its items") from exc
    try:
        body = loads(outside)
    except (ValueError, RecursionError) as exc:
        raise SourceError(f"answered with invalid JSON ({_brief(exc)})") from exc
    listing = _envelope(body, [])
    items: list[Any] = []
    for begin, end, deepest in spans:
        element = text[begin:end].strip()
        if not element and len(spans) == 1:
            continue  # `[]`
        value, problem = _read_item(element, deepest)
        if problem is None:
            items.append(value)
        else:
            listing.unreadable.append(Rejected(_item_id(element), problem, excerpt(element[:400])))
    listing.items = items
    return listing


def _split(text: str) -> tuple[list[tuple[int, int, int]], str]:
    """Where each element of the top-level `items` array lies (start, end, depth), and the page without them."""
    depth = 0
    key: str | None = None  # the member name just read at the top level
    last_string = ""
    in_items = False
    start = 0  # where the current element of `items` began
    deepest = 0  # how deep the current element nests (its own brackets count from 1)
    spans: list[tuple[int, int, int]] = []  # (start, end, depth) of each element
    envelope: list[str] = []  # the page with every top-level `items` array emptied
    copied = 0
    for token in _TOKEN.finditer(text):
        kind = token.group()
        if kind[0] == '"':
            if depth == 1:
                last_string = kind
            continue
        if kind == ":":
            if depth == 1:
                key = last_string
            continue
        if in_items:
            if kind in "[{":
                depth += 1
                deepest = max(deepest, depth - 2)
            elif kind in "]}":
                depth -= 1
                if depth == 1:  # the end of `items`
                    spans.append((start, token.start(), deepest))
                    copied = token.start()  # the elements stay out of the envelope
                    in_items = False
            elif kind == "," and depth == 2:
                spans.append((start, token.start(), deepest))
                start, deepest = token.end(), 0
            continue
        if kind in "[{":
            depth += 1
            if depth == 2 and kind == "[" and key == '"items"':
                in_items, start, deepest = True, token.end(), 0
                envelope.append(text[copied : token.end()])
                copied = token.end()
        elif kind in "]}":
            depth -= 1
        elif kind == "," and depth == 1:
            key = None
    envelope.append(text[copied:])
    if depth != 0 or in_items:
        raise SourceError("answered with invalid JSON (its brackets do not balance)")
    return spans, "".join(envelope)


# The deepest a valid item can be: arguments (or a schema) may nest MAX_NESTING levels inside item -> action -> args.
# Validation applies the exact limit; this only spares the parser what cannot be valid.
MAX_ITEM_DEPTH = MAX_NESTING + 3


def _read_item(element: str, deepest: int) -> tuple[Any, str | None]:
    if deepest > MAX_ITEM_DEPTH:
        return None, f"unreadable item: nested {deepest:,} levels deep (arguments and output: at most {MAX_NESTING})"
    try:
        element.encode("utf-8")
    except UnicodeEncodeError as exc:
        return None, f"unreadable item: not valid UTF-8 (at character {exc.start:,} of the item)"
    try:
        return loads(element), None
    except DuplicateName as exc:
        return None, str(exc)
    except (ValueError, RecursionError) as exc:
        return None, f"unreadable item: invalid JSON ({_brief(exc)})"


def _item_id(element: str) -> str:
    found = _ID.search(element[:4096])
    if found is not None:
        try:
            value = json.loads(f'"{found.group(1)}"')
        except ValueError:
            value = None
        if isinstance(value, str) and value.isprintable():
            return value
    return "?" + hashlib.sha256(element.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
