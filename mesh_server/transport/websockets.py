"""The ``websockets`` (asyncio API) adapter of :mod:`mesh_server.transport.base`.

Hot-path choices (cf. ``websockets.asyncio.server.broadcast``):

* **Reading** bypasses ``recv()`` and its message queue: :class:`MeshServerConnection` overrides
  ``process_event`` and hands each complete data message straight to the core's callback, from
  ``data_received``, with no future or coroutine per frame. Fragmented messages are joined here;
  websockets enforces ``max_size`` over the whole message and fails the connection with 1009
  (PROTOCOL §2).
* **Writing** calls ``protocol.send_text`` + ``send_data()`` (one ``transport.write``) instead of
  ``await send()``: no coroutine and no drain per frame. The write buffer is bounded by the core
  (PROTOCOL §15) through :attr:`buffered_amount` and :attr:`pending_frames`.
* websockets' own keepalive is disabled (``ping_interval=None``): liveness is application-level
  (PROTOCOL §2, §6). Protocol-level pings from clients are still answered by websockets.
* permessage-deflate is off unless enabled (PROTOCOL §2).
"""

from __future__ import annotations

import asyncio
import http.cookies
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from mesh_server.transport.base import (
    ConnectHandler,
    Rejection,
    UpgradeHook,
    UpgradeRequest,
)

__all__ = ["MeshServerConnection", "WebsocketsTransport"]

_log = logging.getLogger("websockets.server")

# High-water mark of asyncio's write buffer; above it, frames are counted as pending (§15).
_WRITE_HIGH = 64 * 1024
_WRITE_LOW = 16 * 1024
# Frames held before the core installs its callback; reading pauses beyond this.
_EARLY_LIMIT = 16
_OPEN = State.OPEN
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT


def _noop_message(data: bytes) -> None:
    """Placeholder callback (never called: messages are buffered until handlers are set)."""


def _noop() -> None:
    """Placeholder connection-lost callback."""


class MeshServerConnection(ServerConnection):
    """A websockets server connection that feeds complete messages to one callback."""

    accepted: Any = None
    upgrade_request: UpgradeRequest | None = None
    close_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_message: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] = _noop
        self._early: list[bytes] = []
        self._fragments: list[bytes] | None = None
        self._pending_frames = 0
        self._abort_handle: asyncio.TimerHandle | None = None
        self._lost = False

    # ------------------------------------------------------------------ TransportConnection

    @property
    def upgrade(self) -> UpgradeRequest:
        """The upgrade request (see :class:`mesh_server.transport.base.UpgradeRequest`)."""
        if self.upgrade_request is None:
            raise RuntimeError("connection has no upgrade request yet")
        return self.upgrade_request

    @property
    def is_open(self) -> bool:
        """Whether frames can still be written."""
        return self.protocol.state is _OPEN

    @property
    def buffered_amount(self) -> int:
        """Bytes in asyncio's write buffer."""
        return self.transport.get_write_buffer_size()

    @property
    def pending_frames(self) -> int:
        """Frames written since the write buffer last rose above its high-water mark."""
        return self._pending_frames if self.paused else 0

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        """Install the callbacks and deliver messages that arrived before (PROTOCOL §5.2)."""
        self._on_lost = on_lost
        early, self._early = self._early, []
        if len(early) >= _EARLY_LIMIT and not self._lost:
            self.transport.resume_reading()
        self._on_message = on_message
        for data in early:
            if self._on_message is None:  # pragma: no cover - closed by an early message
                break
            on_message(data)
        if self._lost:
            on_lost()

    def write_frame(self, frame: bytes) -> bool:
        """Write one frame as a text frame, synchronously (no coroutine per frame).

        Returns:
            Whether writing is paused (the write buffer is above its high-water mark).
        """
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return False
        protocol.send_text(frame)
        self.send_data()
        if self.paused:
            self._pending_frames += 1
            return True
        return False

    def start_close(self, code: int, reason: str = "") -> None:
        """Send a close frame with ``code`` now; abort the socket if the peer does not answer."""
        protocol = self.protocol
        if protocol.state is _OPEN:
            protocol.send_close(code, reason)
            try:
                self.send_data()
            except Exception:  # transport already broken: connection_lost follows
                _log.debug("error while sending close frame", exc_info=True)
            if self._abort_handle is None and not self._lost:
                self._abort_handle = self.loop.call_later(self.close_timeout_s, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        self.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (backpressure, PROTOCOL §15)."""
        if not self._lost:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading from the socket."""
        if not self._lost:
            self.transport.resume_reading()

    # ------------------------------------------------------------------ websockets hooks

    def process_event(self, event: Any) -> None:
        """Deliver complete data messages to the core; everything else goes to websockets."""
        if self.request is None or not isinstance(event, Frame):
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode is _TEXT or opcode is _BINARY:
            data = event.data if type(event.data) is bytes else bytes(event.data)
            if event.fin:
                self._deliver(data)
            else:
                self._fragments = [data]
        elif opcode is _CONT:
            if self._fragments is not None:
                self._fragments.append(bytes(event.data))
                if event.fin:
                    data = b"".join(self._fragments)
                    self._fragments = None
                    self._deliver(data)
        else:
            super().process_event(event)

    def _deliver(self, data: bytes) -> None:
        on_message = self._on_message
        if on_message is None:
            # Before mesh/assign-id (PROTOCOL §5.2 step 4): hold frames, and stop reading so a
            # client cannot make the server buffer without bound while hooks run.
            self._early.append(data)
            if len(self._early) == _EARLY_LIMIT and not self._lost:
                self.transport.pause_reading()
        else:
            on_message(data)

    def pause_writing(self) -> None:
        """Count frames written while above the high-water mark from now on."""
        super().pause_writing()
        self._pending_frames = 0

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the core once the TCP connection is gone."""
        super().connection_lost(exc)
        self._lost = True
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        self._on_message = None
        if self._on_lost is not _noop:
            self._on_lost()


def _upgrade_request(connection: MeshServerConnection, request: Request) -> UpgradeRequest:
    split = urlsplit(request.path)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    cookies: dict[str, str] = {}
    for header in request.headers.get_all("Cookie"):
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(header)
        except http.cookies.CookieError:
            continue
        cookies.update({name: morsel.value for name, morsel in jar.items()})
    peer = connection.transport.get_extra_info("peername")
    peer_tuple = (
        (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
    )
    return UpgradeRequest(
        path=split.path,
        query=query,
        query_string=split.query,
        headers=request.headers,
        cookies=cookies,
        peer=peer_tuple,
    )


def _reject(connection: ServerConnection, status: int, message: str) -> Response:
    try:
        return connection.protocol.reject(status, message)
    except ValueError:  # a status http.HTTPStatus does not know
        body = message.encode()
        headers = Headers(
            [
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
        )
        return Response(status, "Error", headers, body)


class WebsocketsTransport:
    """Serve Mesh connections with the ``websockets`` asyncio implementation.

    Args:
        max_message_size: Inbound message limit in bytes (larger → close 1009, PROTOCOL §2).
        compression: Enable permessage-deflate (off by default, PROTOCOL §2).
        close_timeout: Seconds to wait for the closing handshake before aborting the socket.
    """

    def __init__(
        self,
        *,
        max_message_size: int,
        compression: bool = False,
        close_timeout: float = 10.0,
    ) -> None:
        self.max_message_size = max_message_size
        self.compression = compression
        self.close_timeout = close_timeout
        self._server: Server | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        on_upgrade: UpgradeHook,
        on_connect: ConnectHandler,
    ) -> None:
        """Bind and start accepting connections."""
        close_timeout = self.close_timeout

        async def process_request(
            connection: ServerConnection, request: Request
        ) -> Response | None:
            conn = cast(MeshServerConnection, connection)
            conn.close_timeout_s = close_timeout
            upgrade = _upgrade_request(conn, request)
            conn.upgrade_request = upgrade
            outcome = await on_upgrade(upgrade)
            if isinstance(outcome, Rejection):
                return _reject(connection, outcome.status, outcome.message)
            conn.accepted = outcome
            return None

        async def handler(connection: ServerConnection) -> None:
            await on_connect(cast(MeshServerConnection, connection))

        self._server = await serve(
            handler,
            host,
            port,
            compression="deflate" if self.compression else None,
            process_request=process_request,
            ping_interval=None,  # §2: liveness is application-level (§6)
            ping_timeout=None,
            close_timeout=self.close_timeout,
            max_size=self.max_message_size,
            max_queue=None,  # reading is not done through websockets' queue
            write_limit=(_WRITE_HIGH, _WRITE_LOW),
            create_connection=MeshServerConnection,
            server_header=None,
            logger=_log,
        )

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("transport not started")
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("transport has no listening socket")

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are unaffected."""
        if self._server is not None:
            self._server.server.close()

    async def close(self) -> None:
        """Stop serving and wait for the connection handlers to return."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.close(close_connections=True)
        await server.wait_closed()
