"""One timeout unit for every wait in the tests, scaled by ``MESH_TESTS_TIMEOUT_FACTOR``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

FACTOR = float(os.environ.get("MESH_TESTS_TIMEOUT_FACTOR", "1"))
TIMEOUT = 5.0 * FACTOR
"""Seconds a test waits for something that should happen promptly."""


async def wait_for(aw: Awaitable[T], timeout: float = TIMEOUT) -> T:
    """Await ``aw`` with the scaled timeout."""
    return await asyncio.wait_for(aw, timeout)


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = TIMEOUT, step: float = 0.01
) -> None:
    """Poll ``predicate`` until true (for state owned by another process, e.g. Redis contents).

    Raises:
        AssertionError: The predicate stayed false for ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)
