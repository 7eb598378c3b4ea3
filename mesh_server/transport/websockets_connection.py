"""One connection of the websockets adapter: HTTP handshake, then WebSocket frames.

:class:`WebsocketsConnection` is an ``asyncio.Protocol`` driving websockets' sans-I/O
``ServerProtocol`` (public API only) and implementing
:class:`~mesh_server.transport.base.TransportConnection` for the core:

* **Handshake**: ``ServerProtocol`` parses the request and ``accept()`` validates it before the
  core's hooks run, so a plain or malformed request never reaches ``authenticate``. A direct
  decision writes the ``101`` from the same ``data_received`` call; an awaitable one pauses
  reading until it resolves. Frames pipelined behind the request wait for the ``101``. The open
  timeout bounds the whole handshake, hooks included.
* **Reading**: complete data messages go straight to the core's callback from
  ``data_received`` (no receive queue, no coroutine per frame); fragments are joined here, and
  ``ServerProtocol`` enforces ``max_size`` over the whole message (close 1009, protocol.md §2).
  Protocol-level pings are answered by ``ServerProtocol``.
* **Writing**: one ``transport.write`` per frame, no drain; frames come pre-framed from the
  server (:meth:`Owner.wire`) unless permessage-deflate may be in use.
* **Closing**: a close frame, then the close timeout for the peer to close TCP, then abort.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from websockets.datastructures import Headers
from websockets.extensions import ServerExtensionFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from mesh_server.transport.base import (
    Accept,
    HttpResponse,
    TransportHooks,
    UpgradeDecision,
    UpgradeRequest,
)

__all__ = ["Owner", "WebsocketsConnection"]

_log = logging.getLogger("websockets.server")

# High-water mark of asyncio's write buffer; above it, frames are counted as pending (§15).
_WRITE_HIGH = 64 * 1024
_WRITE_LOW = 16 * 1024
# Messages held before the core installs its callback; reading pauses beyond this.
_EARLY_LIMIT = 16
_OPEN = State.OPEN
_CONNECTING = State.CONNECTING
_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT


class Owner(Protocol):
    """What a connection needs from the server that accepted it."""

    extensions: Sequence[ServerExtensionFactory] | None
    max_message_size: int
    open_timeout: float | None
    close_timeout: float
    live: set[WebsocketsConnection]

    @property
    def hooks(self) -> TransportHooks:
        """The core's hooks."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop."""

    def track(self, task: asyncio.Task[None], *, deciding: bool = False) -> None:
        """Keep a connection task referenced until it finishes."""

    def wire(self, frame: bytes) -> bytes:
        """Return ``frame`` as one uncompressed text frame on the wire."""


def _noop() -> None:
    """Placeholder connection-lost callback."""


class WebsocketsConnection(asyncio.Protocol):
    """One TCP connection: HTTP handshake, then a WebSocket (a ``TransportConnection``)."""

    __slots__ = (
        "_closed",
        "_closing",
        "_early",
        "_fragments",
        "_held",
        "_lost",
        "_on_lost",
        "_on_message",
        "_owner",
        "_paused",
        "_pending_frames",
        "_timer",
        "_transport",
        "_upgrade",
        "_ws",
        "accepted",
    )

    _transport: asyncio.Transport  # set by connection_made, before anything else runs

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._ws = ServerProtocol(
            extensions=owner.extensions, max_size=owner.max_message_size, logger=_log
        )
        self._upgrade: UpgradeRequest | None = None
        self.accepted: Any = None
        self._on_message: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] = _noop
        self._early: list[bytes] = []
        self._fragments: list[bytes] | None = None
        self._held: list[Any] | None = None
        self._paused = False
        self._pending_frames = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._lost = False
        self._closed: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ TransportConnection

    @property
    def upgrade(self) -> UpgradeRequest:
        """The upgrade request (see :class:`mesh_server.transport.base.UpgradeRequest`)."""
        if self._upgrade is None:
            raise RuntimeError("connection has no upgrade request yet")
        return self._upgrade

    @property
    def is_open(self) -> bool:
        """Whether frames can still be written."""
        return self._ws.state is _OPEN

    @property
    def buffered_amount(self) -> int:
        """Bytes in asyncio's write buffer."""
        return self._transport.get_write_buffer_size()

    @property
    def pending_frames(self) -> int:
        """Frames written since the write buffer last rose above its high-water mark."""
        return self._pending_frames if self._paused else 0

    @property
    def close_code(self) -> int | None:
        """The close code received from the peer (1006 without one), once closed."""
        return self._ws.close_code

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
        """Write one frame as a text frame, synchronously (no coroutine per frame).

        Returns:
            Whether writing is paused (the write buffer is above its high-water mark).
        """
        ws = self._ws
        if ws.state is not _OPEN:
            return False
        owner = self._owner
        if owner.extensions is None:
            self._transport.write(owner.wire(frame))
        else:  # permessage-deflate may be in use: ServerProtocol encodes each frame
            ws.send_text(frame)
            write = self._transport.write
            for data in ws.data_to_send():  # send_text never ends the stream: data only
                write(data)
        if self._paused:
            self._pending_frames += 1
            return True
        return False

    def start_close(self, code: int, reason: str = "") -> None:
        """Send a close frame with ``code`` now; abort the socket if the peer does not answer."""
        if self._ws.state is _OPEN:
            self._ws.send_close(code, reason)
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        self._transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (backpressure, protocol.md §15)."""
        if not self._lost:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume reading from the socket."""
        if not self._lost:
            self._transport.resume_reading()

    async def wait_closed(self) -> None:
        """Return once the TCP connection is closed."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the open timeout; the handshake is read by :meth:`data_received`."""
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(_WRITE_HIGH, _WRITE_LOW)
        owner = self._owner
        owner.live.add(self)
        if owner.open_timeout is not None:
            self._timer = owner.loop.call_later(owner.open_timeout, self._handshake_timed_out)

    def data_received(self, data: bytes) -> None:
        """Feed bytes to ``ServerProtocol``, answer what it asks, deliver what it parsed."""
        ws = self._ws
        if self._upgrade is None:
            if self._closing:
                return  # answered with a plain HTTP response: nothing more is read
            ws.receive_data(data)
            events = ws.events_received()
            if events:
                self._on_request(events[0], events[1:])
            self._flush()
            return
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()  # pongs and close echoes first, as websockets does
        if events:
            self._on_events(events)

    def eof_received(self) -> bool | None:
        """Let ``ServerProtocol`` see the end of the stream; asyncio then closes the socket."""
        self._ws.receive_eof()
        self._flush()
        return None

    def pause_writing(self) -> None:
        """Count frames written while above the high-water mark from now on."""
        self._paused = True
        self._pending_frames = 0

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark."""
        self._paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the core once the TCP connection is gone."""
        self._ws.receive_eof()  # idempotent; the state becomes CLOSED
        self._lost = True
        self._cancel_timer()
        self._owner.live.discard(self)
        closed = self._closed
        if closed is not None and not closed.done():
            closed.set_result(None)
        self._on_message = None
        if self._on_lost is not _noop:
            self._on_lost()

    # ------------------------------------------------------------------ handshake (§5.1)

    def _on_request(self, request: Any, later: list[Any]) -> None:
        if not isinstance(request, Request):  # pragma: no cover - the first event is the request
            self.abort()
            return
        owner = self._owner
        peer = self._transport.get_extra_info("peername")
        path, _, query = request.path.partition("?")
        view = UpgradeRequest(
            path,
            query_string=query,
            headers=request.headers,
            peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
        )
        ws = self._ws
        response = ws.accept(request)
        if response.status_code != 101:
            # Not a valid upgrade: a plain request (health endpoints) or a malformed handshake.
            answer = owner.hooks.on_http(view)
            if answer is not None:
                self._send_plain(_http_response(answer))
                return
        if ws.close_expected():
            # What followed the request was no WebSocket frame: ServerProtocol gave up on the
            # connection and ends the stream (the caller flushes it); nothing is answered.
            return
        if response.status_code != 101:
            self._send_response(response)
            return
        self._upgrade = view
        # Frames a client pipelined behind its request wait for the 101 (or are dropped).
        self._held = later or None
        decision = owner.hooks.on_upgrade(view)
        if isinstance(decision, Accept | HttpResponse):
            self._decide(decision, response)
            return
        self._transport.pause_reading()
        owner.track(owner.loop.create_task(self._decide_later(decision, response)), deciding=True)

    async def _decide_later(self, decision: Awaitable[UpgradeDecision], response: Response) -> None:
        try:
            outcome = await decision
        except Exception:
            _log.exception("upgrade hook failed")
            outcome = HttpResponse.text(500, "Internal Server Error")
        if self._lost:
            return
        self._transport.resume_reading()
        self._decide(outcome, response)

    def _decide(self, decision: UpgradeDecision, response: Response) -> None:
        if isinstance(decision, HttpResponse):
            self._held = None
            self._send_response(_http_response(decision))
            return
        self.accepted = decision.value
        self._cancel_timer()
        self._ws.send_response(response)
        self._flush()
        owner = self._owner
        owner.track(owner.loop.create_task(owner.hooks.on_connect(self)))
        held, self._held = self._held, None
        if held:
            self._on_events(held)

    def _send_response(self, response: Response) -> None:
        self._ws.send_response(response)  # logs it, then ends the stream
        self._flush()

    def _send_plain(self, response: Response) -> None:
        # Written directly rather than through ServerProtocol, which would log every health
        # probe as a rejected connection; whatever it still wants to send is moot.
        self._transport.write(response.serialize())
        self._transport.close()
        self._ws.data_to_send()
        self._expect_close()

    def _handshake_timed_out(self) -> None:
        self._timer = None
        _log.debug("opening handshake timed out")
        self.abort()

    # ------------------------------------------------------------------ frames

    def _on_events(self, events: list[Any]) -> None:
        for event in events:
            if not isinstance(event, Frame):  # pragma: no cover - only frames after the request
                continue
            opcode = event.opcode
            if opcode is _TEXT or opcode is _BINARY:
                data = event.data if type(event.data) is bytes else bytes(event.data)
                if event.fin:
                    self._deliver(data)
                else:
                    self._fragments = [data]
            elif opcode is _CONT and self._fragments is not None:
                self._fragments.append(bytes(event.data))
                if event.fin:
                    data = b"".join(self._fragments)
                    self._fragments = None
                    self._deliver(data)
            # Ping, pong and close frames were handled by ServerProtocol.

    def _deliver(self, data: bytes) -> None:
        on_message = self._on_message
        if on_message is None:
            # Before mesh/assign-id (protocol.md §5.2 step 4): hold messages, and stop reading so a
            # client cannot make the server buffer without bound while hooks run.
            self._early.append(data)
            if len(self._early) == _EARLY_LIMIT:
                self.pause_reading()
        else:
            on_message(data)

    # ------------------------------------------------------------------ writing and closing

    def _flush(self) -> None:
        if self._lost:
            return
        tcp = self._transport
        for data in self._ws.data_to_send():
            if data:
                tcp.write(data)
            elif tcp.can_write_eof():
                # RFC 6455 §7.1.1: the server starts closing TCP; the peer closes its side.
                try:
                    tcp.write_eof()
                except (OSError, RuntimeError):  # uvloop raises RuntimeError when closing
                    tcp.close()
            else:
                tcp.close()
        if self._ws.close_expected():
            self._expect_close()

    def _expect_close(self) -> None:
        # The peer should now close TCP: replace the open timeout by the close timeout, once.
        if self._closing or self._lost:
            return
        self._closing = True
        self._cancel_timer()
        owner = self._owner
        self._timer = owner.loop.call_later(owner.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._timer = None
        self.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def shutdown(self) -> None:
        """Close for a server shutdown: 1001 when open, abort a handshake in progress."""
        state = self._ws.state
        if state is _OPEN:
            self.start_close(1001, "server shutdown")
        elif state is _CONNECTING and not self._closing:
            self.abort()


def _http_response(answer: HttpResponse) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(answer.body))),
            ("Content-Type", answer.content_type),
            *answer.headers,
        ]
    )
    return Response(answer.status, answer.reason, headers, answer.body)
