"""Connection registrations on Redis: concurrent ones share script calls (group commit)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh_sdk.protocol.errors import UnavailableError
from tests.support.timing import TIMEOUT, eventually
from tests.unit.backends.redis.conftest import StartBackend
from tests.unit.backends.redis.test_backend import commandstats, delta

pytestmark = pytest.mark.redis


async def script_calls(client: Any, before: dict[str, int]) -> int:
    return delta(before, await commandstats(client)).get("evalsha", 0)


async def test_a_lone_registration_is_one_script_call(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    before = await commandstats(plain_redis)

    await backend.register_connection("c", {"n": 1})

    assert await script_calls(plain_redis, before) == 1
    assert await backend.get_all_connection_metadata() == {"c": {"n": 1}}


async def test_concurrent_registrations_share_one_script_call(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()
    before = await commandstats(plain_redis)

    await asyncio.gather(*(backend.register_connection(f"c{n}", {"n": n}) for n in range(50)))

    # All 50 queue in the same loop iteration, before the first batch goes out.
    assert await script_calls(plain_redis, before) == 1
    assert await backend.get_all_connection_metadata() == {f"c{n}": {"n": n} for n in range(50)}


async def test_batches_are_bounded_by_register_batch(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend(register_batch=4)
    before = await commandstats(plain_redis)

    await asyncio.gather(*(backend.register_connection(f"c{n}") for n in range(20)))

    assert await script_calls(plain_redis, before) == 5
    assert sorted(await backend.get_all_connection_metadata()) == sorted(f"c{n}" for n in range(20))


async def test_register_batch_must_be_positive(start_backend: StartBackend) -> None:
    with pytest.raises(ValueError, match="register_batch"):
        await start_backend(register_batch=0)


async def test_a_failed_batch_fails_its_callers_and_later_registrations_work(
    start_backend: StartBackend, plain_redis: Any
) -> None:
    backend, _ = await start_backend()

    async def paused_script_client() -> int | None:
        for client in await plain_redis.client_list():
            if client["cmd"] == "evalsha" and "b" in client["flags"]:
                return int(client["id"])
        return None

    async def script_paused() -> bool:
        return await paused_script_client() is not None

    # Writes (scripts) wait while Redis is paused: the first batch stays in flight.
    await plain_redis.execute_command("CLIENT", "PAUSE", int(4 * TIMEOUT * 1000), "WRITE")
    try:
        first = asyncio.create_task(backend.register_connection("first"))
        await eventually(script_paused)
        queued = [asyncio.create_task(backend.register_connection(f"q{n}")) for n in range(3)]
        # Awaiting Redis lets the queued callers run up to their wait before the kill lands.
        in_flight = await paused_script_client()
        assert in_flight is not None
        await plain_redis.client_kill_filter(_id=str(in_flight))

        with pytest.raises(UnavailableError):
            await first
        assert not any(task.done() for task in queued)
    finally:
        await plain_redis.execute_command("CLIENT", "UNPAUSE")

    await asyncio.gather(*queued)
    await backend.register_connection("later")
    for connection_id in ("q0", "q1", "q2", "later"):
        assert await backend.connection_instance(connection_id) == backend.instance_id
