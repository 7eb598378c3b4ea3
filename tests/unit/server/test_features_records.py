"""Record feature logic on the memory backend with a fake core (protocol.md §7, §11)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mesh_sdk.protocol.contract import ContractIndex, RecordSpec
from mesh_sdk.protocol.errors import ForbiddenError, TooLargeError, ValidationError
from mesh_sdk.protocol.patch import apply_patch
from mesh_server.backends.memory import MemoryBackend
from mesh_server.limits import Limits
from tests.unit.server.features_fakes import FakeCluster, FakeCore

SUB = "mesh/subscribe-record"
UNSUB = "mesh/unsubscribe-record"
WRITE = "mesh/publish-record-update"
UPDATE = "mesh/record-update"
DELETED = "mesh/record-deleted"


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    await cluster.close()


async def exposed(cluster: FakeCluster, n: int = 1, **options: Any) -> list[FakeCore]:
    cores = await cluster.start(n, **options)
    for core in cores:
        core.features.records.expose(re.compile(r"test:.+"))
        core.features.records.expose_writable(re.compile(r"writable:.+"))
    return cores


async def test_read_and_write_exposure(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster)
    conn = await core.connect()
    assert await core.request(conn, SUB, {"recordId": "hidden:1"}) == {"success": False}
    assert await core.request(conn, SUB, {"recordId": "test:1"}) == {
        "success": True,
        "record": None,
        "version": 0,
    }
    # Writable ⇒ readable (§11.1).
    assert (await core.request(conn, SUB, {"recordId": "writable:1"}))["success"] is True
    with pytest.raises(ForbiddenError) as info:
        await core.request(conn, WRITE, {"recordId": "test:1", "newValue": {"hacked": True}})
    assert info.value.message == 'Record "test:1" is not writable by this connection.'
    assert await core.features.records.get("test:1") == (None, 0)
    assert await core.request(conn, WRITE, {"recordId": "writable:1", "newValue": 5}) == {
        "success": True
    }
    assert await core.features.records.get("writable:1") == (5, 1)


async def test_write_guard_denial_stores_nothing(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    core.features.records.expose(re.compile(r"doc:.+"))
    core.features.records.expose_writable(re.compile(r"doc:.+"), lambda c, r: r == "doc:ok")
    conn = await core.connect()
    with pytest.raises(ForbiddenError):
        await core.request(conn, WRITE, {"recordId": "doc:no", "newValue": 1})
    assert await core.features.records.get("doc:no") == (None, 0)
    await core.request(conn, WRITE, {"recordId": "doc:ok", "newValue": 1})
    assert await core.features.records.get("doc:ok") == (1, 1)


async def test_full_and_patch_subscribers_get_their_frames(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster)
    records = core.features.records
    await records.publish_update("test:rec1", {"name": "a", "n": 1})
    full, patch = await core.connect(), await core.connect()
    assert await core.request(full, SUB, {"recordId": "test:rec1"}) == {
        "success": True,
        "record": {"name": "a", "n": 1},
        "version": 1,
    }
    await core.request(patch, SUB, {"recordId": "test:rec1", "mode": "patch"})
    await records.publish_update("test:rec1", {"name": "b", "n": 1, "tags": ["x"]})
    assert await full.wait_pushes(UPDATE, 1) == [
        {"recordId": "test:rec1", "full": {"name": "b", "n": 1, "tags": ["x"]}, "version": 2}
    ]
    assert await patch.wait_pushes(UPDATE, 1) == [
        {
            "recordId": "test:rec1",
            "patch": [
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "add", "path": "/tags", "value": ["x"]},
            ],
            "version": 2,
        }
    ]


async def test_patch_subscriber_sees_every_version_and_converges(cluster: FakeCluster) -> None:
    one, two = await exposed(cluster, 2)
    watcher = await one.connect()
    response = await one.request(watcher, SUB, {"recordId": "writable:c", "mode": "patch"})
    local, version = response["record"], response["version"]
    writers = [await (one if i % 2 else two).connect() for i in range(10)]

    async def write(index: int) -> None:
        core = one if index % 2 else two
        conn = writers[index % 10]
        await core.request(
            conn,
            WRITE,
            {
                "recordId": "writable:c",
                "newValue": {f"w{index % 10}": {"count": index}},
                "options": {"strategy": "deepMerge"},
            },
        )

    await asyncio.gather(*(write(index) for index in range(40)))
    stored, final = await one.features.records.get("writable:c")
    pushes = await watcher.wait_pushes(UPDATE, final)
    assert [p["version"] for p in pushes] == list(range(1, final + 1))
    for push in pushes:
        assert push["version"] == version + 1
        local, version = apply_patch(local, push["patch"]), push["version"]
    assert local == stored
    assert final == 40


async def test_unchanged_write_succeeds_without_push(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"recordId": "writable:u"})
    assert await core.request(conn, WRITE, {"recordId": "writable:u", "newValue": None}) == {
        "success": True
    }
    await core.request(conn, WRITE, {"recordId": "writable:u", "newValue": {"a": 1}})
    await core.request(
        conn,
        WRITE,
        {"recordId": "writable:u", "newValue": {"a": 1}, "options": {"strategy": "merge"}},
    )
    await core.request(conn, WRITE, {"recordId": "writable:u", "newValue": {"a": True}})
    pushes = await conn.wait_pushes(UPDATE, 2)
    # A subscribed writer gets its own updates; True is not 1 (§11.3).
    assert [(p["version"], p["full"]) for p in pushes] == [(1, {"a": 1}), (2, {"a": True})]


async def test_resubscribe_replaces_mode(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster)
    conn = await core.connect()
    await core.request(conn, SUB, {"recordId": "test:m"})
    await core.request(conn, SUB, {"recordId": "test:m", "mode": "patch"})
    assert core.features.records.subscribers("test:m") == {conn.id: "patch"}
    assert core.features.quota.count(conn.id) == 1
    await core.features.records.publish_update("test:m", [1])
    (push,) = await conn.wait_pushes(UPDATE, 1)
    assert push == {
        "recordId": "test:m",
        "patch": [{"op": "replace", "path": "", "value": [1]}],
        "version": 1,
    }
    assert await core.request(conn, UNSUB, {"recordId": "test:m"}) is True
    assert await core.request(conn, UNSUB, {"recordId": "test:m"}) is False
    assert cluster.hub.publish("mesh:record:test:m", b"{}") == 0


async def test_deletion_push_ends_subscriptions_and_recreation_restarts(
    cluster: FakeCluster,
) -> None:
    (core,) = await exposed(cluster)
    records = core.features.records
    full, patch = await core.connect(), await core.connect()
    await core.request(full, SUB, {"recordId": "writable:doc1"})
    await core.request(patch, SUB, {"recordId": "writable:doc1", "mode": "patch"})
    await records.publish_update("writable:doc1", {"title": "hello", "items": [1]})
    await records.publish_update("writable:doc1", {"title": "hi"}, "merge")
    assert await records.delete("writable:doc1") == 2
    assert await records.delete("writable:doc1") is None
    for conn in (full, patch):
        assert await conn.wait_pushes(DELETED, 1) == [{"recordId": "writable:doc1", "version": 2}]
    assert records.subscribers("writable:doc1") == {}
    assert core.features.quota.count(full.id) == 0
    await records.publish_update("writable:doc1", {"new": True})
    assert await records.get("writable:doc1") == ({"new": True}, 1)
    await core.request(full, SUB, {"recordId": "writable:doc1"})
    await records.publish_update("writable:doc1", {"new": False})
    push = (await full.wait_pushes(UPDATE, 3))[-1]
    assert push["version"] == 2
    assert len(patch.pushes(UPDATE)) == 2  # its subscription ended with the deletion


async def test_size_limit_and_contract_validation(cluster: FakeCluster) -> None:
    class Counter(BaseModel):
        model_config = ConfigDict(extra="forbid")
        count: int

    spec = RecordSpec(
        "Counter", re.compile(r"writable:counter:.+"), "writable:counter:{id}", Counter
    )
    (core,) = await exposed(
        cluster,
        limits=Limits(max_record_size=32),
        contract=ContractIndex("app", record_specs=[spec]),
    )
    conn = await core.connect()
    with pytest.raises(TooLargeError) as info:
        await core.request(conn, WRITE, {"recordId": "writable:big", "newValue": "x" * 40})
    assert info.value.details == {"limit": 32}
    with pytest.raises(ValidationError) as bad:
        await core.request(
            conn, WRITE, {"recordId": "writable:counter:1", "newValue": {"count": "x"}}
        )
    assert bad.value.message == 'Invalid value for record "Counter"'
    assert [d["path"] for d in bad.value.details] == ["/count"]
    assert await core.features.records.get("writable:counter:1") == (None, 0)
    with pytest.raises(ValidationError):
        await core.features.records.publish_update("writable:counter:1", {"other": 1})
    await core.request(conn, WRITE, {"recordId": "writable:counter:1", "newValue": {"count": 1}})
    assert await core.features.records.get("writable:counter:1") == ({"count": 1}, 1)
    with pytest.raises(ValueError, match="strategy"):
        await core.features.records.publish_update("writable:x", 1, "bogus")  # type: ignore[arg-type]


class WriteDuringReadBackend(MemoryBackend):
    """Two writes land while a subscribe reads the record: one before the read, one after."""

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        await self.write_record(record_id, {"v": "before"})
        value = await super().get_record(record_id)
        await self.write_record(record_id, {"v": "after"})
        for _ in range(5):
            await asyncio.sleep(0)  # both events reach the feature while pending
        return value


async def test_subscribe_response_version_and_no_older_pushes(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster, backend_factory=WriteDuringReadBackend)
    conn = await core.connect()
    response = await core.request(conn, SUB, {"recordId": "test:race"})
    assert response == {"success": True, "record": {"v": "before"}, "version": 1}
    (push,) = await conn.wait_pushes(UPDATE, 1)
    assert push == {"recordId": "test:race", "full": {"v": "after"}, "version": 2}
    # §11.5: response first, then only versions above it.
    assert [("id" in frame) for frame in conn.frames] == [True, False]


async def test_disconnect_releases_record_subscriptions(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster, limits=Limits(max_subscriptions=1))
    conn = await core.connect()
    await core.request(conn, SUB, {"recordId": "test:d"})
    with pytest.raises(TooLargeError):
        await core.request(conn, SUB, {"recordId": "test:e"})
    await core.disconnect(conn)
    assert cluster.hub.publish("mesh:record:test:d", b"{}") == 0
    assert core.features.quota.count(conn.id) == 0


async def test_recovery_pushes_current_value_to_subscribers_behind(cluster: FakeCluster) -> None:
    (core,) = await exposed(cluster)
    records = core.features.records
    behind, current, gone = await core.connect(), await core.connect(), await core.connect()
    await records.publish_update("test:a", {"n": 1})
    await records.publish_update("test:b", 1)
    await core.request(behind, SUB, {"recordId": "test:a", "mode": "patch"})
    await core.request(current, SUB, {"recordId": "test:b"})
    await core.request(gone, SUB, {"recordId": "test:b", "mode": "patch"})
    # An outage: the instance misses an update of test:a and the deletion of test:b.
    await core.backend.unsubscribe("mesh:record:test:a")
    await core.backend.unsubscribe("mesh:record:test:b")
    await records.publish_update("test:a", {"n": 2})
    await records.delete("test:b")
    await core.features.records.on_backend_recovered()
    # Patch mode too gets the current value as `full` (§11.5).
    assert await behind.wait_pushes(UPDATE, 1) == [
        {"recordId": "test:a", "full": {"n": 2}, "version": 2}
    ]
    assert await current.wait_pushes(DELETED, 1) == [{"recordId": "test:b", "version": 1}]
    assert await gone.wait_pushes(DELETED, 1) == [{"recordId": "test:b", "version": 1}]
    assert records.subscribers("test:b") == {}
    await records.publish_update("test:a", {"n": 3})
    pushes = await behind.wait_pushes(UPDATE, 2)
    assert pushes[-1]["version"] == 3


async def test_recovery_never_tells_a_fenced_connection_its_record_was_deleted(
    cluster: FakeCluster,
) -> None:
    """Issue 8: a store lost with Redis is not a deletion.

    When Redis came back empty the server fences (closes) every connection before the resync;
    the resync must leave those subscriptions alone rather than end them with a deletion.
    """
    (core,) = await exposed(cluster)
    records = core.features.records
    fenced, fresh = await core.connect(), await core.connect()
    await records.publish_update("test:a", {"n": 1})
    await core.request(fenced, SUB, {"recordId": "test:a", "mode": "patch"})
    await records.publish_update("test:a", {"n": 2})
    assert (await fenced.wait_pushes(UPDATE, 1))[-1]["version"] == 2  # live, nothing held
    await core.backend.unsubscribe("mesh:record:test:a")
    await records.delete("test:a")  # what an empty restart looks like: version back to 0
    fenced.closed = True  # closed with 4002; its cleanup has not run yet
    await records.publish_update("test:a", {"n": 1})  # the store starts again at version 1
    await core.request(fresh, SUB, {"recordId": "test:a", "mode": "patch"})
    await records.on_backend_recovered()
    assert fenced.pushes(DELETED) == []
    assert set(records.subscribers("test:a")) == {fenced.id, fresh.id}
    await records.publish_update("test:a", {"n": 3})
    assert (await fresh.wait_pushes(UPDATE, 1))[-1]["version"] == 2
