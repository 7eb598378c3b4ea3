"""The shared timer wheel: deadlines never early, one handle, cancellation, failing callbacks."""

from __future__ import annotations

import asyncio

import pytest

from mesh_server.timer_wheel import TimerWheel
from tests.support.timing import wait_for


class Recorder:
    def __init__(self, loop: asyncio.AbstractEventLoop, fail: bool = False) -> None:
        self.loop = loop
        self.fired: list[tuple[float, float]] = []
        self.done = asyncio.Event()
        self.fail = fail

    def on_deadline(self, when: float) -> None:
        self.fired.append((when, self.loop.time()))
        self.done.set()
        if self.fail:
            raise RuntimeError("callback bug")


async def test_deadlines_fire_once_never_early_in_order() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop, resolution=0.01)
    now = loop.time()
    late, soon = Recorder(loop), Recorder(loop)
    wheel.schedule(late, now + 0.05)
    wheel.schedule(soon, now + 0.02)
    assert len(wheel) == 2
    await wait_for(late.done.wait())
    assert soon.fired
    assert late.fired[0][0] >= now + 0.05
    assert soon.fired[0][0] >= now + 0.02
    assert soon.fired[0][1] <= late.fired[0][1]
    assert len(wheel) == 0


async def test_cancelled_deadlines_do_not_fire() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop, resolution=0.01)
    cancelled, kept = Recorder(loop), Recorder(loop)
    tick = wheel.schedule(cancelled, loop.time() + 0.01)
    wheel.schedule(kept, loop.time() + 0.03)
    wheel.cancel(cancelled, tick)
    wheel.cancel(cancelled, tick)  # idempotent
    await wait_for(kept.done.wait())
    assert cancelled.fired == []


async def test_a_failing_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop, resolution=0.01)
    broken, other, later = Recorder(loop, fail=True), Recorder(loop), Recorder(loop)
    when = loop.time() + 0.01
    wheel.schedule(broken, when)
    wheel.schedule(other, when)
    wheel.schedule(later, when + 0.05)
    await wait_for(later.done.wait())
    assert broken.fired
    assert other.fired
    assert "deadline callback failed" in caplog.text


async def test_rescheduling_from_a_callback_keeps_earlier_buckets() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop, resolution=0.01)
    waiting = Recorder(loop)
    start = loop.time()

    class Rearming(Recorder):
        def on_deadline(self, when: float) -> None:
            super().on_deadline(when)
            wheel.schedule(self, when + 1.0)  # a later tick than ``waiting``'s

    rearming = Rearming(loop)
    wheel.schedule(rearming, start + 0.01)
    wheel.schedule(waiting, start + 0.05)
    await wait_for(waiting.done.wait())
    assert len(rearming.fired) == 1


def test_resolution_must_be_positive() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="resolution"):
            TimerWheel(loop, resolution=0)
    finally:
        loop.close()
