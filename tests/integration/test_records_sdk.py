"""Records through the Python SDK's MeshClient, on memory and Redis (protocol.md §11.5, §14)."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest

from mesh_sdk.client import MeshClient
from mesh_sdk.protocol.errors import ConflictError
from mesh_server import MeshServer
from tests.integration.features_cluster import ServerCluster, cluster
from tests.support.timing import eventually

__all__ = ["cluster"]

pytestmark = pytest.mark.integration

MOVES = 50
"""Concurrent moves per instance in the two-instance proofs."""
CLIENTS = 6
"""SDK clients, alternating between the two instances."""


async def test_patch_subscription_converges_without_resync(cluster: ServerCluster) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.expose_writable_record(re.compile(r"doc:.+"))
    versions: list[int] = []
    resyncs = 0
    async with (
        MeshClient(one.url) as reader,
        MeshClient(one.url) as w1,
        MeshClient(two.url) as w2,
    ):
        record = await reader.subscribe_record("doc:sdk", mode="patch")

        def changed(change: Any) -> None:
            nonlocal resyncs
            versions.append(record.version)
            resyncs += int(record.resyncing)

        record.on_change(changed)

        async def write(client: MeshClient, name: str) -> None:
            for count in range(25):
                await client.publish_record_update(
                    "doc:sdk", {name: {"count": count}}, strategy="deepMerge"
                )

        await asyncio.gather(write(w1, "a"), write(w2, "b"))
        stored, version = await two.get_record("doc:sdk")
        assert version == 50

        await eventually(lambda: record.version >= version)
        assert record.raw == stored
        # The held state (absent, v0) first, then every version once, in order: no gap.
        assert versions == list(range(51))
        assert resyncs == 0


async def test_moves_through_update_record_on_two_instances_apply_exactly_once(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.expose_record(re.compile(r"game:.+"))
    async with MeshClient(one.url) as a, MeshClient(two.url) as b:
        watchers = [
            await a.subscribe_record("game:1", mode="patch"),
            await b.subscribe_record("game:1"),
        ]
        seen: list[list[int]] = [[], []]
        for index, watcher in enumerate(watchers):
            watcher.on_change(lambda change, index=index: seen[index].append(change.version))

        async def play(server: MeshServer, move: int) -> tuple[Any, int]:
            async def apply(game: Any) -> Any:
                game = game or {"moves": []}
                await asyncio.sleep(0)  # lets other moves interleave between read and commit
                game["moves"].append(move)
                return game

            return await server.update_record("game:1", apply)

        results = await asyncio.gather(
            *(play(one if move % 2 else two, move) for move in range(2 * MOVES))
        )

        value, version = await one.get_record("game:1")
        assert version == 2 * MOVES
        assert sorted(value["moves"]) == list(range(2 * MOVES))  # each move exactly once
        assert sorted(v for _, v in results) == list(range(1, 2 * MOVES + 1))
        for committed, at in results:
            assert committed["moves"] == value["moves"][:at]
        for watcher, versions in zip(watchers, seen, strict=True):
            await eventually(lambda watcher=watcher: watcher.version == version)
            assert watcher.raw == value
            # The held state (v0) first, then every version once, in order.
            assert versions == list(range(2 * MOVES + 1))


async def test_compare_and_set_from_clients_has_one_winner_per_version(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.expose_writable_record(re.compile(r"game:.+"))
    await one.publish_record_update("game:2", {"moves": []})
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(MeshClient((one if i % 2 else two).url))
            for i in range(CLIENTS)
        ]

        async def move(index: int) -> bool | ConflictError:
            client = clients[index % CLIENTS]
            try:
                return await client.publish_record_update(
                    "game:2", {"moves": [index]}, expected_version=1
                )
            except ConflictError as exc:
                return exc

        outcomes = await asyncio.gather(*(move(index) for index in range(2 * MOVES)))

        winners = [i for i, outcome in enumerate(outcomes) if outcome is True]
        losers = [outcome for outcome in outcomes if isinstance(outcome, ConflictError)]
        assert len(winners) == 1
        assert len(losers) == 2 * MOVES - 1
        assert all((loser.expected, loser.actual) == (1, 2) for loser in losers)
        assert await two.get_record("game:2") == ({"moves": winners}, 2)


async def test_clients_retry_compare_and_set_from_the_version_they_hold(
    cluster: ServerCluster,
) -> None:
    one, two = await cluster.start(2)
    for server in (one, two):
        server.expose_writable_record(re.compile(r"game:.+"))
    moves_each = 5
    conflicts = 0
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(MeshClient((one if i % 2 else two).url))
            for i in range(CLIENTS)
        ]

        records = [await client.subscribe_record("game:3") for client in clients]

        async def play(index: int) -> None:
            nonlocal conflicts
            record = records[index]
            for count in range(moves_each):
                while True:
                    moves = [*(record.raw or {"moves": []})["moves"], f"{index}.{count}"]
                    try:
                        await record.update({"moves": moves}, expected_version=record.version)
                        break
                    except ConflictError as exc:
                        conflicts += 1
                        conflict = exc
                    # Retry from the newer version, once this subscription holds it.
                    actual = conflict.actual or 0
                    await eventually(lambda actual=actual: record.version >= actual)

        await asyncio.gather(*(play(index) for index in range(CLIENTS)))

    value, version = await one.get_record("game:3")
    assert version == CLIENTS * moves_each
    expected = {f"{index}.{count}" for index in range(CLIENTS) for count in range(moves_each)}
    assert sorted(value["moves"]) == sorted(expected)  # none lost, none twice
    # All first moves expected version 0 at once: one won, the others had to retry.
    assert conflicts >= CLIENTS - 1
