"""Records: atomic versioned writes, patches, deletion (protocol.md §11)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh_sdk.protocol.errors import TooLargeError
from mesh_sdk.protocol.patch import apply_patch
from mesh_server.backends.base import RecordWrite
from mesh_server.backends.messages import record_channel
from tests.conformance.conftest import NAMESPACE, Cluster, Node


async def watch(node: Node, record_id: str) -> str:
    channel = record_channel(NAMESPACE, record_id)
    await node.backend.subscribe(channel)
    return channel


async def test_absent_record(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    assert await a.backend.get_record("rec") == (None, 0)


async def test_replace_writes_and_publishes(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")

    first = await a.backend.write_record("rec", {"a": 1})
    second = await a.backend.write_record("rec", {"a": 2, "b": [1]})

    assert first == RecordWrite(
        changed=True,
        version=1,
        value={"a": 1},
        patch=[{"op": "replace", "path": "", "value": {"a": 1}}],
    )
    assert second.changed is True
    assert second.version == 2
    assert second.value == {"a": 2, "b": [1]}
    assert apply_patch({"a": 1}, second.patch) == {"a": 2, "b": [1]}
    assert await b.backend.get_record("rec") == ({"a": 2, "b": [1]}, 2)

    events = await b.recorder.drain_json(a.backend, channel)
    assert events == [
        {"t": "update", "recordId": "rec", "version": 1, "value": {"a": 1}, "patch": first.patch},
        {
            "t": "update",
            "recordId": "rec",
            "version": 2,
            "value": {"a": 2, "b": [1]},
            "patch": second.patch,
        },
    ]


async def test_primitive_values_get_root_patches(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    assert (await a.backend.write_record("n", 5)).patch == [
        {"op": "replace", "path": "", "value": 5}
    ]
    assert (await a.backend.write_record("n", 6)).patch == [
        {"op": "replace", "path": "", "value": 6}
    ]
    assert await a.backend.get_record("n") == (6, 2)


async def test_merge_and_deep_merge(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", {"a": 1, "n": {"x": 1, "y": 1}, "arr": [1, 2]})

    merged = await b.backend.write_record("rec", {"b": 2, "n": {"x": 5}}, "merge")
    assert merged.value == {"a": 1, "b": 2, "n": {"x": 5}, "arr": [1, 2]}
    assert merged.version == 2

    deep = await a.backend.write_record("rec", {"n": {"y": 7, "z": None}, "arr": [9]}, "deepMerge")
    assert deep.value == {"a": 1, "b": 2, "n": {"x": 5, "y": 7, "z": None}, "arr": [9]}
    assert deep.version == 3
    assert await b.backend.get_record("rec") == (deep.value, 3)

    replaced = await a.backend.write_record("rec", [1], "merge")
    assert replaced.value == [1], "merge of a non-object replaces"


async def test_merge_onto_absent_record(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    result = await a.backend.write_record("rec", {"k": 1}, "deepMerge")
    assert (result.value, result.version) == ({"k": 1}, 1)


async def test_unchanged_write_stores_and_publishes_nothing(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", {"a": 1, "b": {"c": [1, 2]}})

    same = await a.backend.write_record("rec", {"b": {"c": [1, 2]}, "a": 1})
    merged_same = await b.backend.write_record("rec", {"a": 1}, "merge")
    deep_same = await b.backend.write_record("rec", {"b": {"c": [1, 2]}}, "deepMerge")

    for result in (same, merged_same, deep_same):
        assert result.changed is False
        assert result.version == 1
        assert result.value == {"a": 1, "b": {"c": [1, 2]}}
        assert result.patch == []
    events = await b.recorder.drain_json(a.backend, channel)
    assert [e["version"] for e in events] == [1]
    assert await a.backend.get_record("rec") == ({"a": 1, "b": {"c": [1, 2]}}, 1)


async def test_null_to_absent_record_is_unchanged(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    result = await a.backend.write_record("rec", None)
    assert result == RecordWrite(changed=False, version=0, value=None)
    assert await b.recorder.drain(a.backend, channel) == []
    assert await a.backend.get_record("rec") == (None, 0)


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        (1, True, True),
        (True, 1, True),
        (0, False, True),
        ({"a": 1}, {"a": True}, True),
        ([0], [False], True),
        (1, 1.0, False),
        ({"a": 2.0}, {"a": 2}, False),
        (True, True, False),
        ("1", 1, True),
        (None, 0, True),
    ],
)
async def test_json_equality_decides_changes(
    cluster: Cluster, old: Any, new: Any, changed: bool
) -> None:
    (a,) = await cluster.start(1)
    await a.backend.write_record("rec", {"wrap": old})
    result = await a.backend.write_record("rec", {"wrap": new})
    assert result.changed is changed
    assert result.version == (2 if changed else 1)
    value, version = await a.backend.get_record("rec")
    assert version == result.version
    if changed:
        assert type(value["wrap"]) is type(new)


async def test_concurrent_writes_get_contiguous_versions(cluster: Cluster) -> None:
    a, b, watcher = await cluster.start(3)
    channel = await watch(watcher, "counter")

    async def write(node: Node, i: int) -> RecordWrite:
        return await node.backend.write_record(
            "counter", {"last": i, "seen": {f"k{i}": i}}, "deepMerge"
        )

    results = await asyncio.gather(*(write(a if i % 2 else b, i) for i in range(200)))

    assert sorted(r.version for r in results) == list(range(1, 201))
    assert all(r.changed for r in results)
    events = [await watcher.recorder.next_json(channel) for _ in range(200)]
    assert [e["version"] for e in events] == list(range(1, 201))
    value: Any = None
    for event in events:
        value = apply_patch(value, event["patch"])
        assert value == event["value"], "each patch applies to the previous value"
    assert value == {"last": value["last"], "seen": {f"k{i}": i for i in range(200)}}
    assert await a.backend.get_record("counter") == (value, 200)
    assert await watcher.recorder.drain(a.backend, channel) == []


async def test_size_limit(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", {"small": 1}, max_size=100)

    with pytest.raises(TooLargeError) as caught:
        await a.backend.write_record("rec", {"big": "x" * 200}, "merge", max_size=100)

    assert caught.value.details == {"limit": 100}
    assert caught.value.code == "ETOOLARGE"
    assert await a.backend.get_record("rec") == ({"small": 1}, 1)
    assert [e["version"] for e in await b.recorder.drain_json(a.backend, channel)] == [1]
    # The combined value counts, not the argument alone.
    await a.backend.write_record("rec", {"pad": "y" * 60}, max_size=100)
    with pytest.raises(TooLargeError):
        await a.backend.write_record("rec", {"more": "z" * 60}, "merge", max_size=100)
    assert (await a.backend.get_record("rec"))[1] == 2


async def test_validate_sees_the_combined_value_and_can_abort(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", {"a": 1})
    seen: list[Any] = []

    class Rejected(Exception):
        pass

    def reject(value: Any) -> None:
        seen.append(value)
        raise Rejected("no")

    with pytest.raises(Rejected):
        await a.backend.write_record("rec", {"b": 2}, "merge", validate=reject)

    assert seen == [{"a": 1, "b": 2}]
    assert await a.backend.get_record("rec") == ({"a": 1}, 1)
    assert [e["version"] for e in await b.recorder.drain_json(a.backend, channel)] == [1]

    accepted = await a.backend.write_record("rec", {"b": 2}, "merge", validate=seen.append)
    assert (accepted.version, seen[-1]) == (2, {"a": 1, "b": 2})


async def test_written_values_are_not_shared(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    value = {"list": [1]}
    result = await a.backend.write_record("rec", value)
    value["list"].append(2)
    result.value["list"].append(3)
    read, _ = await a.backend.get_record("rec")
    assert read == {"list": [1]}
    read["list"].append(4)
    assert await a.backend.get_record("rec") == ({"list": [1]}, 1)


async def test_delete_and_recreate(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", 1)
    await a.backend.write_record("rec", 2)

    assert await b.backend.delete_record("rec") == 2

    assert await a.backend.get_record("rec") == (None, 0)
    recreated = await a.backend.write_record("rec", {"fresh": True})
    assert (recreated.version, recreated.patch) == (
        1,
        [{"op": "replace", "path": "", "value": {"fresh": True}}],
    )
    events = await b.recorder.drain_json(a.backend, channel)
    assert [e["t"] for e in events] == ["update", "update", "deleted", "update"]
    assert events[2] == {"t": "deleted", "recordId": "rec", "version": 2}
    assert events[3]["version"] == 1


async def test_delete_absent_record(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    assert await a.backend.delete_record("rec") is None
    assert await b.recorder.drain(a.backend, channel) == []


async def test_records_are_independent(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.write_record("r1", "a")
    await a.backend.write_record("r1", "b")
    await a.backend.write_record("r2", "c")
    assert await a.backend.get_record("r1") == ("b", 2)
    assert await a.backend.get_record("r2") == ("c", 1)
    await a.backend.delete_record("r1")
    assert await a.backend.get_record("r2") == ("c", 1)
