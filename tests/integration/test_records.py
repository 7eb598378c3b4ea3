"""Records across instances over real sockets, on memory and Redis (protocol.md §7, §11)."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mesh_sdk.protocol.contract import ContractIndex, RecordSpec
from mesh_sdk.protocol.patch import apply_patch
from mesh_server import MeshServer
from tests.integration.features_cluster import ServerCluster, cluster, collect, pushes
from tests.support.raw_client import RawClient

__all__ = ["cluster"]

pytestmark = pytest.mark.integration

SUB = "mesh/subscribe-record"
UNSUB = "mesh/unsubscribe-record"
WRITE = "mesh/publish-record-update"
UPDATE = "mesh/record-update"
DELETED = "mesh/record-deleted"


def expose(*servers: MeshServer) -> None:
    for server in servers:
        server.expose_record(re.compile(r"test:.+"))
        server.expose_writable_record(re.compile(r"writable:.+"))


async def test_concurrent_writers_on_two_instances(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    async with AsyncExitStack() as stack:
        watcher = await stack.enter_async_context(RawClient.open(one.url))
        full = await stack.enter_async_context(RawClient.open(two.url))
        response = await watcher.call(SUB, {"recordId": "writable:counter", "mode": "patch"})
        assert response == {"success": True, "record": None, "version": 0}
        await full.call(SUB, {"recordId": "writable:counter"})
        writers = [
            await stack.enter_async_context(RawClient.open((one if i % 2 else two).url))
            for i in range(20)
        ]

        async def write_all(index: int, writer: RawClient) -> None:
            # Ten pipelined writes per connection (built-ins of a connection run in order).
            ids = [f"w{index}-{count}" for count in range(10)]
            for count, request_id in enumerate(ids):
                await writer.send(
                    {
                        "id": request_id,
                        "command": WRITE,
                        "payload": {
                            "recordId": "writable:counter",
                            "newValue": {f"w{index}": {"count": count}},
                            "options": {"strategy": "deepMerge" if index % 2 else "merge"},
                        },
                    }
                )
            for request_id in ids:
                assert (await writer.response(request_id))["payload"] == {"success": True}

        await asyncio.gather(*(write_all(index, w) for index, w in enumerate(writers)))
        stored, version = await two.get_record("writable:counter")
        assert version == 200  # every write changed the value: contiguous versions
        assert stored == {f"w{index}": {"count": 9} for index in range(20)}
        local: Any = None
        seen = []
        for push in await collect(watcher, UPDATE, 200):
            assert set(push) == {"recordId", "patch", "version"}
            local = apply_patch(local, push["patch"])
            seen.append(push["version"])
        assert seen == list(range(1, 201))
        assert local == stored
        full_pushes = await collect(full, UPDATE, 200)
        assert [p["version"] for p in full_pushes] == list(range(1, 201))
        assert full_pushes[-1]["full"] == stored


async def test_read_only_and_writable_guards(cluster: ServerCluster) -> None:
    (server,) = await cluster.start(1)
    server.expose_record(re.compile(r"doc:.+"))
    server.expose_writable_record(
        re.compile(r"doc:.+"), lambda connection, record_id: record_id == "doc:mine"
    )
    server.expose_writable_record("shared:1")
    async with RawClient.open(server.url) as client:
        assert (await client.call(SUB, {"recordId": "doc:other"}))["success"] is True
        assert (await client.call(SUB, {"recordId": "shared:1"}))["success"] is True
        assert await client.call(SUB, {"recordId": "hidden"}) == {"success": False}
        denied = await client.request(
            1, WRITE, {"recordId": "doc:other", "newValue": {"hacked": True}}
        )
        assert denied["error"] == {
            "error": 'Record "doc:other" is not writable by this connection.',
            "code": "EFORBIDDEN",
            "name": "ForbiddenError",
        }
        assert await server.get_record("doc:other") == (None, 0)
        assert await client.call(WRITE, {"recordId": "doc:mine", "newValue": 1}) == {
            "success": True
        }
        assert await client.call(WRITE, {"recordId": "shared:1", "newValue": [1]}) == {
            "success": True
        }
        assert await server.get_record("shared:1") == ([1], 1)
        assert await client.call(UNSUB, {"recordId": "doc:other"}) is True
        assert await client.call(UNSUB, {"recordId": "doc:other"}) is False
        bad_mode = await client.call(SUB, {"recordId": "doc:x", "mode": "diff"})
        assert bad_mode["code"] == "EVALIDATION"


async def test_contract_validates_record_writes(cluster: ServerCluster) -> None:
    class Profile(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        age: int

    spec = RecordSpec(
        "Profile", re.compile(r"writable:profile:.+"), "writable:profile:{id}", Profile
    )
    (server,) = await cluster.start(1, contract=ContractIndex("app", record_specs=[spec]))
    expose(server)
    async with RawClient.open(server.url) as client:
        response = await client.request(
            1, WRITE, {"recordId": "writable:profile:1", "newValue": {"name": "a", "age": "x"}}
        )
        assert response["error"]["code"] == "EVALIDATION"
        # The pointer points into the record value, not into the request wrapper.
        assert response["error"]["details"] == [
            {"path": "/age", "message": "Input should be a valid integer"}
        ]
        assert await server.get_record("writable:profile:1") == (None, 0)
        ok = {"recordId": "writable:profile:1", "newValue": {"name": "a", "age": 3}}
        assert await client.call(WRITE, ok) == {"success": True}
        merged = await client.request(
            2,
            WRITE,
            {
                "recordId": "writable:profile:1",
                "newValue": {"extra": 1},
                "options": {"strategy": "merge"},
            },
        )
        assert merged["error"]["code"] == "EVALIDATION"  # the combined value is validated
        assert await server.get_record("writable:profile:1") == ({"name": "a", "age": 3}, 1)
        big = await client.call(WRITE, {"recordId": "writable:free", "newValue": "x" * 100})
        assert big == {"success": True}


async def test_deletion_push_and_recreation(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    async with RawClient.open(one.url) as a, RawClient.open(two.url) as e:
        await a.call(SUB, {"recordId": "writable:doc1", "mode": "patch"})
        await e.call(SUB, {"recordId": "writable:doc1"})
        await a.call(
            WRITE, {"recordId": "writable:doc1", "newValue": {"title": "hello", "items": [1]}}
        )
        await a.call(
            WRITE,
            {
                "recordId": "writable:doc1",
                "newValue": {"title": "hi"},
                "options": {"strategy": "merge"},
            },
        )
        await two.delete_record("writable:doc1")
        patches = await collect(a, UPDATE, 2)
        assert patches == [
            {
                "recordId": "writable:doc1",
                "patch": [{"op": "replace", "path": "", "value": {"title": "hello", "items": [1]}}],
                "version": 1,
            },
            {
                "recordId": "writable:doc1",
                "patch": [{"op": "replace", "path": "/title", "value": "hi"}],
                "version": 2,
            },
        ]
        for client in (a, e):
            assert await collect(client, DELETED, 1) == [
                {"recordId": "writable:doc1", "version": 2}
            ]
        await one.publish_record_update("writable:doc1", {"again": True})
        assert await one.get_record("writable:doc1") == ({"again": True}, 1)
        # The subscriptions ended with the deletion: nothing more arrives.
        await e.call(SUB, {"recordId": "writable:doc1"})
        await one.publish_record_update("writable:doc1", {"again": False})
        got = await collect(e, UPDATE, 3)
        assert got[-1] == {"recordId": "writable:doc1", "full": {"again": False}, "version": 2}
        assert len(pushes(a, UPDATE)) == 2


async def test_a_conditional_write_at_another_version_is_an_econflict_error(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    expose(one, two)
    async with RawClient.open(one.url) as a, RawClient.open(two.url) as b:
        await b.call(SUB, {"recordId": "writable:cas"})
        create = {"recordId": "writable:cas", "newValue": {"n": 1}, "expectedVersion": 0}
        assert await a.call(WRITE, create) == {"success": True}

        refused = await a.request(7, WRITE, {**create, "newValue": {"n": 2}})

        error = {
            "error": 'Record "writable:cas" is at version 1, not 0.',
            "code": "ECONFLICT",
            "name": "ConflictError",
        }
        # protocol.md §4: the error object as payload (for JavaScript clients) and top-level
        # `error` with the details.
        assert refused == {
            "id": 7,
            "command": WRITE,
            "payload": error,
            "error": {**error, "details": {"expected": 0, "actual": 1}},
        }
        assert await two.get_record("writable:cas") == ({"n": 1}, 1)
        assert [p["version"] for p in await collect(b, UPDATE, 1)] == [1]
        await one.publish_record_update("writable:cas", {"n": 3}, expected_version=1)
        assert [p["full"] for p in await collect(b, UPDATE, 2)] == [{"n": 1}, {"n": 3}]
