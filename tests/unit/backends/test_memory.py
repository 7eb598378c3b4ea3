"""Memory-backend specifics that the shared conformance suite does not cover."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends import MemoryBackend, MemoryHub, create_backend
from mesh_server.backends.base import PresenceSnapshot
from mesh_server.backends.messages import presence_channel
from tests.conformance.conftest import FakeClock, Recorder
from tests.support.timing import TIMEOUT


async def started(backend: MemoryBackend, instance_id: str) -> Recorder:
    recorder = Recorder()
    await backend.start(instance_id, recorder)
    return recorder


async def test_default_backends_have_private_hubs() -> None:
    a, b = MemoryBackend(), MemoryBackend()
    await started(a, "a")
    await started(b, "b")
    await a.register_connection("conn-1")
    assert await b.get_all_connection_metadata() == {}
    assert a.hub is not b.hub


async def test_namespaces_are_separate_stores_on_one_hub() -> None:
    hub = MemoryHub()
    a, b = MemoryBackend("one:", hub=hub), MemoryBackend("two:", hub=hub)
    await started(a, "a")
    recorder_b = await started(b, "b")
    await a.register_connection("conn-1")
    await a.write_record("rec", 1)
    assert await b.get_all_connection_metadata() == {}
    assert await b.get_record("rec") == (None, 0)
    # Pub/sub is global, as with Redis.
    await b.subscribe("app")
    await a.publish("app", b"x")
    assert await recorder_b.next("app") == b"x"


def test_clock_belongs_to_the_hub() -> None:
    with pytest.raises(ValueError, match="clock"):
        MemoryBackend(hub=MemoryHub(), clock=FakeClock())


async def test_private_hub_uses_the_injected_clock() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    await started(backend, "a")
    await backend.register_connection("conn-1")
    await backend.join_room("room", "conn-1", 1000)
    assert await backend.sweep_presence() == 0
    clock.advance(1000)
    assert await backend.sweep_presence() == 1


async def test_delivery_is_never_synchronous() -> None:
    backend = MemoryBackend()
    recorder = await started(backend, "a")
    await backend.subscribe("chan")
    await backend.publish("chan", b"x")
    assert recorder.log == [], "delivered inside the publisher's call stack"
    assert await recorder.next("chan") == b"x"


async def test_a_failing_handler_is_logged_and_does_not_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = MemoryHub()
    calls: list[bytes] = []

    def failing(channel: str, data: bytes) -> None:
        calls.append(data)
        raise RuntimeError("handler bug")

    a, b = MemoryBackend(hub=hub), MemoryBackend(hub=hub)
    await a.start("a", failing)
    recorder = await started(b, "b")
    await a.subscribe("chan")
    await b.subscribe("chan")
    with caplog.at_level(logging.ERROR, logger="mesh_server.backends.memory"):
        await a.publish("chan", b"1")
        await a.publish("chan", b"2")
        assert [await recorder.next("chan") for _ in range(2)] == [b"1", b"2"]
    assert calls == [b"1", b"2"]
    assert "handler failed" in caplog.text


async def test_publish_with_no_subscriber_counts_zero() -> None:
    hub = MemoryHub()
    assert hub.publish("nobody", b"x") == 0


async def test_lifecycle_errors() -> None:
    backend = MemoryBackend()
    with pytest.raises(RuntimeError, match="start"):
        _ = backend.instance_id
    with pytest.raises(RuntimeError, match="start"):
        await backend.subscribe("chan")
    await backend.close()
    await backend.close()


async def test_restart_after_close() -> None:
    backend = MemoryBackend()
    await started(backend, "a")
    await backend.close()
    recorder = await started(backend, "b")
    await backend.subscribe("chan")
    await backend.publish("chan", b"x")
    assert await recorder.next("chan") == b"x"


async def test_reregistering_a_connection_moves_its_route() -> None:
    hub = MemoryHub()
    a, b = MemoryBackend(hub=hub), MemoryBackend(hub=hub)
    await started(a, "a")
    await started(b, "b")
    await a.register_connection("conn-1", {"m": 1})
    await b.register_connection("conn-1")
    assert await a.connection_instance("conn-1") == "b"
    assert await a.get_connection_metadata("conn-1") is None
    reports = await a.sweep_dead_instances()
    assert reports == []
    await a.close()
    assert await b.connection_instance("conn-1") == "b", "a's close does not take it along"


async def test_unregister_ends_presence_in_rooms_not_listed() -> None:
    backend = MemoryBackend()
    recorder = await started(backend, "a")
    channel = presence_channel("mesh:", "game")
    await backend.subscribe(channel)
    await backend.register_connection("conn-1")
    await backend.join_room("game", "conn-1", 60_000)
    await backend.unregister_connection("conn-1", [])
    assert [e["type"] for e in await recorder.drain_json(backend, channel)] == ["join", "leave"]
    assert await backend.presence_snapshot("game") == PresenceSnapshot([], {})


async def test_refreshes_do_not_grow_the_deadline_index_without_bound() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    await started(backend, "a")
    await backend.register_connection("conn-1")
    await backend.join_room("room", "conn-1", 1000)
    for _ in range(10_000):
        clock.advance(1)
        await backend.refresh_presence("conn-1", [("room", 1000)])
    assert len(backend.hub._store("mesh:").deadlines) <= 4 + 1024 + 1
    clock.advance(999)
    assert await backend.sweep_presence() == 0
    clock.advance(1)
    assert await backend.sweep_presence() == 1


async def test_swept_instance_is_reported_with_its_connections() -> None:
    clock = FakeClock()
    hub = MemoryHub(clock)
    a, b = MemoryBackend(hub=hub, instance_ttl=0.1), MemoryBackend(hub=hub)
    await started(a, "a")
    await started(b, "b")
    await a.register_connection("conn-2")
    await a.register_connection("conn-1")
    clock.advance(100)  # the hub clock reads ms
    reports = await b.sweep_dead_instances()
    assert [(r.instance_id, r.connection_ids) for r in reports] == [("a", ["conn-1", "conn-2"])]


def test_create_backend_memory() -> None:
    backend = create_backend(None, namespace="app:", instance_ttl=1.234)
    assert isinstance(backend, MemoryBackend)
    assert backend.namespace == "app:"
    assert backend.instance_ttl == 1.234


async def test_create_backend_redis_is_imported_lazily() -> None:
    from mesh_server.backends.redis import RedisBackend

    backend = create_backend("redis://127.0.0.1:1/0", namespace="app:")
    assert isinstance(backend, RedisBackend)
    assert backend.namespace == "app:"
    await backend.close()


async def test_event_loop_is_not_blocked_by_many_subscribers() -> None:
    hub = MemoryHub()
    backends = [MemoryBackend(hub=hub) for _ in range(20)]
    recorders = [await started(backend, f"i{n}") for n, backend in enumerate(backends)]
    for backend in backends:
        await backend.subscribe("fan")
    await backends[0].publish("fan", b"x")
    results = await asyncio.gather(*(recorder.next("fan") for recorder in recorders))
    assert results == [b"x"] * 20


async def test_updates_that_keep_conflicting_end_at_the_deadline() -> None:
    hub = MemoryHub()
    a = MemoryBackend(hub=hub, operation_timeout=TIMEOUT / 10)
    b = MemoryBackend(hub=hub)
    await started(a, "a")
    await started(b, "b")
    await a.write_record("r", 0)
    runs = 0

    async def always_overtaken(current: Any) -> Any:
        nonlocal runs
        runs += 1
        await b.write_record("r", -runs)  # another instance commits first, every time
        return current + 1

    with pytest.raises(UnavailableError, match="update record timed out"):
        await a.update_record("r", always_overtaken)

    assert runs >= 2
    assert await a.get_record("r") == (-runs, runs + 1)  # none of a's results was stored


async def test_a_function_past_the_deadline_ends_the_update_and_frees_the_record() -> None:
    backend = MemoryBackend(operation_timeout=TIMEOUT / 10)
    await started(backend, "a")
    never = asyncio.Event()

    async def stuck(current: Any) -> Any:
        await never.wait()
        return "never"

    with pytest.raises(UnavailableError, match="update record timed out"):
        await backend.update_record("r", stuck)

    assert (await backend.update_record("r", lambda current: "free")).version == 1
