"""Property tests of record patches (protocol.md §11.3–§11.4): diff(old, new) on old gives new."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh_sdk.protocol.patch import apply_patch, changes, combine, diff, json_equal

# Keys exercise RFC 6901 escaping ("/" and "~") and unicode.
keys = st.one_of(
    st.sampled_from(["", "a", "b", "/", "~", "~1", "a/b", "~0~", "é", "日本", "0", "-"]),
    st.text(max_size=6),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=25,
)


def _check_ops(ops: list[dict[str, Any]]) -> None:
    assert ops, "a patch is never empty"
    for op in ops:
        assert op["op"] in {"add", "remove", "replace"}
        assert op["path"] == "" or op["path"].startswith("/")
        assert ("value" in op) == (op["op"] != "remove")


def _strict_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans never equal to numbers."""
    return json_equal(a, b)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_diff_applied_to_old_gives_new(old: Any, new: Any) -> None:
    before = copy.deepcopy(old)
    ops = diff(old, new)
    _check_ops(ops)
    result = apply_patch(old, ops)
    assert _strict_equal(result, new), (old, new, ops, result)
    assert _strict_equal(old, before)  # the input is not mutated


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=6), st.lists(json_values, max_size=6))
def test_array_diffs_use_explicit_indices(old: list[Any], new: list[Any]) -> None:
    ops = diff(old, new)
    for op in ops:
        first = op["path"].split("/")[1] if op["path"] else None
        if first is not None:
            assert first.isdigit(), ops  # never the "-" end marker
    assert _strict_equal(apply_patch(old, ops), new)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_equal_values_give_a_root_replace(value: Any) -> None:
    ops = diff(value, copy.deepcopy(value))
    assert ops == [{"op": "replace", "path": "", "value": value}] or all(op["path"] for op in ops)
    assert _strict_equal(apply_patch(value, ops), value)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_kind_change_or_scalars_is_one_root_replace(old: Any, new: Any) -> None:
    same_kind = (isinstance(old, dict) and isinstance(new, dict)) or (
        isinstance(old, list) and isinstance(new, list)
    )
    if not same_kind:
        assert diff(old, new) == [{"op": "replace", "path": "", "value": new}]


def test_true_is_not_one() -> None:
    assert not json_equal(True, 1)
    assert not json_equal({"a": True}, {"a": 1})
    assert json_equal(1, 1.0)
    assert diff({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert apply_patch({"a": 1}, diff({"a": 1}, {"a": True})) == {"a": True}


@settings(max_examples=200, deadline=None)
@given(json_values, json_values, st.sampled_from(["replace", "merge", "deepMerge"]))
def test_combined_writes_patch_exactly(old: Any, new: Any, strategy: Any) -> None:
    combined = combine(old, new, strategy)
    if json_equal(old, combined):
        return  # an unchanged write stores and publishes nothing (§11.3)
    assert _strict_equal(apply_patch(old, diff(old, combined)), combined)


@given(json_values, json_values)
def test_changes_is_none_iff_equal_else_the_diff(old: Any, new: Any) -> None:
    ops = changes(old, new)
    if json_equal(old, new):
        assert ops is None
    else:
        assert ops == diff(old, new)
        assert json_equal(apply_patch(copy.deepcopy(old), ops), new)


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=8), json_values)
def test_changes_of_one_member_of_a_large_object(old: dict[str, Any], value: Any) -> None:
    new = {**old, "k": value}
    ops = changes(old, new)
    if "k" in old and json_equal(old["k"], value):
        assert ops is None
    else:
        assert ops is not None
        assert all(op["path"].startswith("/k") for op in ops)
        assert json_equal(apply_patch(copy.deepcopy(old), ops), new)
