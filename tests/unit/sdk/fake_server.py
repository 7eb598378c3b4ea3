"""A scripted Mesh peer on a real socket, for SDK tests independent of the real server.

It speaks just enough of the wire protocol: ``mesh/assign-id`` first, responses produced by
per-command handlers (success, typed error, or held for the test to answer later), pushes,
pings, closes with a code, transport aborts and HTTP rejections at upgrade.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response as HttpResponse

from mesh_sdk.protocol.errors import MeshError
from tests.support.timing import TIMEOUT

HOLD: Any = object()
"""Handler result meaning "do not answer now" (answer with :meth:`FakeConnection.respond`)."""

Handler = Callable[["FakeConnection", "FakeRequest"], Any]


@dataclass
class FakeRequest:
    """One client request as the fake server received it."""

    connection: FakeConnection
    id: Any
    command: str
    payload: Any


@dataclass
class FakeConnection:
    """One accepted socket."""

    server: FakeServer
    ws: ServerConnection
    id: str
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    async def push(self, command: str, payload: Any) -> None:
        await self.send({"command": command, "payload": payload})

    async def respond(self, request: FakeRequest, payload: Any) -> None:
        await self.send({"id": request.id, "command": request.command, "payload": payload})

    async def respond_error(self, request: FakeRequest, error: MeshError) -> None:
        await self.send(
            {
                "id": request.id,
                "command": request.command,
                "payload": error.to_payload(),
                "error": error.to_wire(),
            }
        )

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        self.ws.transport.abort()

    def count(self, command: str) -> int:
        return sum(1 for f in self.frames if f.get("command") == command)


class FakeServer:
    """Accepts connections, assigns ids, answers requests with handlers.

    Default handlers: ``echo`` returns its payload; built-in subscribe commands succeed with
    empty state; anything else gets ``ENOTFOUND``. Every frame is recorded per connection and in
    :attr:`requests` (requests only).
    """

    def __init__(self, *, assign_id: bool = True) -> None:
        self.assign_id = assign_id
        self.handlers: dict[str, Handler] = {
            "echo": lambda conn, req: req.payload,
            "mesh/subscribe-channel": lambda conn, req: {"success": True, "history": []},
            "mesh/unsubscribe-channel": lambda conn, req: True,
            "mesh/join-room": lambda conn, req: {"success": True, "present": [conn.id]},
            "mesh/leave-room": lambda conn, req: {"success": True},
            "mesh/subscribe-presence": lambda conn, req: {
                "success": True,
                "present": [],
                "states": {},
            },
            "mesh/unsubscribe-presence": lambda conn, req: True,
            "mesh/publish-presence-state": lambda conn, req: True,
            "mesh/subscribe-record": lambda conn, req: {
                "success": True,
                "record": None,
                "version": 0,
            },
            "mesh/unsubscribe-record": lambda conn, req: True,
            "mesh/publish-record-update": lambda conn, req: {"success": True},
        }
        self.reject_status: int | None = None
        self.rejected = 0
        """Upgrades answered with ``reject_status`` so far."""
        self.connections: list[FakeConnection] = []
        self.requests: list[FakeRequest] = []
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self._ids = itertools.count(1)
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            process_request=self._process_request,
            ping_interval=None,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _process_request(self, ws: ServerConnection, request: HttpRequest) -> HttpResponse | None:
        if self.reject_status is None:
            return None
        self.rejected += 1
        status = HTTPStatus(self.reject_status)
        return HttpResponse(status.value, status.phrase, Headers(), b"rejected\n")

    async def _handle(self, ws: ServerConnection) -> None:
        conn = FakeConnection(self, ws, f"conn-fake{next(self._ids)}")
        self.connections.append(conn)
        await self._notify()
        if self.assign_id:
            await conn.push("mesh/assign-id", conn.id)
        async for message in ws:
            frame = json.loads(message)
            conn.frames.append(frame)
            if "id" in frame and frame.get("command") not in ("pong", "latency:response"):
                request = FakeRequest(conn, frame["id"], frame.get("command"), frame.get("payload"))
                self.requests.append(request)
                await self._answer(request)
            await self._notify()

    async def _answer(self, request: FakeRequest) -> None:
        handler = self.handlers.get(request.command)
        conn = request.connection
        if handler is None:
            await conn.respond_error(
                request,
                MeshError(
                    f'Command "{request.command}" not found', code="ENOTFOUND", name="CommandError"
                ),
            )
            return
        try:
            result = handler(conn, request)
            if asyncio.iscoroutine(result):
                result = await result
        except MeshError as exc:
            await conn.respond_error(request, exc)
            return
        if result is not HOLD:
            await conn.respond(request, result)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_connections(self, n: int) -> FakeConnection:
        await self.wait(lambda: len(self.connections) >= n)
        return self.connections[n - 1]

    async def wait_request(self, command: str, n: int = 1) -> FakeRequest:
        def matching() -> list[FakeRequest]:
            return [r for r in self.requests if r.command == command]

        await self.wait(lambda: len(matching()) >= n)
        return matching()[n - 1]

    def commands(self, conn: FakeConnection | None = None) -> list[str]:
        return [r.command for r in self.requests if conn is None or r.connection is conn]
