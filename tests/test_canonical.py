"""The digest's canonical JSON: the fast path must give exactly the bytes RFC 8785 (the rfc8785 package) gives."""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.records import canonical_json

numbers = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1250.0, 0.41, 1e-4, 9.9e-5, 1e-7, 1e15, 1e16, 1e21, 2.0**53, 2.0**53 + 2]),
)
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)  # JSON text cannot hold lone surrogates
json_values = st.recursive(
    st.none() | st.booleans() | numbers | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=1500, deadline=None)
@given(json_values)
def test_fast_path_matches_rfc8785(value: Any) -> None:
    try:
        expected = bytes(rfc8785.dumps(value))
    except ValueError:  # e.g. an integer beyond 2**53: refused, so such an item is quarantined either way
        with pytest.raises(ValueError, match=r"."):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_cases_where_the_two_encoders_differ_in_python() -> None:
    cases: list[tuple[Any, bytes]] = [
        ({"b": 1250.0, "a": -0.0}, b'{"a":0,"b":1250}'),
        ([1e-7, 1e21, 2**53 - 1], bytes(rfc8785.dumps([1e-7, 1e21, 2**53 - 1]))),
        ({"\U0001f600": 1, "\ufb01": 2}, bytes(rfc8785.dumps({"\U0001f600": 1, "\ufb01": 2}))),
        ({"s": 'quote " back \\ ctrl \x01 tab \t'}, b'{"s":"quote \\" back \\\\ ctrl \\u0001 tab \\t"}'),
    ]
    for value, expected in cases:
        assert canonical_json(value) == expected
    assert math.isclose(0.41, 0.41)  # the common case: shortest round-trip digits, same in both
    assert canonical_json({"confidence": 0.41}) == b'{"confidence":0.41}'
