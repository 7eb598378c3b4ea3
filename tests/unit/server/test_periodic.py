from __future__ import annotations

import asyncio
import contextlib
import logging

from mesh_server.periodic import Periodic
from tests.support.timing import wait_for

log = logging.getLogger("test")


async def test_runs_every_interval_and_survives_failing_steps() -> None:
    calls: list[int] = []
    three = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            three.set()
        if len(calls) == 1:
            raise RuntimeError("boom")  # logged; the loop goes on

    loop = Periodic("t", 0.001, step, log)
    loop.start()
    loop.start()  # idempotent
    assert loop.running
    await wait_for(three.wait())
    await loop.stop()
    assert not loop.running
    assert calls[:3] == [0, 1, 2]
    await loop.stop()  # idempotent


async def test_stop_lets_the_running_step_finish() -> None:
    entered, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def step() -> None:
        entered.set()
        await release.wait()
        finished.set()

    loop = Periodic("t", 0.001, step, log)
    loop.start()
    await wait_for(entered.wait())
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)  # let stop() begin waiting
    assert not stopping.done()
    release.set()
    await wait_for(stopping)
    assert finished.is_set()  # never cancelled mid-step


async def test_a_step_that_swallows_cancellation_still_stops() -> None:
    # The redis-py behaviour this class exists for: a cancelled command carries on.
    entered = asyncio.Event()

    async def step() -> None:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, as redis-py may do
            await asyncio.sleep(3600)

    loop = Periodic("t", 0.001, step, log)
    loop.start()
    await wait_for(entered.wait())
    await wait_for(loop.stop(stop_timeout=0.05))
    assert not loop.running


async def test_stop_during_the_pause_returns_at_once() -> None:
    ran: list[int] = []

    async def step() -> None:
        ran.append(1)

    loop = Periodic("t", 3600.0, step, log)
    loop.start()
    await asyncio.sleep(0)  # the loop is now waiting out its first interval
    await wait_for(loop.stop())  # not the 3600 s pause
    assert ran == []
