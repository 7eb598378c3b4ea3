"""InstanceMonitor: heartbeat, sweep and self-fencing rules (protocol.md §13.3–§13.5)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.base import DeadInstanceReport
from mesh_server.instance import InstanceMonitor
from tests.support.timing import eventually


class FakeBackend:
    def __init__(self) -> None:
        self.beats: list[Any] = []  # True/False to return, or an exception to raise
        self.sweeps: list[Any] = []
        self.heartbeat_calls = 0
        self.ttls_ms: list[int] = []

    async def heartbeat(self, ttl_ms: int) -> bool:
        self.heartbeat_calls += 1
        self.ttls_ms.append(ttl_ms)
        outcome = self.beats.pop(0) if self.beats else True
        if isinstance(outcome, BaseException):
            raise outcome
        return bool(outcome)

    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        outcome = self.sweeps.pop(0) if self.sweeps else []
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(backend: FakeBackend, clock: Clock, fences: list[str], **kw: Any) -> InstanceMonitor:
    async def fence(reason: str) -> None:
        fences.append(reason)

    options: dict[str, Any] = {
        "heartbeat_interval": 0.01,
        "ttl": 0.03,
        "sweep_interval": 0.01,
        "backend_grace": 1.0,
    }
    options.update(kw)
    return InstanceMonitor(
        backend,  # type: ignore[arg-type]
        fence=fence,
        log=logging.getLogger("test.instance"),
        clock=clock,
        **options,
    )


def test_ttl_must_exceed_interval() -> None:
    with pytest.raises(ValueError, match="instance_ttl"):
        make(FakeBackend(), Clock(), [], ttl=0.01)


async def test_lapsed_heartbeat_fences_then_accepts_again() -> None:
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences)
    backend.beats = [True, False]
    assert await monitor.beat()
    assert fences == []
    assert not await monitor.beat()  # this beat fenced: the connections are closing
    assert fences == ["instance registration was lost"]
    # The heartbeat re-created the registration: new connections are accepted again.
    assert not monitor.fenced
    assert backend.ttls_ms == [30, 30]  # ttl=0.03 s, handed to the backend in ms


async def test_backend_outage_fences_after_grace_once() -> None:
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences, backend_grace=1.0)
    down = UnavailableError("down")
    backend.beats = [down, down, down, down]
    await monitor.beat()
    assert monitor.unavailable
    assert fences == []
    clock.now = 0.5
    await monitor.beat()
    assert fences == []
    clock.now = 1.5
    await monitor.beat()
    assert fences == ["backend unreachable for longer than backend_grace"]
    assert monitor.fenced
    clock.now = 3.0
    await monitor.beat()
    assert len(fences) == 1  # fenced once per outage
    backend.beats = [True]
    await monitor.beat()
    assert not monitor.fenced
    assert not monitor.unavailable


async def test_sweep_reports_and_failures() -> None:
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences)
    backend.sweeps = [[DeadInstanceReport("dead1", ["c1", "c2"])], UnavailableError("down")]
    await monitor.sweep()
    await monitor.sweep()
    assert monitor.swept == ["dead1"]


async def test_loops_run_and_stop() -> None:
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences, heartbeat_interval=0.005, ttl=0.05, sweep_interval=0.005)
    swept = asyncio.Event()

    async def sweep() -> list[DeadInstanceReport]:
        swept.set()
        return []

    backend.sweep_dead_instances = sweep  # type: ignore[method-assign]
    await monitor.start()
    await asyncio.wait_for(swept.wait(), 5)
    await eventually(lambda: backend.heartbeat_calls >= 2)
    loops = list(monitor._loops)
    assert [loop.running for loop in loops] == [True, True, True]
    await monitor.stop()
    assert [loop.running for loop in loops] == [False, False, False]
    assert monitor._loops == []


async def test_probe_beats_only_while_the_backend_is_down() -> None:
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences, heartbeat_interval=60.0, ttl=120.0, probe_interval=0.005)
    await monitor.start()
    try:
        assert backend.heartbeat_calls == 0  # regular heartbeat is a minute away; no probing
        monitor.report_unavailable()  # e.g. a connection's registration failed
        assert monitor.unavailable  # upgrades are answered 503 from now on
        down = UnavailableError("down")
        backend.beats = [down, down]
        await eventually(lambda: not monitor.unavailable)  # probed until the backend answered
        assert backend.heartbeat_calls == 3
        assert not monitor.fenced
    finally:
        await monitor.stop()


async def test_probe_interval_is_at_most_the_heartbeat_interval() -> None:
    monitor = make(FakeBackend(), Clock(), [], probe_interval=10.0)
    assert monitor.probe_interval == monitor.heartbeat_interval


async def test_beats_never_overlap() -> None:
    """The beat that finds the registration lost fences before a later beat reports success."""
    backend, clock, fences = FakeBackend(), Clock(), []
    monitor = make(backend, clock, fences)
    gate = asyncio.Event()
    order: list[str] = []

    async def heartbeat(ttl_ms: int) -> bool:
        first = not order
        order.append("start")
        if first:
            await gate.wait()
        order.append("end")
        return not first  # the first beat finds the registration lost

    backend.heartbeat = heartbeat  # type: ignore[method-assign]
    first = asyncio.create_task(monitor.beat())
    second = asyncio.create_task(monitor.beat())
    await eventually(lambda: order == ["start"])
    gate.set()
    assert await asyncio.gather(first, second) == [False, True]
    assert order == ["start", "end", "start", "end"]
    assert fences == ["instance registration was lost"]
