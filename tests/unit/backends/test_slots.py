"""Per-record write slots: serialisation, cleanup, re-entry."""

from __future__ import annotations

import asyncio

import pytest

from mesh_server.backends.slots import RecordSlots
from tests.support.timing import wait_for


async def test_writers_of_one_record_take_turns_and_leave_nothing_behind() -> None:
    slots = RecordSlots()
    order: list[str] = []
    first = await slots.acquire("r")
    other = await slots.acquire("other")  # another record does not wait

    async def second() -> None:
        slot = await slots.acquire("r")
        order.append("second")
        slots.release("r", slot)

    waiting = asyncio.create_task(second())
    await asyncio.sleep(0)
    order.append("first")
    assert first.users == 2
    slots.release("r", first)
    await wait_for(waiting)
    slots.release("other", other)

    assert order == ["first", "second"]
    assert slots._slots == {}


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    slots = RecordSlots()
    held = await slots.acquire("r")
    waiter = asyncio.create_task(slots.acquire("r"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert held.users == 1
    slots.release("r", held)
    assert slots._slots == {}


async def test_the_holding_task_cannot_wait_for_itself() -> None:
    slots = RecordSlots()
    slot = await slots.acquire("r")
    with pytest.raises(RuntimeError, match="update function"):
        await slots.acquire("r")
    with pytest.raises(RuntimeError):
        slots.check_reentry("r")

    async def elsewhere() -> None:
        slots.check_reentry("r")  # another task may wait (it is not the holder)

    await asyncio.create_task(elsewhere())
    slots.release("r", slot)
    slots.check_reentry("r")
    assert slots._slots == {}
