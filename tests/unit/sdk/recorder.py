"""Records a MeshClient's events so tests can wait for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mesh_sdk.client import EVENTS, MeshClient
from tests.support.timing import TIMEOUT


class Recorder:
    """Records every client event as ``(name, *args)`` and lets tests wait for them."""

    def __init__(self, client: MeshClient) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()
        for name in sorted(EVENTS):
            client.on(name, self._listener(name))

    def _listener(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((name, *args))
            self._changed.set()

        return record

    def names(self) -> list[str]:
        return [e[0] for e in self.events if e[0] != "latency"]

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e[0] == name)

    async def wait(self, name: str, n: int = 1, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        async with asyncio.timeout(timeout):
            while self.count(name) < n:
                self._changed.clear()
                await self._changed.wait()
        return [e for e in self.events if e[0] == name][n - 1]
