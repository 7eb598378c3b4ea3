"""Record writes on Redis: per-instance serialisation, the state cache, conflict costs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh_sdk.protocol.codec import loads
from mesh_sdk.protocol.errors import TooLargeError
from mesh_server.backends.messages import record_channel
from tests.unit.backends.redis.conftest import NS, StartBackend
from tests.unit.backends.redis.test_backend import commandstats, delta

pytestmark = pytest.mark.redis

COMMIT = {"evalsha": 1, "hmget": 1, "hset": 1, "publish": 1}
"""One commit script call: EVALSHA and the HMGET, HSET and PUBLISH it runs."""


async def test_writes_of_one_instance_never_conflict(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, inbox = await start_backend()
    channel = record_channel(NS, "r")
    await backend.subscribe(channel)
    await backend.write_record("r", {"w": -1})
    await inbox.next(channel)
    before = await commandstats(plain_redis)

    results = await asyncio.gather(
        *(backend.write_record("r", {f"w{i}": i}, "merge") for i in range(16))
    )

    assert sorted(r.version for r in results) == list(range(2, 18))
    assert delta(before, await commandstats(plain_redis)) == {
        name: 16 * calls for name, calls in COMMIT.items()
    }
    versions = [loads(await inbox.next(channel))["version"] for _ in range(16)]
    assert versions == list(range(2, 18))


async def test_a_conflict_costs_one_more_command_and_no_read(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    (a, _), (b, _) = await start_backend(), await start_backend()
    await a.write_record("r", {"a": 1})
    await b.write_record("r", {"b": 2}, "merge")
    before = await commandstats(plain_redis)

    write = await a.write_record("r", {"c": 3}, "merge")

    assert (write.version, write.value) == (3, {"a": 1, "b": 2, "c": 3})
    # The failed commit (EVALSHA + HMGET) returned the current state; the retry committed.
    assert delta(before, await commandstats(plain_redis)) == {
        "evalsha": 2,
        "hmget": 2,
        "hset": 1,
        "publish": 1,
    }


async def test_a_record_recreated_elsewhere_is_not_taken_for_the_cached_one(
    start_backend: StartBackend,
) -> None:
    (a, _), (b, _) = await start_backend(), await start_backend()
    await a.write_record("r", {"old": 1})
    assert await b.delete_record("r") == 1
    await b.write_record("r", {"new": 1})  # version 1 again, another incarnation

    write = await a.write_record("r", {"more": 1}, "merge")

    assert (write.version, write.value) == (2, {"new": 1, "more": 1})
    assert write.patch == [{"op": "add", "path": "/more", "value": 1}]
    assert await b.get_record("r") == ({"new": 1, "more": 1}, 2)


async def test_a_received_newer_version_drops_the_cached_state(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    (a, inbox), (b, _) = await start_backend(), await start_backend()
    channel = record_channel(NS, "r")
    await a.subscribe(channel)
    await a.write_record("r", 1)
    await b.write_record("r", 2)
    assert [loads(await inbox.next(channel))["version"] for _ in range(2)] == [1, 2]
    before = await commandstats(plain_redis)

    write = await a.write_record("r", 3)

    assert write.version == 3
    # A fresh read instead of a commit that was bound to fail.
    assert delta(before, await commandstats(plain_redis)) == {**COMMIT, "hmget": 2}


async def test_unchanged_against_a_stale_cache_rereads(start_backend: StartBackend) -> None:
    (a, _), (b, _) = await start_backend(), await start_backend()
    await a.write_record("r", "x")
    await b.write_record("r", "y")

    write = await a.write_record("r", "x")

    assert (write.changed, write.version, write.value) == (True, 3, "x")
    assert await b.get_record("r") == ("x", 3)


async def test_too_large_against_a_stale_cache_rereads(start_backend: StartBackend) -> None:
    (a, _), (b, _) = await start_backend(), await start_backend()
    await a.write_record("r", {"pad": "x" * 50})
    await b.write_record("r", {"small": 1})

    write = await a.write_record("r", {"more": 1}, "merge", max_size=60)

    assert write.value == {"small": 1, "more": 1}
    with pytest.raises(TooLargeError):
        await a.write_record("r", {"pad": "x" * 50}, "merge", max_size=60)
    assert await b.get_record("r") == ({"small": 1, "more": 1}, 3)


async def test_without_a_cache_every_write_reads_first(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend(record_cache_entries=0)
    await backend.write_record("r", 1)
    before = await commandstats(plain_redis)
    await backend.write_record("r", 2)
    assert delta(before, await commandstats(plain_redis)) == {**COMMIT, "hmget": 2}


async def test_two_instances_writing_one_record_all_succeed(start_backend: StartBackend) -> None:
    nodes = [(await start_backend())[0] for _ in range(2)]

    async def write(i: int) -> int:
        return (await nodes[i % 2].write_record("r", {f"k{i}": i}, "merge")).version

    versions = await asyncio.gather(*(write(i) for i in range(100)))

    assert sorted(versions) == list(range(1, 101))
    assert await nodes[0].get_record("r") == ({f"k{i}": i for i in range(100)}, 100)
