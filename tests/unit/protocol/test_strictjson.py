"""Strict JSON helpers: the fallbacks, nesting depth and member text, all without recursion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_sdk.protocol.strictjson import (
    FALLBACK_MAX_DEPTH,
    JSONDecodeError,
    dumps,
    loads,
    may_nest_deeper,
    member_text,
    nested_deeper_than,
    text_nests_deeper,
)


def chain(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def depth_of(value: Any) -> int:
    # Reference implementation (recursive: only for the small values hypothesis draws).
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def test_loads_falls_back_for_numbers_beyond_doubles() -> None:
    assert loads(b'{"a":1e400}') == {"a": float("inf")}
    assert loads('{"a":-1e400}') == {"a": float("-inf")}
    assert loads(b"[" * 200 + b"1e400" + b"]" * 200) is not None


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 2000 + b"]" * 2000,  # beyond orjson's 1024 levels: never given to the stdlib
        (chain(FALLBACK_MAX_DEPTH + 1, "[1e400,", "]")).encode(),
        b'"' + b'\\"' * 50_000 + b"[" * 300,  # an unterminated string: still linear time
        b"[" * 300 + b"}" * 300,  # unbalanced
        b'{"a":"\xff"}',
        '{"a":"\ud800"}',
        b'{"a":NaN}',
    ],
)
def test_loads_refuses(data: bytes | str) -> None:
    with pytest.raises(JSONDecodeError):
        loads(data)


def test_dumps_fallbacks() -> None:
    assert dumps({"n": 2**70}) == f'{{"n":{2**70}}}'.encode()
    deep: Any = [2**70]
    for _ in range(FALLBACK_MAX_DEPTH):
        deep = [deep]
    with pytest.raises(TypeError, match="nested deeper than 256 levels"):
        dumps(deep)
    with pytest.raises(TypeError):
        dumps([2**70, float("nan")])


@pytest.mark.parametrize("limit", [0, 1, 2, 5])
def test_nested_deeper_than_counts_containers(limit: int) -> None:
    for depth in range(8):
        value = json.loads(chain(depth)) if depth else 7
        assert nested_deeper_than(value, limit) is (depth > limit)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert nested_deeper_than(deep, 64)  # no recursion at any depth


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=3),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=30,
    ),
    st.integers(0, 8),
)
def test_nested_deeper_than_matches_the_reference(value: Any, limit: int) -> None:
    assert nested_deeper_than(value, limit) is (depth_of(value) > limit)
    text = json.dumps({"v": value})
    if depth_of(value) > limit:
        assert may_nest_deeper(text, limit)
        assert may_nest_deeper(text.encode(), limit)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(alphabet='[]{}"\\\\/nu0a', max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=30,
    ),
    st.integers(0, 8),
    st.booleans(),
)
def test_text_depth_ignores_brackets_in_strings(value: Any, limit: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert text_nests_deeper(text, limit) is (depth_of(value) > limit)
    assert text_nests_deeper(text.encode(), limit) is (depth_of(value) > limit)


def test_brackets_inside_strings_are_no_nesting_even_at_limit_zero() -> None:
    # Found by the property test above: with limit 0 no pass ran and any bracket counted.
    assert not text_nests_deeper('"["', 0)
    assert not text_nests_deeper(b'"{[{"', 0)
    assert text_nests_deeper('["["]', 0)
    assert not text_nests_deeper('["["]', 1)


def test_may_nest_deeper_is_a_cheap_bound() -> None:
    assert not may_nest_deeper(b'{"id":1,"command":"echo","payload":{"a":[1,2]}}', 2)
    assert may_nest_deeper(b'{"id":1,"payload":' + chain(4).encode() + b"}", 2)
    assert not may_nest_deeper("{" + chain(2) + "}", 2)  # too short to hold depth 3


@given(
    st.dictionaries(
        st.text(max_size=4),
        st.recursive(
            st.none() | st.floats(allow_nan=False) | st.text(max_size=4) | st.booleans(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=3), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([None, 2]),
)
def test_member_text_finds_each_member(obj: dict[str, Any], indent: int | None) -> None:
    text = json.dumps(obj, indent=indent)
    for key, value in obj.items():
        found = member_text(text, key)
        assert found is not None
        assert json.loads(found) == value
    assert member_text(text, "\x00absent") is None


def test_member_text_edge_cases() -> None:
    assert member_text('{"a":{"id":1},"id":[1, 2.0]}', "id") == "[1, 2.0]"
    assert member_text('{"id":1,"id":"x\\"]"}', "id") == '"x\\"]"'  # last wins, escapes kept
    assert member_text('{"\\u0069d" : -1.5e3 }', "id") == "-1.5e3"
    assert member_text('{"id":' + chain(50_000) + "}", "id") == chain(50_000)
