"""One WebSocket of the ASGI adapter, after ``websocket.accept``: a ``TransportConnection``.

:class:`AsgiConnection` turns the ASGI message exchange into the seam's synchronous calls:

* **Reading**: :meth:`AsgiConnection.read` (the application coroutine itself) awaits
  ``receive()`` and hands each ``websocket.receive`` straight to the core's callback, so there is
  no coroutine per message. Pausing means not calling ``receive()``: an ASGI server then stops
  reading the socket (uvicorn pauses its transport while a received message is unconsumed), so
  back-pressure reaches TCP. Messages over ``max_message_size`` close with 1009 (protocol.md §2).
* **Writing**: :meth:`AsgiConnection.write_frame` appends to a queue that one writer task drains
  into ``send()``. ASGI shows nothing of the server's socket buffer, so the bound is honest about
  what it sees: :attr:`AsgiConnection.buffered_amount` is the bytes queued whose ``send()`` has
  not completed, and :attr:`AsgiConnection.pending_frames` the frames queued since that rose
  above a high-water mark (64 KiB, as the native adapter). A server whose ``send()`` waits for
  its write buffer (uvicorn does) makes a slow consumer fill the queue, and the core closes it
  with 4001 (protocol.md §15); what the ASGI server buffers below its own high-water mark is not
  counted.
* **Closing**: the close frame follows the frames already queued; if they do not leave within
  the close timeout they are dropped. ASGI cannot abort a socket: the application returns and
  the ASGI server closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from mesh_server.transport.base import UpgradeRequest

__all__ = ["AsgiConnection", "Message", "Receive", "Scope", "Send"]

_log = logging.getLogger("mesh_server.transport.asgi")

Scope = MutableMapping[str, Any]
"""An ASGI connection scope."""

Message = MutableMapping[str, Any]
"""An ASGI event message."""

Receive = Callable[[], Awaitable[Message]]
"""The ASGI ``receive`` callable."""

Send = Callable[[Message], Awaitable[None]]
"""The ASGI ``send`` callable."""

# Above this many queued bytes, frames count as pending (the core's max_outbound_frames, §15).
_QUEUE_HIGH = 64 * 1024
_QUEUE_LOW = 16 * 1024
# Messages held before the core installs its callback; reading pauses beyond this (§5.2).
_EARLY_LIMIT = 16


class Owner(Protocol):
    """What a connection needs from the transport that accepted it."""

    max_message_size: int
    close_timeout: float
    live: set[AsgiConnection]

    def text(self, frame: bytes) -> str:
        """Return ``frame`` decoded, once per fan-out."""


def _noop() -> None:
    """Placeholder connection-lost callback."""


class AsgiConnection:
    """One accepted ASGI WebSocket (implements ``TransportConnection``)."""

    def __init__(
        self, owner: Owner, upgrade: UpgradeRequest, accepted: Any, receive: Receive, send: Send
    ) -> None:
        self._owner = owner
        self._upgrade = upgrade
        self.accepted = accepted
        self._receive = receive
        self._send = send
        self._on_message: Callable[[bytes], None] | None = None
        self._on_lost: Callable[[], None] = _noop
        self._early: list[bytes] = []
        self._readable = asyncio.Event()
        self._readable.set()
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._above = False
        self._pending_frames = 0
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False
        self._close_code: int | None = None
        self._closed = asyncio.Event()
        self._writer = asyncio.get_running_loop().create_task(self._write())

    # ------------------------------------------------------------------ TransportConnection

    @property
    def upgrade(self) -> UpgradeRequest:
        """The upgrade request, built from the ASGI scope."""
        return self._upgrade

    @property
    def is_open(self) -> bool:
        """Whether frames can still be written."""
        return self._close is None and not self._lost

    @property
    def buffered_amount(self) -> int:
        """Bytes queued whose ``send()`` has not completed (the ASGI server's own buffer aside)."""
        return self._queued

    @property
    def pending_frames(self) -> int:
        """Frames queued since the queue last rose above its high-water mark."""
        return self._pending_frames if self._above else 0

    @property
    def close_code(self) -> int | None:
        """The code of the ``websocket.disconnect`` message, once disconnected."""
        return self._close_code

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        """Install the callbacks and deliver messages that arrived before (protocol.md §5.2)."""
        self._on_lost = on_lost
        early, self._early = self._early, []
        self._on_message = on_message
        self._readable.set()
        for data in early:
            if self._on_message is None:  # closed by an early message
                break
            on_message(data)
        if self._lost:
            on_lost()

    def write_frame(self, frame: bytes) -> bool:
        """Queue one frame for ``send()`` (a text message), synchronously.

        Returns:
            Whether the queue is above its high-water mark.
        """
        if not self.is_open:
            return False
        self._queue.append(frame)
        self._queued += len(frame)
        self._wake.set()
        if self._above:
            self._pending_frames += 1
            return True
        if self._queued > _QUEUE_HIGH:
            self._above = True
            self._pending_frames = 0
            return True
        return False

    def start_close(self, code: int, reason: str = "") -> None:
        """Send ``websocket.close`` with ``code`` after the frames already queued.

        Frames that have not left within the close timeout are dropped and the connection ends
        (:meth:`abort`).
        """
        if self.is_open:
            self._close = (code, reason)
            self._readable.set()  # keep receiving: the disconnect must be seen
            self._wake.set()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._owner.close_timeout, self.abort)

    def abort(self) -> None:
        """End the connection now, dropping what is queued (the ASGI server closes the socket)."""
        if not self._lost:
            self._queue.clear()
            self._queued = 0
            self._writer.cancel()
            self._disconnected(1006)

    def pause_reading(self) -> None:
        """Stop calling ``receive()`` (the ASGI server then stops reading the socket)."""
        self._readable.clear()

    def resume_reading(self) -> None:
        """Call ``receive()`` again."""
        self._readable.set()

    async def wait_closed(self) -> None:
        """Return once the ASGI connection is gone (``websocket.disconnect`` or abort)."""
        await self._closed.wait()

    # ------------------------------------------------------------------ the application side

    async def read(self) -> None:
        """Receive messages until ``websocket.disconnect`` (a task the application cancels)."""
        receive = self._receive
        readable = self._readable
        limit = self._owner.max_message_size
        try:
            while True:
                if not readable.is_set():
                    await readable.wait()
                    continue
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    data: bytes = text.encode() if text is not None else message.get("bytes") or b""
                    if len(data) > limit:
                        self.start_close(1009, "message too big")  # protocol.md §2
                        continue
                    if self._close is None:
                        self._deliver(data)
                elif kind == "websocket.disconnect":
                    self._disconnected(int(message.get("code", 1005)))
                    return
        finally:
            if not self._lost:  # receive() failed
                self._disconnected(1006)

    def _deliver(self, data: bytes) -> None:
        on_message = self._on_message
        if on_message is None:
            # Before mesh/assign-id (protocol.md §5.2 step 4): hold a few, then stop reading.
            self._early.append(data)
            if len(self._early) >= _EARLY_LIMIT:
                self.pause_reading()
        else:
            on_message(data)

    def _disconnected(self, code: int) -> None:
        if self._lost:
            return
        self._lost = True
        self._close_code = code
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner.live.discard(self)
        self._on_message = None
        self._readable.set()
        self._wake.set()
        self._closed.set()
        if self._on_lost is not _noop:
            self._on_lost()

    async def _write(self) -> None:
        queue = self._queue
        send = self._send
        text = self._owner.text
        wake = self._wake
        try:
            while not self._lost:
                while queue and not self._lost:
                    frame = queue[0]
                    await send({"type": "websocket.send", "text": text(frame)})
                    queue.popleft()
                    self._queued -= len(frame)
                    if self._above and self._queued <= _QUEUE_LOW:
                        self._above = False
                if self._close is not None:
                    break
                wake.clear()
                await wake.wait()
        except Exception as exc:
            # OSError: the peer is gone (uvicorn's ClientDisconnected); RuntimeError: the ASGI
            # server refuses messages after closing on its own (e.g. its shutdown, 1012).
            if not isinstance(exc, OSError | RuntimeError):
                _log.exception("ASGI send failed")
            self._disconnected(1006)
            return
        if self._close is not None and not self._lost:
            code, reason = self._close
            try:
                await send({"type": "websocket.close", "code": code, "reason": reason})
            except (OSError, RuntimeError):
                self._disconnected(1006)

    async def finish(self) -> None:
        """Let the writer send the close frame (bounded by the close timeout), then stop it."""
        writer = self._writer
        if not writer.done():
            if self._close is None:
                writer.cancel()
            await asyncio.wait([writer], timeout=self._owner.close_timeout)
            writer.cancel()
