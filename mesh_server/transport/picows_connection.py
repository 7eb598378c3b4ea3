"""One picows connection: a ``picows.WSListener`` that is a ``TransportConnection``.

* **Reading**: picows calls :meth:`PicowsConnection.on_ws_frame` once per frame, from its read
  callback. Complete data messages go straight to the core's callback; fragments are joined
  here, their total bounded by the message limit (close 1009, protocol.md §2), and a continuation
  without a start (or a new message inside one) closes with 1002. picows refuses a single
  frame above the limit itself (1009) and answers protocol-level pings.
* **Writing**: the frame comes pre-framed from the transport (:meth:`Owner.wire`, once per
  fan-out) and goes to the asyncio transport in one ``write``; the write buffer's high-water
  mark drives ``pending_frames`` (protocol.md §15).
* **Closing**: the close frame picows does not answer itself is answered here (the code echoed,
  RFC 6455 §5.5.1), then the server closes TCP; after our own close frame the close timeout
  bounds the wait for the peer's, then the socket is aborted.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from picows import WSFrame, WSListener, WSMsgType, WSTransport

from mesh_server.transport.base import TransportHooks, UpgradeRequest

__all__ = ["Owner", "PicowsConnection"]

_log = logging.getLogger("mesh_server.transport.picows")

# High-water mark of asyncio's write buffer; above it, frames are counted as pending (§15).
_WRITE_HIGH = 64 * 1024
_WRITE_LOW = 16 * 1024
# Messages held before the core installs its callback; reading pauses beyond this.
_EARLY_LIMIT = 16
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONT = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_CODE = struct.Struct("!H")
_NO_STATUS = 1005  # RFC 6455 §7.4.1: a close frame without a code
_ABNORMAL = 1006


class Owner(Protocol):
    """What a connection needs from the transport that accepted it."""

    max_message_size: int
    close_timeout: float
    live: set[PicowsConnection]

    @property
    def hooks(self) -> TransportHooks:
        """The core's hooks."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an ``on_connect`` coroutine as a task."""

    def wire(self, frame: bytes) -> bytes:
        """Return ``frame`` as one text frame on the wire."""


def _noop() -> None:
    """Placeholder connection-lost callback."""


class PicowsConnection(WSListener):
    """One accepted WebSocket on picows (implements ``TransportConnection``)."""

    __slots__ = (
        "_close_code",
        "_closing",
        "_early",
        "_fragments",
        "_lost",
        "_on_lost",
        "_on_message",
        "_owner",
        "_paused",
        "_pending_frames",
        "_size",
        "_tcp",
        "_timer",
        "_ws",
        "accepted",
        "upgrade",
    )

    def __init__(self, owner: Owner, upgrade: UpgradeRequest, accepted: Any) -> None:
        self._owner = owner
        self.upgrade = upgrade
        """The upgrade request (see :class:`mesh_server.transport.base.UpgradeRequest`)."""
        self.accepted = accepted
        """:attr:`~mesh_server.transport.base.Accept.value` of the upgrade decision."""
        self._ws: WSTransport | None = None
        self._tcp: asyncio.Transport | None = None
        self._on_message: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] = _noop
        self._early: list[bytes] = []
        self._fragments: list[bytes] | None = None
        self._size = 0
        self._paused = False
        self._pending_frames = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._lost = False
        self._close_code: int | None = None

    # ------------------------------------------------------------------ TransportConnection

    @property
    def is_open(self) -> bool:
        """Whether frames can still be written."""
        return not self._closing and not self._lost

    @property
    def buffered_amount(self) -> int:
        """Bytes in asyncio's write buffer."""
        tcp = self._tcp
        return 0 if tcp is None else tcp.get_write_buffer_size()

    @property
    def pending_frames(self) -> int:
        """Frames written since the write buffer last rose above its high-water mark."""
        return self._pending_frames if self._paused else 0

    @property
    def close_code(self) -> int | None:
        """The close code received from the peer (1006 without one), once closed."""
        if self._close_code is None and self._lost:
            return _ABNORMAL
        return self._close_code

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        """Install the callbacks and deliver messages that arrived before (protocol.md §5.2)."""
        self._on_lost = on_lost
        early, self._early = self._early, []
        if len(early) >= _EARLY_LIMIT:
            self.resume_reading()
        self._on_message = on_message
        for data in early:
            if self._on_message is None:  # pragma: no cover - closed by an early message
                break
            on_message(data)
        if self._lost:
            on_lost()

    def write_frame(self, frame: bytes) -> bool:
        """Write one frame as a text frame, synchronously.

        Returns:
            Whether writing is paused (the write buffer is above its high-water mark).
        """
        tcp = self._tcp
        if tcp is None or self._closing or self._lost:
            return False
        tcp.write(self._owner.wire(frame))
        if self._paused:
            self._pending_frames += 1
            return True
        return False

    def start_close(self, code: int, reason: str = "") -> None:
        """Send a close frame with ``code`` now; abort the socket if the peer does not answer."""
        ws = self._ws
        if ws is None or self._closing or self._lost:
            return
        self._closing = True
        # picows types the code as its WSCloseCode enum; the C layer takes any 16-bit code,
        # which the core's 4000-range codes need (protocol.md §16).
        ws.send_close(code, reason.encode())  # type: ignore[arg-type]
        self._timer = self._owner.loop.call_later(self._owner.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self._ws is not None and not self._lost:
            self._ws.disconnect(graceful=False)

    def pause_reading(self) -> None:
        """Stop reading from the socket (backpressure, protocol.md §15)."""
        if self._tcp is not None and not self._lost:
            self._tcp.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading from the socket."""
        if self._tcp is not None and not self._lost:
            self._tcp.resume_reading()

    async def wait_closed(self) -> None:
        """Return once the TCP connection is closed."""
        if self._ws is not None and not self._lost:
            await self._ws.wait_disconnected()

    # ------------------------------------------------------------------ WSListener

    def on_ws_connected(self, transport: WSTransport) -> None:
        """The ``101`` is written: hand the connection to the core."""
        self._ws = transport
        self._tcp = tcp = transport.underlying_transport
        tcp.set_write_buffer_limits(_WRITE_HIGH, _WRITE_LOW)
        peer = tcp.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.upgrade.peer = (str(peer[0]), int(peer[1]))
        owner = self._owner
        owner.live.add(self)
        owner.spawn(owner.hooks.on_connect(self))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Deliver data messages (fragments joined); answer the peer's close frame."""
        msg_type = frame.msg_type
        if msg_type is _TEXT or msg_type is _BINARY:
            if self._fragments is not None:
                self._fail(1002, "expected a continuation frame")
            elif frame.fin:
                self._deliver(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
                self._size = frame.payload_size
        elif msg_type is _CONT:
            fragments = self._fragments
            if fragments is None:
                self._fail(1002, "unexpected continuation frame")
                return
            self._size += frame.payload_size
            if self._size > self._owner.max_message_size:
                self._fragments = None
                self._fail(1009, "message too big")
                return
            fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                self._fragments = None
                self._deliver(b"".join(fragments))
        elif msg_type is _CLOSE:
            self._on_close_frame(transport, frame)
        # Pings were answered by picows (auto-pong); pongs carry nothing for the core.

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Tell the core once the TCP connection is gone."""
        self._lost = True
        self._fragments = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner.live.discard(self)
        self._on_message = None
        if self._on_lost is not _noop:
            self._on_lost()

    def pause_writing(self) -> None:
        """Count frames written while above the high-water mark from now on."""
        self._paused = True
        self._pending_frames = 0

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark."""
        self._paused = False

    # ------------------------------------------------------------------ internals

    def _deliver(self, data: bytes) -> None:
        if self._closing:
            return  # after our close frame (RFC 6455 §1.4): data is no longer processed
        on_message = self._on_message
        if on_message is None:
            # Before mesh/assign-id (protocol.md §5.2 step 4): hold messages, and stop reading so a
            # client cannot make the server buffer without bound while hooks run.
            self._early.append(data)
            if len(self._early) == _EARLY_LIMIT:
                self.pause_reading()
        else:
            on_message(data)

    def _on_close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        payload = frame.get_payload_as_bytes()
        code = _CODE.unpack_from(payload)[0] if len(payload) >= 2 else _NO_STATUS
        self._close_code = code
        if not self._closing:
            # The peer started closing: echo its code (none → an empty close frame).
            self._closing = True
            if code == _NO_STATUS:
                transport.send(_CLOSE, b"")
            else:
                transport.send_close(code)  # type: ignore[arg-type]
        # RFC 6455 §7.1.1: the server closes TCP once the closing handshake is done.
        transport.disconnect()

    def _fail(self, code: int, reason: str) -> None:
        _log.debug("closing %s: %s", self.upgrade.peer, reason)
        self.start_close(code, reason)
