"""JSON Pointers and diffs (storage/json_diff.py): the labels' RFC 6902 patch and the edit screen's changed paths."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from jsonpatch import apply_patch  # an independent RFC 6902 implementation checks ours
from jsonpointer import resolve_pointer  # and an independent RFC 6901 one our pointers

from storage.json_diff import (
    MISSING,
    changed_paths,
    escape,
    json_patch,
    pointer,
    same,
    unescape,
    unique_members,
    value_at,
)

# ------------------------------------------------------------------------------------------------------ JSON Patch


@pytest.mark.parametrize(
    ("proposed", "edited"),
    [
        ({"amount": 1250.0, "currency": "EUR"}, {"amount": 500.0, "currency": "EUR"}),
        ({"a": 1}, {"a": 1, "b": {"c": [1, 2]}}),
        ({"a": 1, "b": 2}, {"b": 2}),
        ({"to": ["x@example.com", "y@example.com"]}, {"to": ["y@example.com"]}),
        ({"to": ["x"]}, {"to": ["w", "x", "z"]}),
        ({"steps": [{"n": 1}, {"n": 2}]}, {"steps": [{"n": 2}, {"n": 1, "extra": True}]}),
        ({"flag": 1}, {"flag": True}),  # 1 and true are different JSON values
        ({"ratio": 1.0}, {"ratio": 1}),
        ({"a/b": {"c~d": 1}}, {"a/b": {"c~d": 2, "e~/f": 3}}),
        ("a drafted reply", "a corrected reply"),  # an escalation's output may be any JSON value
        ([1, 2, 3], {"now": "an object"}),
        ({"same": [1]}, {"same": [1]}),
    ],
)
def test_json_patch_applied_to_the_proposal_gives_the_edit(proposed: Any, edited: Any) -> None:
    patch = json_patch(proposed, edited)
    assert all(op["op"] in {"add", "remove", "replace", "move", "copy", "test"} for op in patch)
    result = apply_patch(proposed, patch)
    assert json.dumps(result, sort_keys=True) == json.dumps(edited, sort_keys=True)
    assert (patch == []) == (json.dumps(proposed, sort_keys=True) == json.dumps(edited, sort_keys=True))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return {rng.choice(["a", "b", "c/d", "e~f", ""]): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and roll < 0.55:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return rng.choice([0, 1, 1.0, True, False, None, "x", "", 2.5, "y"])


def mutate(rng: random.Random, value: Any) -> Any:
    """A small edit somewhere inside `value`: what an operator's correction usually is."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        members = dict(value)
        if rng.random() < 0.3:
            del members[key]
        else:
            members[key] = mutate(rng, members[key])
        return members
    if isinstance(value, list) and value and rng.random() < 0.7:
        elements = list(value)
        index = rng.randrange(len(elements))
        choice = rng.random()
        if choice < 0.3:
            del elements[index]
        elif choice < 0.6:
            elements.insert(index, random_json(rng, 2))
        else:
            elements[index] = mutate(rng, elements[index])
        return elements
    return random_json(rng, 2)


def test_json_patch_is_exact_on_random_documents() -> None:
    rng = random.Random(6902)
    for _ in range(3000):
        proposed = random_json(rng)
        edited = mutate(rng, proposed) if rng.random() < 0.7 else random_json(rng)
        patch = json_patch(proposed, edited)
        same = json.dumps(apply_patch(proposed, patch), sort_keys=True) == json.dumps(edited, sort_keys=True)
        assert same, (proposed, edited, patch)  # dumps tells 1, 1.0 and true apart; member order does not matter


def test_json_patch_of_a_document_too_deep_to_walk_is_one_replace() -> None:
    proposed: Any = "bottom"
    edited: Any = "changed"
    for _ in range(5000):
        proposed, edited = [proposed], [edited]
    assert json_patch(proposed, edited) == [{"op": "replace", "path": "", "value": edited}]


def test_json_patch_escapes_pointer_characters() -> None:
    patch = json_patch({"a/b": {"c~d": 1}}, {"a/b": {"c~d": 2}})
    assert patch == [{"op": "replace", "path": "/a~1b/c~0d", "value": 2}]


# --------------------------------------------------------------------------------------------------- JSON Pointer

ODD_KEYS = ["a/b", "c~d", "~1", "~0", "/~", "", "x~01", "plain"]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_a_segment_escapes_and_unescapes_to_the_same_key(key: str) -> None:
    assert unescape(escape(key)) == key
    assert "/" not in escape(key)


def test_pointer_escapes_each_part_as_rfc_6901_reads_it() -> None:
    document = {key: {"list": [10, {key: "found"}]} for key in ODD_KEYS}
    for key in ODD_KEYS:
        path = pointer([key, "list", 1, key])
        assert resolve_pointer(document, path) == "found", path
        assert value_at(document, path) == "found", path
    assert pointer([]) == "" and pointer(["a/b", 0]) == "/a~1b/0"


def test_value_at_a_path_that_is_not_there_is_missing_not_null() -> None:
    document = {"a": [1, None], "b": None}
    assert value_at(document, "/a/1") is None and value_at(document, "/b") is None
    assert value_at(document, "/a/2") is MISSING
    assert value_at(document, "/a/x") is MISSING
    assert value_at(document, "/c") is MISSING
    assert value_at(document, "/b/c") is MISSING
    assert value_at(document, "") is document and value_at(document, "/") is document


def test_same_tells_json_types_apart() -> None:
    assert same({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same(1, True) and not same(1, 1.0) and not same(0, False)
    assert not same({"a": 1}, {"a": 1, "b": 2}) and not same([1], [1, 1])


# --------------------------------------------------------------------------------------------------- changed paths


def test_changed_paths_name_each_changed_added_and_removed_member() -> None:
    before = {"amount": 1, "to": ["x", "y"], "keep": {"n": 1}, "gone": 1, "a/b": {"c~d": 1}}
    after = {"amount": 2, "to": ["x", "z"], "keep": {"n": 1}, "new": 1, "a/b": {"c~d": 2}}
    assert changed_paths(before, after) == ["/amount", "/to/1", "/gone", "/a~1b/c~0d", "/new"]


def test_changed_paths_of_a_list_that_changed_length_is_the_list() -> None:
    assert changed_paths({"to": ["x"]}, {"to": ["x", "y"]}) == ["/to"]


def test_changed_paths_of_a_changed_root_is_slash() -> None:
    assert changed_paths("a", "b") == ["/"]
    assert changed_paths([1], {"a": 1}) == ["/"]
    assert changed_paths({"a": 1}, {"a": 1}) == []


def test_changed_paths_tell_json_types_apart() -> None:
    assert changed_paths({"flag": 1, "ratio": 1.0}, {"flag": True, "ratio": 1}) == ["/flag", "/ratio"]


def test_every_changed_path_points_at_a_differing_value() -> None:
    rng = random.Random(6901)
    for _ in range(500):
        before = random_json(rng)
        after = mutate(rng, before)
        paths = changed_paths(before, after)
        assert (paths == []) == same(before, after), (before, after, paths)
        for path in paths:
            assert not same(value_at(before, path), value_at(after, path)), (before, after, path)


# ------------------------------------------------------------------------------------------ duplicate member names


def test_unique_members_refuses_a_repeated_name_at_any_depth() -> None:
    def refuse(name: str) -> ValueError:
        return ValueError(f"twice: {name}")

    hook = unique_members(refuse)
    assert json.loads('{"a": 1, "b": {"c": [1, {"d": 2}]}}', object_pairs_hook=hook) == {
        "a": 1,
        "b": {"c": [1, {"d": 2}]},
    }
    for text, name in [('{"a": 1, "a": 2}', "a"), ('{"x": [{"k": 1, "k": 1}]}', "k"), ('{"a/b": 1, "a/b": 1}', "a/b")]:
        with pytest.raises(ValueError, match="twice: " + name):
            json.loads(text, object_pairs_hook=hook)
