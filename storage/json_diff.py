"""JSON Pointers (RFC 6901), the differences between two JSON values, and the duplicate-name rule, in one place.

Pure standard library, so storage (labels carry an RFC 6902 patch), widgets (the edit screen shows the changed paths)
and the console's JSON readers share one escaping rule, one idea of "changed" and one refusal of repeated member names.
Values come from agents: nothing here trusts their keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = [
    "MISSING",
    "changed_paths",
    "escape",
    "json_patch",
    "pointer",
    "same",
    "unescape",
    "unique_members",
    "value_at",
]

MISSING: Final = object()  # no value at a path (distinct from JSON null)


def escape(key: object) -> str:
    """One pointer segment: `~` as `~0`, then `/` as `~1` (RFC 6901 section 3; the order matters)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    """The key a pointer segment names: `~1` back to `/`, then `~0` back to `~` (the reverse order of `escape`)."""
    return segment.replace("~1", "/").replace("~0", "~")


def pointer(parts: Iterable[object]) -> str:
    """The JSON Pointer of a path given as keys and indexes ("" for the whole document)."""
    return "".join("/" + escape(part) for part in parts)


def value_at(value: Any, path: str) -> Any:
    """The value at JSON Pointer `path` (`/` alone, as `changed_paths` writes the root, is the root too), or MISSING."""
    if path in ("", "/"):
        return value
    for segment in path.split("/")[1:]:
        key = unescape(segment)
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


def same(a: Any, b: Any) -> bool:
    """JSON equality with exact types: Python's 1 == True == 1.0 must not hide an edit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """JSON Pointer paths where `after` differs from `before`: changed, added or removed keys and list items.

    What a reader checks, not a patch: a list whose length changed is one path, and the root is "/" rather than "".
    """
    if isinstance(before, dict) and isinstance(after, dict):
        paths: list[str] = []
        for key in [*before, *(k for k in after if k not in before)]:
            paths += changed_paths(before.get(key, MISSING), after.get(key, MISSING), f"{path}/{escape(key)}")
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p for i, (b, a) in enumerate(zip(before, after, strict=True)) for p in changed_paths(b, a, f"{path}/{i}")
        ]
    if before is MISSING or after is MISSING or type(before) is not type(after) or before != after:
        return [path or "/"]
    return []


def json_patch(proposed: Any, edited: Any) -> list[dict[str, Any]]:
    """An RFC 6902 patch that turns `proposed` into `edited`: add / remove / replace over objects and arrays.

    Not always the shortest patch (an array with an element moved gets replaces, not a move), but exact: JSON types
    compare strictly (1 is not true), pointer segments are escaped (`~` as `~0`, `/` as `~1`). A document too deep to
    walk becomes one whole-document replace, so a label never fails to build.
    """
    ops: list[dict[str, Any]] = []
    try:
        _diff(proposed, edited, "", ops)
    except RecursionError:
        return [{"op": "replace", "path": "", "value": edited}]
    return ops


def _diff(a: Any, b: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in b.items():
            where = f"{path}/{escape(key)}"
            if key in a:
                _diff(a[key], value, where, ops)
            else:
                ops.append({"op": "add", "path": where, "value": value})
    elif isinstance(a, list) and isinstance(b, list):
        # Keep the common head and tail; pair up the middles, then remove or add what is left over.
        head = 0
        while head < min(len(a), len(b)) and same(a[head], b[head]):
            head += 1
        tail = 0
        while tail < min(len(a), len(b)) - head and same(a[-1 - tail], b[-1 - tail]):
            tail += 1
        old, new = a[head : len(a) - tail], b[head : len(b) - tail]
        for offset, (x, y) in enumerate(zip(old, new, strict=False)):
            _diff(x, y, f"{path}/{head + offset}", ops)
        ops.extend({"op": "remove", "path": f"{path}/{head + len(new)}"} for _ in range(len(old) - len(new)))
        ops.extend(
            {"op": "add", "path": f"{path}/{head + offset}", "value": new[offset]}
            for offset in range(len(old), len(new))
        )
    elif not same(a, b):
        ops.append({"op": "replace", "path": path, "value": b})


def unique_members(refuse: Callable[[str], Exception]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A `json` object_pairs_hook that raises `refuse(name)` for a member name an object repeats (R6, PROTOCOL.md):
    readers disagree on which of the values counts, so nobody may act on such an object."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        members = dict(pairs)
        if len(members) != len(pairs):
            seen: set[str] = set()
            for name, _ in pairs:
                if name in seen:
                    raise refuse(name)
                seen.add(name)
        return members

    return hook
