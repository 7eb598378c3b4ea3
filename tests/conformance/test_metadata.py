"""Connection metadata and room metadata (protocol.md §12)."""

from __future__ import annotations

from tests.conformance.conftest import Cluster


async def test_initial_metadata_is_visible_from_every_instance(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-1", {"userId": "u1", "roles": ["admin"]})
    await a.backend.register_connection("conn-2")
    for node in (a, b):
        assert await node.backend.get_connection_metadata("conn-1") == {
            "userId": "u1",
            "roles": ["admin"],
        }
        assert await node.backend.get_connection_metadata("conn-2") is None
        assert await node.backend.get_connection_metadata("conn-unknown") is None


async def test_set_replace_merge_and_deep_merge(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-1", {"a": 1, "nested": {"x": 1, "y": 2}})

    stored = await b.backend.set_connection_metadata(
        "conn-1", {"b": 2, "nested": {"x": 9}}, "merge"
    )
    assert stored == {"a": 1, "b": 2, "nested": {"x": 9}}
    assert await a.backend.get_connection_metadata("conn-1") == stored

    stored = await a.backend.set_connection_metadata(
        "conn-1", {"nested": {"y": 3, "z": None}, "list": [1]}, "deepMerge"
    )
    assert stored == {"a": 1, "b": 2, "nested": {"x": 9, "y": 3, "z": None}, "list": [1]}

    stored = await a.backend.set_connection_metadata("conn-1", {"only": True})
    assert stored == {"only": True}
    assert await b.backend.get_connection_metadata("conn-1") == {"only": True}

    stored = await a.backend.set_connection_metadata("conn-1", "text", "merge")
    assert stored == "text"
    assert await b.backend.get_connection_metadata("conn-1") == "text"


async def test_merge_onto_no_metadata(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.register_connection("conn-1")
    assert await a.backend.set_connection_metadata("conn-1", {"k": 1}, "merge") == {"k": 1}
    assert await a.backend.set_connection_metadata("conn-1", {"d": {"e": 1}}, "deepMerge") == {
        "k": 1,
        "d": {"e": 1},
    }


async def test_metadata_is_not_shared_mutable_state(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    value = {"list": [1, 2]}
    await a.backend.register_connection("conn-1", value)
    value["list"].append(3)
    read = await a.backend.get_connection_metadata("conn-1")
    assert read == {"list": [1, 2]}
    read["list"].append(4)
    assert await a.backend.get_connection_metadata("conn-1") == {"list": [1, 2]}
    returned = await a.backend.set_connection_metadata("conn-1", {"k": {"v": 1}})
    returned["k"]["v"] = 2
    assert await a.backend.get_connection_metadata("conn-1") == {"k": {"v": 1}}


async def test_get_all_connection_metadata(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.register_connection("conn-1", {"n": 1})
    await b.backend.register_connection("conn-2", [2])
    await b.backend.register_connection("conn-3")

    expected = {"conn-1": {"n": 1}, "conn-2": [2], "conn-3": None}
    assert await a.backend.get_all_connection_metadata() == expected
    assert await b.backend.get_all_connection_metadata(None) == expected
    assert await a.backend.get_all_connection_metadata(["conn-2", "conn-unknown"]) == {
        "conn-2": [2],
        "conn-unknown": None,
    }
    assert await a.backend.get_all_connection_metadata([]) == {}


async def test_room_metadata_set_update_get(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    assert await a.backend.get_room_metadata("lobby") is None

    assert await a.backend.set_room_metadata("lobby", {"topic": "hi", "n": 1}) == {
        "topic": "hi",
        "n": 1,
    }
    assert await b.backend.get_room_metadata("lobby") == {"topic": "hi", "n": 1}

    stored = await b.backend.set_room_metadata("lobby", {"n": 2, "deep": {"a": 1}}, "merge")
    assert stored == {"topic": "hi", "n": 2, "deep": {"a": 1}}
    stored = await b.backend.set_room_metadata("lobby", {"deep": {"b": 1}}, "merge")
    assert stored == {"topic": "hi", "n": 2, "deep": {"b": 1}}, "update is shallow"

    assert await a.backend.set_room_metadata("lobby", [1, 2], "merge") == [1, 2]
    assert await a.backend.set_room_metadata("lobby", {"fresh": True}) == {"fresh": True}
    assert await b.backend.get_room_metadata("lobby") == {"fresh": True}


async def test_room_metadata_survives_an_empty_room(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.register_connection("conn-1")
    await a.backend.join_room("lobby", "conn-1", None)
    await a.backend.set_room_metadata("lobby", {"k": 1})
    await a.backend.leave_room("lobby", "conn-1")
    assert await a.backend.room_members("lobby") == []
    assert await a.backend.get_room_metadata("lobby") == {"k": 1}


async def test_get_all_room_metadata(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    assert await a.backend.get_all_room_metadata() == {}
    await a.backend.set_room_metadata("r1", {"x": 1})
    await b.backend.set_room_metadata("r2", "two")
    assert await a.backend.get_all_room_metadata() == {"r1": {"x": 1}, "r2": "two"}
    assert await b.backend.get_all_room_metadata() == {"r1": {"x": 1}, "r2": "two"}
