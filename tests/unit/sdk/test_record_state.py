from __future__ import annotations

from typing import Any

import pytest

from mesh_sdk.protocol.patch import diff
from mesh_sdk.subscriptions.records import Outcome, RecordState


def patch_push(version: int, ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {"recordId": "r", "patch": ops, "version": version}


def test_contiguous_patches_apply() -> None:
    state = RecordState({"name": "a", "n": 1}, 1)
    ops = diff({"name": "a", "n": 1}, {"name": "b", "n": 1, "tags": ["x"]})
    outcome, applied = state.apply_push(patch_push(2, ops))
    assert outcome is Outcome.APPLIED
    assert applied == ops
    assert state.value == {"name": "b", "n": 1, "tags": ["x"]}
    assert state.version == 2


def test_root_replace_on_absent_record() -> None:
    state = RecordState()
    ops = [{"op": "replace", "path": "", "value": {"title": "hello", "items": [1]}}]
    assert state.apply_push(patch_push(1, ops))[0] is Outcome.APPLIED
    assert state.value == {"title": "hello", "items": [1]}


def test_primitive_root_replace() -> None:
    state = RecordState(5, 3)
    assert state.apply_push(patch_push(4, diff(5, 6)))[0] is Outcome.APPLIED
    assert state.value == 6


def test_local_copy_not_mutated_in_place() -> None:
    original = {"a": [1, 2]}
    state = RecordState(original, 1)
    state.apply_push(patch_push(2, diff(original, {"a": [1, 2, 3]})))
    assert original == {"a": [1, 2]}


@pytest.mark.parametrize("version", [0, 1, 2])
def test_stale_versions_ignored(version: int) -> None:
    state = RecordState({"a": 1}, 2)
    outcome, _ = state.apply_push(
        patch_push(version, [{"op": "replace", "path": "/a", "value": 9}])
    )
    assert outcome is Outcome.STALE
    assert state.value == {"a": 1}
    outcome, _ = state.apply_push({"recordId": "r", "full": {"z": 1}, "version": version})
    assert outcome is Outcome.STALE


def test_gap_requests_resync_and_drops_until_reset() -> None:
    state = RecordState({"a": 3}, 3)
    outcome, _ = state.apply_push(patch_push(11, [{"op": "replace", "path": "/a", "value": 11}]))
    assert outcome is Outcome.GAP
    assert state.resyncing
    assert state.value == {"a": 3}
    # further patches are dropped while resyncing, even the "next" one
    outcome, _ = state.apply_push(patch_push(4, [{"op": "replace", "path": "/a", "value": 4}]))
    assert outcome is Outcome.DROPPED
    state.reset({"a": 11}, 11)
    assert not state.resyncing
    outcome, _ = state.apply_push(patch_push(12, [{"op": "replace", "path": "/a", "value": 12}]))
    assert outcome is Outcome.APPLIED
    assert state.value == {"a": 12}


def test_patch_that_does_not_apply_is_a_gap() -> None:
    state = RecordState({"a": 1}, 1)
    outcome, _ = state.apply_push(patch_push(2, [{"op": "remove", "path": "/missing"}]))
    assert outcome is Outcome.GAP
    assert state.version == 1


def test_full_push_replaces_and_fills_gaps() -> None:
    state = RecordState({"a": 1}, 1)
    outcome, ops = state.apply_push({"recordId": "r", "full": {"b": 2}, "version": 7})
    assert (outcome, ops) == (Outcome.APPLIED, None)
    assert (state.value, state.version) == ({"b": 2}, 7)


def test_full_push_ends_resync() -> None:
    state = RecordState({"a": 1}, 1)
    state.apply_push(patch_push(5, []))
    assert state.resyncing
    state.apply_push({"recordId": "r", "full": None, "version": 6})
    assert not state.resyncing


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"recordId": "r"},
        {"recordId": "r", "version": "2", "full": 1},
        {"recordId": "r", "version": True, "full": 1},
        {"recordId": "r", "version": 2},
        {"recordId": "r", "version": 2, "patch": {"op": "add"}},
    ],
)
def test_unusable_pushes_dropped(payload: Any) -> None:
    state = RecordState({"a": 1}, 1)
    assert state.apply_push(payload)[0] is Outcome.DROPPED
    assert (state.value, state.version) == ({"a": 1}, 1)
