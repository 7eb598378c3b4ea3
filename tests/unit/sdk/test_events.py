from __future__ import annotations

import asyncio
import logging

import pytest

from mesh_sdk.events import CallbackDispatcher, EventEmitter
from tests.support.timing import wait_for


async def test_sync_inline_async_in_order() -> None:
    dispatcher = CallbackDispatcher()
    seen: list[str] = []
    gate = asyncio.Event()

    async def slow(tag: str) -> None:
        await gate.wait()
        seen.append(f"async {tag}")

    async def fast(tag: str) -> None:
        seen.append(f"async {tag}")

    dispatcher.call(slow, "1")
    dispatcher.call(seen.append, "sync")
    dispatcher.call(fast, "2")
    assert seen == ["sync"]
    gate.set()
    await wait_for(dispatcher.drain())
    assert seen == ["sync", "async 1", "async 2"]
    await dispatcher.aclose()


async def test_exceptions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = CallbackDispatcher()

    def bad() -> None:
        raise RuntimeError("sync boom")

    async def worse() -> None:
        raise RuntimeError("async boom")

    done: list[int] = []
    with caplog.at_level(logging.ERROR, logger="mesh_sdk"):
        dispatcher.call(bad)
        dispatcher.call(worse)
        dispatcher.call(lambda: done.append(1))
        await wait_for(dispatcher.drain())
    assert done == [1]
    assert "sync boom" in caplog.text
    assert "async boom" in caplog.text
    await dispatcher.aclose()


async def test_aclose_cancels_stuck_callbacks() -> None:
    dispatcher = CallbackDispatcher()
    forever = asyncio.Event()

    async def stuck() -> None:
        await forever.wait()

    async def never_started() -> None:
        raise AssertionError("not run")

    dispatcher.call(stuck)
    dispatcher.call(never_started)
    await asyncio.sleep(0)
    await wait_for(dispatcher.aclose(grace=0.01))


async def test_emitter_on_off() -> None:
    dispatcher = CallbackDispatcher()
    emitter = EventEmitter(dispatcher)
    got: list[tuple[object, ...]] = []

    def listener(*args: object) -> None:
        got.append(args)

    remove = emitter.on("x", listener)
    emitter.emit("x", 1, 2)
    emitter.emit("y", 3)
    remove()
    emitter.emit("x", 4)
    emitter.off("x", listener)  # no error when absent
    assert got == [(1, 2)]
    assert emitter.listeners("x") == []
