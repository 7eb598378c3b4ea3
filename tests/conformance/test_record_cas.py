"""Records: compare-and-set writes and atomic read-modify-write updates (protocol.md §11.3)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from mesh_sdk.protocol.errors import ConflictError, TooLargeError
from mesh_server.backends.base import RecordWrite
from tests.conformance.conftest import Cluster, Node
from tests.conformance.test_records import watch

MOVES = 50
"""Concurrent moves per instance in the two-instance proofs."""


class Aborted(Exception):
    """Raised by update functions to abort."""


# ------------------------------------------------------------------ compare-and-set writes


async def test_expected_version_writes_only_at_that_version(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")

    created = await a.backend.write_record("rec", {"n": 1}, expected_version=0)
    assert (created.changed, created.version) == (True, 1)
    with pytest.raises(ConflictError) as caught:
        await b.backend.write_record("rec", {"n": 2}, expected_version=0)
    assert caught.value.code == "ECONFLICT"
    assert caught.value.details == {"expected": 0, "actual": 1}
    assert (caught.value.expected, caught.value.actual) == (0, 1)

    merged = await b.backend.write_record("rec", {"m": 1}, "merge", expected_version=1)
    assert (merged.version, merged.value) == (2, {"n": 1, "m": 1})
    with pytest.raises(ConflictError) as late:
        await a.backend.write_record("rec", {"n": 3}, expected_version=1)
    assert late.value.details == {"expected": 1, "actual": 2}

    assert await a.backend.get_record("rec") == ({"n": 1, "m": 1}, 2)
    events = await b.recorder.drain_json(a.backend, channel)
    assert [e["version"] for e in events] == [1, 2]  # refused writes publish nothing


async def test_the_version_is_checked_against_the_store_not_a_cached_state(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", 1)  # a knows version 1
    await b.backend.write_record("rec", 2)
    await b.backend.write_record("rec", 3)

    with pytest.raises(ConflictError) as caught:
        await a.backend.write_record("rec", 4, expected_version=1)
    assert caught.value.details == {"expected": 1, "actual": 3}
    written = await a.backend.write_record("rec", 4, expected_version=3)
    assert (written.version, written.value) == (4, 4)


async def test_an_unchanged_value_at_the_expected_version_succeeds(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", {"k": 1})

    same = await b.backend.write_record("rec", {"k": 1}, expected_version=1)

    assert same == RecordWrite(changed=False, version=1, value={"k": 1})
    assert [e["version"] for e in await b.recorder.drain_json(a.backend, channel)] == [1]


async def test_a_conflict_is_reported_before_size_and_validation(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.write_record("rec", "v1")

    def reject(value: Any) -> None:
        raise Aborted(value)

    with pytest.raises(ConflictError):
        await a.backend.write_record("rec", "x" * 100, max_size=10, expected_version=0)
    with pytest.raises(ConflictError):
        await a.backend.write_record("rec", "v2", validate=reject, expected_version=5)
    with pytest.raises(TooLargeError):
        await a.backend.write_record("rec", "x" * 100, max_size=10, expected_version=1)
    assert await a.backend.get_record("rec") == ("v1", 1)


async def test_expected_version_after_deletion(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", "old")
    await b.backend.delete_record("rec")

    with pytest.raises(ConflictError) as caught:
        await a.backend.write_record("rec", "new", expected_version=1)
    assert caught.value.details == {"expected": 1, "actual": 0}
    assert (await a.backend.write_record("rec", "new", expected_version=0)).version == 1


async def test_concurrent_compare_and_set_has_one_winner(cluster: Cluster) -> None:
    a, b, watcher = await cluster.start(3)
    channel = await watch(watcher, "game")
    await a.backend.write_record("game", {"moves": []})
    _, version = await b.backend.get_record("game")

    async def move(node: Node, i: int) -> RecordWrite | ConflictError:
        try:
            return await node.backend.write_record("game", {"moves": [i]}, expected_version=version)
        except ConflictError as exc:
            return exc

    outcomes = await asyncio.gather(*(move(a if i % 2 else b, i) for i in range(2 * MOVES)))

    won = [o for o in outcomes if isinstance(o, RecordWrite)]
    lost = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(won) == 1
    assert len(lost) == 2 * MOVES - 1
    assert all(o.details == {"expected": 1, "actual": 2} for o in lost)
    assert await a.backend.get_record("game") == (won[0].value, 2)
    events = await watcher.recorder.drain_json(a.backend, channel)
    assert [e["value"] for e in events] == [{"moves": []}, won[0].value]


# ------------------------------------------------------------------ read-modify-write updates


async def test_update_runs_the_function_on_the_current_value(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    seen: list[Any] = []

    def bump(current: Any) -> Any:
        seen.append(copy.deepcopy(current))
        current = current or {"n": 0}
        current["n"] += 1  # the function's copy is its own
        return current

    first = await a.backend.update_record("rec", bump)
    second = await b.backend.update_record("rec", bump)

    assert seen == [None, {"n": 1}]
    assert (first.changed, first.version, first.value) == (True, 1, {"n": 1})
    assert second.patch == [{"op": "replace", "path": "/n", "value": 2}]
    assert await a.backend.get_record("rec") == ({"n": 2}, 2)
    events = await b.recorder.drain_json(a.backend, channel)
    assert [(e["version"], e["value"]) for e in events] == [(1, {"n": 1}), (2, {"n": 2})]


async def test_update_accepts_async_functions(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)

    async def append(current: Any) -> Any:
        await asyncio.sleep(0)
        return [*(current or []), "x"]

    assert (await a.backend.update_record("rec", append)).value == ["x"]
    assert (await a.backend.update_record("rec", append)).value == ["x", "x"]


async def test_an_unchanged_result_stores_and_publishes_nothing(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", {"k": [1]})

    same = await b.backend.update_record("rec", lambda current: current)

    assert same == RecordWrite(changed=False, version=1, value={"k": [1]})
    assert [e["version"] for e in await b.recorder.drain_json(a.backend, channel)] == [1]


@pytest.mark.parametrize("awaits", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    "error", [Aborted("cell taken"), TimeoutError("own timeout"), OSError("own I/O")]
)
async def test_an_exception_of_the_function_aborts_and_propagates(
    cluster: Cluster, error: Exception, awaits: bool
) -> None:
    a, b = await cluster.start(2)
    channel = await watch(b, "rec")
    await a.backend.write_record("rec", "v1")

    def fail(current: Any) -> Any:
        raise error

    async def fail_later(current: Any) -> Any:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(type(error)) as caught:
        await a.backend.update_record("rec", fail_later if awaits else fail)

    # Exactly the function's exception: never translated (to EUNAVAILABLE) at the boundary.
    assert caught.value is error
    assert await a.backend.get_record("rec") == ("v1", 1)
    assert [e["version"] for e in await b.recorder.drain_json(a.backend, channel)] == [1]


async def test_size_limit_and_validation_apply_to_updates(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)
    await a.backend.write_record("rec", "v1")
    validated: list[Any] = []

    def reject(value: Any) -> None:
        validated.append(value)
        raise Aborted(value)

    with pytest.raises(TooLargeError) as caught:
        await a.backend.update_record("rec", lambda current: "x" * 100, max_size=10)
    assert caught.value.details == {"limit": 10}
    with pytest.raises(Aborted):
        await a.backend.update_record("rec", lambda current: current + "!", validate=reject)
    assert validated == ["v1!"]
    assert await a.backend.get_record("rec") == ("v1", 1)


async def test_a_write_while_the_function_awaits_makes_it_run_again(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", {"moves": ["a0"]})
    seen: list[Any] = []
    running = asyncio.Event()
    release = asyncio.Event()

    async def move(current: Any) -> Any:
        seen.append(current)
        running.set()
        await release.wait()
        return {"moves": [*current["moves"], "a1"]}

    update = asyncio.create_task(a.backend.update_record("rec", move))
    await running.wait()
    await b.backend.write_record("rec", {"moves": ["a0", "b1"]})
    release.set()
    written = await update

    assert seen == [{"moves": ["a0"]}, {"moves": ["a0", "b1"]}]
    assert (written.version, written.value) == (3, {"moves": ["a0", "b1", "a1"]})
    assert await b.backend.get_record("rec") == ({"moves": ["a0", "b1", "a1"]}, 3)


async def test_a_deletion_while_the_function_awaits_makes_it_run_again(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", 1)
    seen: list[Any] = []
    running = asyncio.Event()
    release = asyncio.Event()

    async def bump(current: Any) -> Any:
        seen.append(current)
        running.set()
        await release.wait()
        return (current or 0) + 10

    update = asyncio.create_task(a.backend.update_record("rec", bump))
    await running.wait()
    await b.backend.delete_record("rec")
    await b.backend.write_record("rec", 1)  # version 1 again, not the value `bump` saw
    release.set()

    assert (await update).value == 11
    assert seen == [1, 1]  # ran again although value and version look the same
    assert await a.backend.get_record("rec") == (11, 2)


async def test_writing_the_record_from_its_update_function_raises(cluster: Cluster) -> None:
    (a,) = await cluster.start(1)

    async def reenter(current: Any) -> Any:
        await a.backend.write_record("rec", "inner")
        return "outer"

    with pytest.raises(RuntimeError, match="update function"):
        await a.backend.update_record("rec", reenter)
    assert await a.backend.get_record("rec") == (None, 0)
    assert (await a.backend.update_record("rec", lambda current: "later")).version == 1


async def test_two_instances_of_concurrent_moves_apply_each_exactly_once(
    cluster: Cluster,
) -> None:
    a, b, watcher = await cluster.start(3)
    channel = await watch(watcher, "game")
    runs = 0

    async def play(node: Node, move: int) -> RecordWrite:
        async def apply(game: Any) -> Any:
            nonlocal runs
            runs += 1
            game = game or {"count": 0, "moves": []}
            await asyncio.sleep(0)  # lets other moves interleave between read and commit
            game["count"] += 1
            game["moves"].append(move)
            return game

        return await node.backend.update_record("game", apply)

    results = await asyncio.gather(*(play(a if i % 2 else b, i) for i in range(2 * MOVES)))

    value, version = await a.backend.get_record("game")
    assert version == 2 * MOVES
    assert value["count"] == 2 * MOVES
    assert sorted(value["moves"]) == list(range(2 * MOVES))  # each move exactly once
    assert sorted(r.version for r in results) == list(range(1, 2 * MOVES + 1))
    for result in results:  # each committed value holds exactly the moves before it
        assert result.value["moves"] == value["moves"][: result.version]
    events = [await watcher.recorder.next_json(channel) for _ in range(2 * MOVES)]
    assert [e["version"] for e in events] == list(range(1, 2 * MOVES + 1))
    assert events[-1]["value"] == value
    assert await watcher.recorder.drain(a.backend, channel) == []
    assert runs >= 2 * MOVES


async def test_stats_count_conflicts_and_retries(cluster: Cluster) -> None:
    a, b = await cluster.start(2)
    await a.backend.write_record("rec", 1)  # a knows version 1
    await b.backend.write_record("rec", 2)
    with pytest.raises(ConflictError):
        await a.backend.write_record("rec", 3, expected_version=1)
    calls = 0

    async def bump(value: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await b.backend.write_record("rec", 10)  # overtakes the first run: it runs again
        return value + 1

    write = await a.backend.update_record("rec", bump)
    assert (write.value, calls) == (11, 2)
    stats = a.backend.stats()
    assert (stats.record_conflicts, stats.record_retries) == (1, 1)
    assert (b.backend.stats().record_conflicts, b.backend.stats().record_retries) == (0, 0)
