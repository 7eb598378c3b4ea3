"""Conditional record writes, read-modify-write updates, value guards (protocol.md §11.1, §11.3)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from mesh_sdk.protocol.contract import ContractIndex, RecordSpec
from mesh_sdk.protocol.errors import (
    ConflictError,
    ForbiddenError,
    TooLargeError,
    ValidationError,
)
from mesh_server.exposure import READ_ACCESS
from mesh_server.limits import Limits
from tests.unit.server.features_fakes import FakeCluster, FakeConnection, FakeCore

SUB = "mesh/subscribe-record"
WRITE = "mesh/publish-record-update"
UPDATE = "mesh/record-update"


class Counter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int


COUNTERS = RecordSpec("Counter", re.compile(r"counter:.+"), "counter:{id}", Counter)


@pytest.fixture
async def cluster() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster()
    yield cluster
    await cluster.close()


async def writable(cluster: FakeCluster, **options: Any) -> FakeCore:
    (core,) = await cluster.start(1, **options)
    core.features.records.expose_writable(re.compile(r".+"))
    return core


# ------------------------------------------------------------------ expectedVersion on the wire


async def test_expected_version_commits_only_at_that_version(cluster: FakeCluster) -> None:
    core = await writable(cluster)
    conn = await core.connect()
    create = {"recordId": "doc", "newValue": {"n": 1}, "expectedVersion": 0}
    assert await core.request(conn, WRITE, create) == {"success": True}

    with pytest.raises(ConflictError) as caught:
        await core.request(conn, WRITE, {**create, "newValue": {"n": 2}})

    assert caught.value.to_wire() == {
        "error": 'Record "doc" is at version 1, not 0.',
        "code": "ECONFLICT",
        "name": "ConflictError",
        "details": {"expected": 0, "actual": 1},
    }
    assert conn.frames[-1]["payload"]["code"] == "ECONFLICT"
    assert await core.features.records.get("doc") == ({"n": 1}, 1)
    merge = {"recordId": "doc", "newValue": {"m": 1}, "options": {"strategy": "merge"}}
    assert await core.request(conn, WRITE, {**merge, "expectedVersion": 1}) == {"success": True}
    assert await core.features.records.get("doc") == ({"n": 1, "m": 1}, 2)


async def test_absent_or_null_expected_version_writes_unconditionally(
    cluster: FakeCluster,
) -> None:
    core = await writable(cluster)
    conn = await core.connect()
    await core.features.records.publish_update("doc", 1)
    assert await core.request(conn, WRITE, {"recordId": "doc", "newValue": 2}) == {"success": True}
    assert await core.request(
        conn, WRITE, {"recordId": "doc", "newValue": 3, "expectedVersion": None}
    ) == {"success": True}
    assert await core.features.records.get("doc") == (3, 3)


@pytest.mark.parametrize("bad", [-1, 1.5, "1", True, [1]])
async def test_a_bad_expected_version_is_a_validation_error(cluster: FakeCluster, bad: Any) -> None:
    core = await writable(cluster)
    conn = await core.connect()
    with pytest.raises(ValidationError) as caught:
        await core.request(conn, WRITE, {"recordId": "doc", "newValue": 1, "expectedVersion": bad})
    assert [problem["path"] for problem in caught.value.details] == ["/expectedVersion"]
    assert await core.features.records.get("doc") == (None, 0)


# ------------------------------------------------------------------ server API


async def test_server_writes_with_expected_version(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    records = core.features.records
    await records.publish_update("doc", "a", expected_version=0)
    with pytest.raises(ConflictError) as caught:
        await records.publish_update("doc", "b", expected_version=0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert (await records.publish_update("doc", "b", expected_version=1)).version == 2
    for bad in (-1, True, 1.0):
        with pytest.raises(ValueError, match="expected_version"):
            await records.publish_update("doc", "c", expected_version=bad)  # type: ignore[arg-type]
    assert await records.get("doc") == ("b", 2)


async def test_server_writes_accept_models(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1, contract=ContractIndex("app", record_specs=[COUNTERS]))
    records = core.features.records
    written = await records.publish_update("counter:1", Counter(count=3), expected_version=0)
    assert (written.value, written.version) == ({"count": 3}, 1)
    assert await records.get("counter:1") == ({"count": 3}, 1)


async def test_update_stores_models_and_pushes_to_subscribers(cluster: FakeCluster) -> None:
    core = await writable(cluster, contract=ContractIndex("app", record_specs=[COUNTERS]))
    records = core.features.records
    watcher = await core.connect()
    await core.request(watcher, SUB, {"recordId": "counter:1"})

    async def increment(current: Any) -> Counter:
        return Counter(count=(current or {"count": 0})["count"] + 1)

    first = await records.update("counter:1", increment)
    second = await records.update("counter:1", lambda current: {"count": current["count"] + 1})

    assert (first.value, first.version) == ({"count": 1}, 1)
    assert (second.value, second.version) == ({"count": 2}, 2)
    pushes = await watcher.wait_pushes(UPDATE, 2)
    assert [(p["version"], p["full"]) for p in pushes] == [(1, {"count": 1}), (2, {"count": 2})]


async def test_update_results_are_validated_and_size_checked(cluster: FakeCluster) -> None:
    core = await writable(
        cluster,
        limits=Limits(max_record_size=32),
        contract=ContractIndex("app", record_specs=[COUNTERS]),
    )
    records = core.features.records
    with pytest.raises(ValidationError):
        await records.update("counter:1", lambda current: {"count": "many"})
    with pytest.raises(TooLargeError) as caught:
        await records.update("other", lambda current: "x" * 40)
    assert caught.value.details == {"limit": 32}
    assert await records.get("counter:1") == (None, 0)
    assert await records.get("other") == (None, 0)


async def test_an_aborting_update_function_propagates_its_exception(
    cluster: FakeCluster,
) -> None:
    (core,) = await cluster.start(1)
    records = core.features.records
    await records.publish_update("game", {"cells": {"4": "x"}})

    def play(game: Any) -> Any:
        if "4" in game["cells"]:
            raise ForbiddenError("cell 4 is taken")
        return game

    with pytest.raises(ForbiddenError, match="cell 4 is taken"):
        await records.update("game", play)
    assert await records.get("game") == ({"cells": {"4": "x"}}, 1)


# ------------------------------------------------------------------ write guards with the value


async def test_write_guards_may_see_the_written_value(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    asked: list[Any] = []

    def own_edits_only(connection: FakeConnection, record_id: str, value: Any) -> bool:
        asked.append(value)
        if value is READ_ACCESS:
            return True
        return isinstance(value, dict) and value.get("editedBy") == connection.id

    core.features.records.expose_writable(re.compile(r"doc:.+"), own_edits_only)
    conn = await core.connect()

    assert (await core.request(conn, SUB, {"recordId": "doc:1"}))["success"] is True
    with pytest.raises(ForbiddenError):
        await core.request(conn, WRITE, {"recordId": "doc:1", "newValue": {"editedBy": "bob"}})
    mine = {"editedBy": conn.id, "text": "hi"}
    assert await core.request(conn, WRITE, {"recordId": "doc:1", "newValue": mine}) == {
        "success": True
    }
    assert asked == [READ_ACCESS, {"editedBy": "bob"}, mine]
    assert await core.features.records.get("doc:1") == (mine, 1)


async def test_async_value_guards_and_partial_merge_values(cluster: FakeCluster) -> None:
    (core,) = await cluster.start(1)
    asked: list[Any] = []

    async def no_owner_change(connection: FakeConnection, record_id: str, value: Any) -> bool:
        asked.append(value)
        return value is READ_ACCESS or "owner" not in value

    core.features.records.expose_writable("doc", no_owner_change)
    await core.features.records.publish_update("doc", {"owner": "alice", "text": ""})
    conn = await core.connect()
    merge = {"recordId": "doc", "options": {"strategy": "merge"}}

    assert await core.request(conn, WRITE, {**merge, "newValue": {"text": "hi"}}) == {
        "success": True
    }
    with pytest.raises(ForbiddenError):
        await core.request(conn, WRITE, {**merge, "newValue": {"owner": "mallory"}})
    # The guard sees the value as sent (the partial one), not the combined value.
    assert asked == [{"text": "hi"}, {"owner": "mallory"}]
    assert await core.features.records.get("doc") == ({"owner": "alice", "text": "hi"}, 2)
