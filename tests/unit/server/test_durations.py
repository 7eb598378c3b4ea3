"""Server durations are seconds at the public API, ms only behind it (mesh_server.limits)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh_server import MeshServer
from mesh_server.backends import MemoryBackend, create_backend
from mesh_server.limits import Limits
from mesh_server.session import Close, Discarded, ServerSession

INTERVALS = (
    "ping_interval",
    "latency_interval",
    "presence_sweep_interval",
    "instance_heartbeat_interval",
    "instance_ttl",
    "instance_sweep_interval",
    "backend_grace",
    "backend_probe_interval",
)


@pytest.mark.parametrize("name", INTERVALS)
@pytest.mark.parametrize("value", [0, -0.5])
def test_server_rejects_non_positive_intervals(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be > 0 seconds"):
        MeshServer(**{name: value})


@pytest.mark.parametrize(
    "option", ["backend_timeout_ms", "malformed_window_ms", "rate_abuse_window_ms"]
)
def test_former_ms_limits_are_unknown_options(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        MeshServer(**{option: 1000})


def test_defaults_are_seconds() -> None:
    server = MeshServer()
    assert server.options.ping_interval == 30.0
    assert (server.options.latency_interval, server.options.presence_sweep_interval) == (5.0, 1.0)
    assert (server.options.instance_heartbeat_interval, server.options.instance_ttl) == (5.0, 15.0)
    assert (server.options.instance_sweep_interval, server.options.backend_grace) == (5.0, 30.0)
    assert server.options.backend_probe_interval == 0.5


def test_instance_ttl_reaches_the_memory_backend_in_seconds() -> None:
    backend = MeshServer(instance_heartbeat_interval=0.5, instance_ttl=2.5).backend
    assert isinstance(backend, MemoryBackend)
    assert backend.instance_ttl == 2.5


async def test_heartbeat_registers_the_ttl_on_the_ms_store_clock() -> None:
    now = [1_000.0]
    backend = MemoryBackend(clock=lambda: now[0], instance_ttl=2.5)
    await backend.start("inst-a", lambda channel, data: None)
    try:
        observer = MemoryBackend(hub=backend.hub)
        await observer.start("inst-b", lambda channel, data: None)
        now[0] += 2_499
        assert await observer.sweep_dead_instances() == []
        now[0] += 2
        assert [r.instance_id for r in await observer.sweep_dead_instances()] == ["inst-a"]
        await observer.close()
    finally:
        await backend.close()


@pytest.mark.parametrize(
    "options",
    [
        {"instance_ttl": 0},
        {"operation_timeout": -1.0},
        {"record_retry_base": -0.001},
        {"record_retry_base": 0.5, "record_retry_max": 0.1},
    ],
)
def test_memory_backend_rejects_bad_durations(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        MemoryBackend(**options)


def test_memory_backend_former_ms_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="instance_ttl_ms"):
        create_backend(None, instance_ttl_ms=15_000)


@pytest.mark.parametrize(("second_at", "closed"), [(499, True), (501, False)])
def test_session_windows_are_converted_to_its_ms_clock(second_at: int, closed: bool) -> None:
    # One malformed frame is tolerated per 0.5 s window; the session's clock is ms.
    limits = Limits(max_malformed_frames=1, malformed_window=0.5)
    session = ServerSession("conn-a", limits=limits)
    session.start(0)
    assert isinstance(session.receive(b"{", 0), Discarded)
    event = session.receive(b"{", second_at)
    assert session.closed is closed
    assert isinstance(event, Close if closed else Discarded)
