"""A raw-protocol test client: plain ``websockets`` + JSON, exactly what a JS client sends.

Kept on purpose next to the SDK: tests written with it prove wire compatibility.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from mesh_server import MeshServer
from tests.support.hosting import hosted
from tests.support.timing import TIMEOUT

_MISSING: Any = object()


class RawClient:
    """A WebSocket connection speaking the Mesh envelope by hand.

    Frames other than the one awaited are kept in :attr:`inbox` (in arrival order), so tests can
    assert on pushes after waiting for a response. ``auto_pong`` answers every ``ping`` like the
    JS client does.
    """

    def __init__(self, ws: ClientConnection, *, auto_pong: bool = False) -> None:
        self.ws = ws
        self.auto_pong = auto_pong
        self.inbox: list[dict[str, Any]] = []
        self.connection_id: str | None = None
        self._pong_id = 10_000

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, auto_pong: bool = False, wait_id: bool = True, **kwargs: Any
    ) -> AsyncIterator[RawClient]:
        async with connect(url, max_size=None, **kwargs) as ws:
            client = cls(ws, auto_pong=auto_pong)
            if wait_id:
                first = await client.next_frame()
                assert first["command"] == "mesh/assign-id"
                client.connection_id = first["payload"]
            yield client

    async def send(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def next_frame(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the next frame from the socket (ignoring :attr:`inbox`).

        Each read is bounded by ``timeout`` seconds. ``asyncio.timeout`` rather than
        ``asyncio.wait_for``: on Python 3.11, ``wait_for`` swallows a cancellation that comes in
        the loop iteration where the frame arrives (python/cpython#86296, fixed in 3.12), and a
        cancelled reader that answers pings (``auto_pong``) would then read forever.
        """
        while True:
            async with asyncio.timeout(timeout):
                data = await self.ws.recv()
            frame = json.loads(data)
            if self.auto_pong and frame.get("command") == "ping" and "id" not in frame:
                self._pong_id += 1
                await self.send({"id": self._pong_id, "command": "pong", "payload": {}})
                continue
            return frame  # type: ignore[no-any-return]

    async def wait_for(self, predicate: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the first frame (from the inbox, else the socket) matching ``predicate``."""
        for i, frame in enumerate(self.inbox):
            if predicate(frame):
                return self.inbox.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.next_frame(max(0.001, deadline - loop.time()))
            if predicate(frame):
                return frame
            self.inbox.append(frame)

    async def wait_push(self, command: str, timeout: float = TIMEOUT) -> Any:
        """Return the payload of the next push named ``command``."""
        frame = await self.wait_for(
            lambda f: "id" not in f and f.get("command") == command, timeout
        )
        return frame["payload"]

    async def response(self, request_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the next response frame carrying ``request_id``."""
        return await self.wait_for(lambda f: "id" in f and f["id"] == request_id, timeout)

    async def request(
        self, request_id: Any, command: str, payload: Any = _MISSING
    ) -> dict[str, Any]:
        """Send a request and return its whole response frame."""
        frame: dict[str, Any] = {"id": request_id, "command": command}
        if payload is not _MISSING:
            frame["payload"] = payload
        await self.send(frame)
        return await self.response(request_id)

    async def call(self, command: str, payload: Any = _MISSING) -> Any:
        """Send a request with a fresh id and return the response payload (error or not)."""
        self._pong_id += 1
        response = await self.request(f"r{self._pong_id}", command, payload)
        return response["payload"]

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes; return the close code."""

        async def drain() -> None:
            while True:
                try:
                    await self.ws.recv()
                except Exception:
                    return

        await asyncio.wait_for(drain(), timeout)
        await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code


@asynccontextmanager
async def running_server(**options: Any) -> AsyncIterator[MeshServer]:
    """Start a MeshServer on a free loopback port (on the test's transport, see hosting)."""
    options.setdefault("close_timeout", 2.0)
    async with hosted(**options) as server:
        yield server
