"""The picows transport (extra ``mesh-py[fast]``): ``MeshServer(transport="picows")``.

picows (a Cython WebSocket library) parses frames into a growing read buffer and calls a
:class:`picows.WSListener` per frame. This module is the listening side and the upgrade
decision; each accepted connection is a
:class:`~mesh_server.transport.picows_connection.PicowsConnection`.

* **Listening**: ``picows.ws_create_server`` (``loop.create_server`` underneath) with the
  configurable backlog; picows sets ``TCP_NODELAY``.
* **Requests**: picows hands every parsed HTTP request to one synchronous factory *before* it
  validates the upgrade headers, and writes whatever the factory answers. So the factory sorts
  requests as the seam requires: no ``Upgrade: websocket`` header → :attr:`TransportHooks.on_http`
  (health endpoints) or ``426``; an upgrade missing its ``Connection``/``Sec-WebSocket-*``
  headers → ``400``; a valid upgrade → :attr:`TransportHooks.on_upgrade`. picows only accepts
  ``GET`` requests without a body, and ``Connection: upgrade`` as the header's whole value
  (``Connection: keep-alive, Upgrade`` is refused with ``400``).
* **Decisions are synchronous** (the seam's direct form): the factory must return before
  picows writes the ``101``. An ``authenticate`` hook that returns an awaitable is refused with
  ``500`` and logged; :class:`MeshServer <mesh_server.MeshServer>` rejects a coroutine
  ``authenticate`` with this transport up front.
* **The peer address** is not known to the factory (picows passes only the request), so
  ``authenticate`` sees ``request.peer`` as ``None``; it is filled in when the WebSocket opens,
  before ``on_connect`` (``connection.remote_address``).
* **Liveness** is application-level (protocol.md §6): picows' auto-ping is off; its auto-pong
  answers protocol-level pings.
* **Memory**: picows' read buffer starts at ``read_buffer_size`` bytes (default 1 KiB instead of
  picows' 16 KiB; picows 2.3 raises anything below 2 KiB to 2 KiB) and doubles when a frame needs
  it; a ``LoggerAdapter`` keeps picows from creating one ``Logger`` per connection. What stays
  per idle connection on picows' side (~4 KB: the 2 KiB read buffer, a 1 KiB write buffer, the
  upgrade request and response kept as read-only attributes) is not ours to shrink.
* **Writing**: a fan-out frames its payload once (:class:`~.framing.FrameCache`)
  and writes the same bytes to each connection's asyncio transport.
* No permessage-deflate (picows does not implement it; protocol.md §2 makes it optional).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import socket
from base64 import b64decode
from collections.abc import Awaitable, Coroutine
from http import HTTPStatus
from typing import Any

from multidict import CIMultiDict
from picows import (
    WSListener,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from mesh_server.transport.base import (
    DEFAULT_BACKLOG,
    Accept,
    HttpResponse,
    TransportHooks,
    UpgradeRequest,
)
from mesh_server.transport.framing import FrameCache
from mesh_server.transport.picows_connection import PicowsConnection

__all__ = ["PicowsConnection", "PicowsTransport"]

_log = logging.getLogger("mesh_server.transport.picows")
# picows builds a child Logger per connection from a Logger (kept forever in the logging
# registry); an adapter is used as is.
_PICOWS_LOG = logging.LoggerAdapter(logging.getLogger("picows.server"))

DEFAULT_READ_BUFFER_SIZE = 1024
"""Initial size of each connection's read buffer, in bytes (it doubles when a frame needs it)."""


class _Status(int):
    """An HTTP status for picows' response writer, which reads ``.value`` and ``.phrase``."""

    phrase: str

    def __new__(cls, status: int, phrase: str) -> _Status:
        self = super().__new__(cls, status)
        self.phrase = phrase
        return self

    @property
    def value(self) -> int:
        """The numeric status."""
        return int(self)


class PicowsTransport:
    """Serve Mesh connections with picows.

    Args:
        host: Interface to bind.
        port: TCP port (``0``: any free port, see :attr:`port`).
        max_message_size: Inbound message limit in bytes, over all fragments of a message
            (larger → close 1009, protocol.md §2).
        backlog: Listen backlog (pending TCP connections); the kernel caps it at
            ``net.core.somaxconn``.
        open_timeout: Seconds allowed for the client to send its upgrade request (``None``:
            no limit). Decisions are synchronous, so this bounds the whole handshake.
        close_timeout: Seconds to wait for the closing handshake before aborting the socket.
        read_buffer_size: Initial per-connection read buffer in bytes (grows on demand).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_size: int,
        backlog: int = DEFAULT_BACKLOG,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        read_buffer_size: int = DEFAULT_READ_BUFFER_SIZE,
    ) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if read_buffer_size < 64:
            raise ValueError("read_buffer_size must be at least 64 bytes")
        self.host = host
        self.max_message_size = max_message_size
        self.backlog = backlog
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.read_buffer_size = read_buffer_size
        self.live: set[PicowsConnection] = set()
        """Open WebSocket connections (from the ``101`` to TCP close)."""
        self._port = port
        self._hooks: TransportHooks | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._frames = FrameCache()

    def wire(self, frame: bytes) -> bytes:
        """Return ``frame`` as one text frame on the wire, encoded once per fan-out."""
        return self._frames.wire(frame)

    @property
    def hooks(self) -> TransportHooks:
        """The core's hooks (set by :meth:`start`)."""
        if self._hooks is None:
            raise RuntimeError("transport not started")
        return self._hooks

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the transport serves on (set by :meth:`start`)."""
        if self._loop is None:
            raise RuntimeError("transport not started")
        return self._loop

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an ``on_connect`` coroutine as a task, referenced until it finishes."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("connection task failed", exc_info=task.exception())

    async def start(self, hooks: TransportHooks) -> None:
        """Bind and start accepting connections."""
        self._hooks = hooks
        self._loop = asyncio.get_running_loop()
        self._server = await ws_create_server(
            self._on_request,
            self.host,
            self._port,
            backlog=self.backlog,
            websocket_handshake_timeout=self.open_timeout,
            logger_name=_PICOWS_LOG,
            enable_auto_ping=False,
            enable_auto_pong=True,
            # Frames above the message limit are refused by picows itself (1009); fragments
            # are summed by the connection.
            max_frame_size=self.max_message_size,
            read_buffer_init_size=self.read_buffer_size,
            use_aiofastnet=False,
        )

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("transport not started")
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("transport has no listening socket")

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before :meth:`start` and after :meth:`close`)."""
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    async def close(self) -> None:
        """Release the listener, close what is still open (1001) and wait for the sockets."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close()
        connections = list(self.live)
        for connection in connections:
            connection.start_close(1001, "server shutdown")
        await asyncio.gather(*(connection.wait_closed() for connection in connections))
        await server.wait_closed()

    # ------------------------------------------------------------------ requests (§5.1)

    def _on_request(self, request: WSUpgradeRequest) -> WSListener | WSUpgradeResponseWithListener:
        path, _, query = request.path.decode("latin-1").partition("?")
        headers = request.headers
        view = UpgradeRequest(
            path, query_string=query, headers=headers, method=request.method.decode("latin-1")
        )
        if headers.get("Upgrade", "").lower() != "websocket":
            answer = self.hooks.on_http(view)
            if answer is None:
                answer = HttpResponse.text(426, "Upgrade Required")
            return _refusal(answer, (("Upgrade", "websocket"),) if answer.status == 426 else ())
        problem = _handshake_problem(headers)
        if problem is not None:
            return _refusal(HttpResponse.text(400, f"Failed to open a WebSocket: {problem}"))
        decision = self.hooks.on_upgrade(view)
        if not isinstance(decision, Accept | HttpResponse):
            # picows writes the response when this returns: there is no waiting for a hook.
            # The hook's awaitable is still awaited (and its outcome dropped), so nothing it
            # started is left unawaited.
            self.spawn(_discard(decision))
            _log.error("the picows transport needs a synchronous authenticate hook")
            decision = HttpResponse.text(500, "Internal Server Error")
        if isinstance(decision, HttpResponse):
            return _refusal(decision)
        return PicowsConnection(self, view, decision.value)


async def _discard(decision: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await decision


def _handshake_problem(headers: Any) -> str | None:
    """What makes an upgrade request invalid (RFC 6455 §4.2.1), or ``None``."""
    if headers.get("Connection", "").lower() != "upgrade":
        return "Connection header must be 'Upgrade'"
    if headers.get("Sec-WebSocket-Version") != "13":
        return "unsupported Sec-WebSocket-Version"
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(b64decode(key.encode("ascii"), validate=True)) != 16:
            return "invalid Sec-WebSocket-Key"
    except (UnicodeEncodeError, binascii.Error):
        return "invalid Sec-WebSocket-Key"
    return None


def _refusal(
    answer: HttpResponse, extra: tuple[tuple[str, str], ...] = ()
) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse()
    response.version = b"HTTP/1.1"
    try:
        response.status = HTTPStatus(answer.status)
    except ValueError:  # a status http does not name: picows only reads .value and .phrase
        response.status = _Status(answer.status, answer.reason)  # type: ignore[assignment]
    response.headers = CIMultiDict([("Content-Type", answer.content_type), *extra, *answer.headers])
    if not answer.body:
        response.headers["Content-Length"] = "0"  # picows adds it only for a non-empty body
    response.body = answer.body
    return WSUpgradeResponseWithListener(response, None)
