"""The default transport: websockets' sans-I/O ``ServerProtocol`` under our own asyncio protocol.

Only websockets' public API is used (``websockets.server.ServerProtocol``, ``websockets.http11``,
``websockets.frames``, ``websockets.extensions.permessage_deflate``), so every release that
``pyproject.toml`` allows works. The adapter owns what websockets' asyncio layer would otherwise
do, and does less of it per connection and per frame. This module is the listening side; each
connection (handshake, reading, closing) is a
:class:`~mesh_server.transport.websockets_connection.WebsocketsConnection`.

* **Listening**: ``loop.create_server`` with a configurable backlog (default
  :data:`~mesh_server.transport.base.DEFAULT_BACKLOG`; the kernel caps it at ``somaxconn``), so
  a connection storm queues in the kernel instead of overflowing it into SYN retransmits.
* **Handshake**: when the core decides synchronously, the ``101`` is written from the read
  callback: no task and no future per handshake; the query and cookies are parsed only if a
  hook asks for them.
* **Writing**: without permessage-deflate, server text frames are the same bytes for every
  recipient (unmasked, RFC 6455 §5.2), so a fan-out frames its payload once and writes that
  object N times (:meth:`WebsocketsTransport.wire`); with compression,
  ``ServerProtocol.send_text`` encodes each frame. The write buffer is bounded by the core
  (protocol.md §15).
* **Liveness** is application-level (protocol.md §6): no keepalive pings here.
* permessage-deflate is off unless enabled (protocol.md §2).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from websockets.extensions.permessage_deflate import enable_server_permessage_deflate

from mesh_server.transport.base import DEFAULT_BACKLOG, TransportHooks
from mesh_server.transport.framing import FrameCache
from mesh_server.transport.websockets_connection import WebsocketsConnection

__all__ = ["WebsocketsConnection", "WebsocketsTransport"]

_log = logging.getLogger("websockets.server")


class WebsocketsTransport:
    """Serve Mesh connections with websockets' sans-I/O protocol.

    Args:
        host: Interface to bind.
        port: TCP port (``0``: any free port, see :attr:`port`).
        max_message_size: Inbound message limit in bytes (larger → close 1009, protocol.md §2).
        backlog: Listen backlog (pending TCP connections); the kernel caps it at
            ``net.core.somaxconn``.
        compression: Enable permessage-deflate (off by default, protocol.md §2).
        open_timeout: Seconds allowed for the opening handshake, hooks included (``None``: no
            limit).
        close_timeout: Seconds to wait for the closing handshake before aborting the socket.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_size: int,
        backlog: int = DEFAULT_BACKLOG,
        compression: bool = False,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
    ) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        self.host = host
        self.max_message_size = max_message_size
        self.backlog = backlog
        self.extensions = enable_server_permessage_deflate(None) if compression else None
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.live: set[WebsocketsConnection] = set()
        """Connections from TCP accept to TCP close."""
        self.closing = False
        """:meth:`close` began: a connection accepted from now on is dropped at once."""
        self._port = port
        self._hooks: TransportHooks | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._deciding: set[asyncio.Task[None]] = set()
        self._frames = FrameCache()

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

    def wire(self, frame: bytes) -> bytes:
        """Return ``frame`` as one uncompressed text frame on the wire, encoded once per fan-out.

        A push to N connections writes the same ``bytes`` object N times (encode once): the
        frame is only framed again when a different object comes along.
        """
        return self._frames.wire(frame)

    def track(self, task: asyncio.Task[None], *, deciding: bool = False) -> None:
        """Keep a connection task referenced until it finishes.

        Args:
            task: An ``on_connect`` task, or one awaiting an upgrade decision.
            deciding: It awaits an upgrade decision (cancelled by :meth:`close`).
        """
        (self._deciding if deciding else self._tasks).add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._deciding.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("connection task failed", exc_info=task.exception())

    async def start(self, hooks: TransportHooks) -> None:
        """Bind and start accepting connections."""
        self._hooks = hooks
        self.closing = False
        self._loop = loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: WebsocketsConnection(self), self.host, self._port, backlog=self.backlog
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
        self.closing = True
        await self._stop_accepting(server)
        server.close()
        connections = list(self.live)
        for connection in connections:
            connection.shutdown()
        await asyncio.gather(*(connection.wait_closed() for connection in connections))
        deciding = list(self._deciding)
        for task in deciding:  # their sockets are gone: stop waiting for authenticate hooks
            task.cancel()
        await asyncio.gather(*deciding, return_exceptions=True)
        await server.wait_closed()

    async def _stop_accepting(self, server: asyncio.Server) -> None:
        """Stop accepting, then let the sockets accepted so far get their protocol.

        On the selector loop of Python 3.11 a socket accepted just before ``Server.close()``
        is set up after it, fails the closed server's bookkeeping silently and stays open
        with nobody to close it (the client then waits for its open timeout). Removing the
        listening readers first and yielding once lets the set-up tasks already scheduled
        run while the server is open: each becomes a connection :meth:`close` shuts down.
        """
        loop = self.loop
        if not isinstance(loop, asyncio.SelectorEventLoop):
            return  # the work-around is for the selector loop's accept path only
        for sock in server.sockets:
            loop.remove_reader(sock.fileno())
        await asyncio.sleep(0)  # one turn: the scheduled set-up tasks run before close()
