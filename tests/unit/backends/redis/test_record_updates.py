"""Compare-and-set writes and updates on Redis: what they cost, and their deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from mesh_sdk.protocol.errors import ConflictError, UnavailableError
from mesh_server.backends.redis.errors import unavailable_on_failure
from mesh_server.backends.redis.health import Health
from tests.support.timing import TIMEOUT
from tests.unit.backends.redis.conftest import StartBackend
from tests.unit.backends.redis.test_backend import commandstats, delta
from tests.unit.backends.redis.test_records import COMMIT

pytestmark = pytest.mark.redis

SHORT = TIMEOUT / 10
"""An operation deadline the tests let pass (a tenth of the scaled test timeout)."""


def append(item: Any) -> Any:
    def apply(current: Any) -> Any:
        return [*(current or []), item]

    return apply


async def test_an_uncontended_update_is_one_commit(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", [0])
    before = await commandstats(plain_redis)

    written = await backend.update_record("r", append(1))

    assert (written.version, written.value) == (2, [0, 1])
    assert delta(before, await commandstats(plain_redis)) == COMMIT


async def test_updates_of_one_instance_never_conflict(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", [])
    before = await commandstats(plain_redis)

    async def slow_append(current: Any) -> Any:
        await asyncio.sleep(0)
        return [*current, len(current)]

    results = await asyncio.gather(*(backend.update_record("r", slow_append) for _ in range(16)))

    assert sorted(r.version for r in results) == list(range(2, 18))
    assert await backend.get_record("r") == (list(range(16)), 17)
    reads = 1  # the get_record above
    assert delta(before, await commandstats(plain_redis)) == {
        name: 16 * calls + (reads if name == "hmget" else 0) for name, calls in COMMIT.items()
    }


async def test_a_conflicting_update_reruns_on_the_returned_state_without_a_read(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    (a, _), (b, _) = await start_backend(), await start_backend()
    await a.write_record("r", ["a"])
    await b.update_record("r", append("b"))
    seen: list[Any] = []

    def record_and_append(current: Any) -> Any:
        seen.append(list(current))
        return [*current, "a2"]

    before = await commandstats(plain_redis)
    written = await a.update_record("r", record_and_append)

    assert seen == [["a"], ["a", "b"]]  # the cached state, then the one the conflict returned
    assert (written.version, written.value) == (3, ["a", "b", "a2"])
    assert delta(before, await commandstats(plain_redis)) == {
        "evalsha": 2,
        "hmget": 2,
        "hset": 1,
        "publish": 1,
    }


async def test_a_compare_and_set_write_is_one_commit(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", 1)
    before = await commandstats(plain_redis)

    assert (await backend.write_record("r", 2, expected_version=1)).version == 2

    assert delta(before, await commandstats(plain_redis)) == COMMIT


async def test_a_conflict_against_the_cache_is_confirmed_by_one_read(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    await backend.write_record("r", 1)
    before = await commandstats(plain_redis)

    with pytest.raises(ConflictError) as caught:
        await backend.write_record("r", 2, expected_version=5)

    assert caught.value.details == {"expected": 5, "actual": 1}
    assert delta(before, await commandstats(plain_redis)) == {"hmget": 1}


async def test_updates_that_keep_conflicting_end_at_the_deadline(
    start_backend: StartBackend,
) -> None:
    (a, _), (b, _) = await start_backend(operation_timeout=SHORT), await start_backend()
    await a.write_record("r", 0)
    runs = 0

    async def always_overtaken(current: Any) -> Any:
        nonlocal runs
        runs += 1
        await b.write_record("r", -runs)  # another instance commits first, every time
        return current + 1

    with pytest.raises(UnavailableError, match="update record"):
        await a.update_record("r", always_overtaken)

    assert runs >= 2
    value, _ = await b.get_record("r")
    assert value < 0  # nothing of `a`'s updates was stored
    assert (await a.update_record("r", lambda current: "after")).value == "after"


async def test_a_function_past_the_deadline_ends_the_update_and_frees_the_record(
    start_backend: StartBackend,
) -> None:
    backend, _ = await start_backend(operation_timeout=SHORT)
    never = asyncio.Event()

    async def stuck(current: Any) -> Any:
        await never.wait()
        return "never"

    with pytest.raises(UnavailableError, match="update record timed out"):
        await backend.update_record("r", stuck)

    assert (await backend.write_record("r", "free")).version == 1


async def test_a_record_write_past_its_deadline_is_contention_not_an_outage(
    start_backend: StartBackend,
) -> None:
    backend, _ = await start_backend(operation_timeout=SHORT)
    never = asyncio.Event()

    async def stuck(current: Any) -> Any:
        await never.wait()
        return "never"

    with pytest.raises(UnavailableError, match="update record timed out"):
        await backend.update_record("r", stuck)

    # Redis answered every command it got: no outage is counted, logged or reported.
    stats = backend.stats()
    assert (stats.outages, stats.errors) == (0, 0)
    assert not backend.health_issues()


@pytest.mark.parametrize("deadline_is_failure", [True, False])
async def test_only_a_redis_deadline_tells_health(deadline_is_failure: bool) -> None:
    health = Health(time.monotonic, logging.getLogger("test"))
    waiting = asyncio.Event()  # never set: the block outlives its deadline

    with pytest.raises(UnavailableError):
        async with unavailable_on_failure(
            SHORT, "write record", health, deadline_is_failure=deadline_is_failure
        ):
            await waiting.wait()

    assert health.outages == (1 if deadline_is_failure else 0)
    assert (health.down_since is not None) is deadline_is_failure
