"""The small interface between the server core and a WebSocket library.

The core (:mod:`mesh_server.connection`, :mod:`mesh_server.server`) only uses these protocols, so
another library (e.g. picows) can be plugged in by writing one adapter module, without touching the
session, the pipeline, the feature managers or the backends.

A transport:

* serves on a host/port and, for every HTTP upgrade, asks the core's *upgrade hook* whether to
  accept (PROTOCOL §5.1): the hook returns a value (kept as :attr:`TransportConnection.accepted`)
  or a :class:`Rejection` (HTTP status + text);
* hands every accepted connection to the core's *connect handler*, which owns it until the socket
  closes;
* delivers each complete inbound message (text or binary, as bytes) to one callback, in order,
  without creating a coroutine per frame; frames that arrive before the callback is installed are
  buffered (PROTOCOL §5.2 step 4);
* writes frames synchronously (no coroutine per frame) and reports its write buffer so the core can
  bound outbound memory (PROTOCOL §15).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ConnectHandler",
    "Rejection",
    "Transport",
    "TransportConnection",
    "UpgradeHook",
    "UpgradeRequest",
]


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """The HTTP upgrade request, as the ``authenticate`` hook sees it (PROTOCOL §5.1).

    Attributes:
        path: Request path without the query string, e.g. ``"/ws"``.
        query: Query parameters (the first value of each name).
        query_string: The raw query string (without ``?``).
        headers: Request headers; lookups are case-insensitive.
        cookies: Cookies from the ``Cookie`` header.
        peer: Remote ``(host, port)`` when known.
    """

    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    peer: tuple[str, int] | None = None

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header, if any."""
        return self.headers.get("Origin")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Answer the upgrade with an HTTP error instead of opening a WebSocket."""

    status: int
    message: str = ""


UpgradeHook = Callable[[UpgradeRequest], Awaitable[Any]]
"""Decides on an upgrade: returns a :class:`Rejection` or any value to accept (kept on the
connection as :attr:`TransportConnection.accepted`)."""


class TransportConnection(Protocol):
    """One accepted WebSocket connection, as the core drives it."""

    @property
    def upgrade(self) -> UpgradeRequest:
        """The upgrade request."""

    @property
    def accepted(self) -> Any:
        """What the upgrade hook returned for this connection."""

    @property
    def is_open(self) -> bool:
        """Whether frames can still be written."""

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet handed to the kernel."""

    @property
    def pending_frames(self) -> int:
        """Frames written while the write buffer was above its high-water mark (approximate)."""

    @property
    def close_code(self) -> int | None:
        """The close code received or sent, once known."""

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        """Install the message and connection-lost callbacks; flushes buffered messages first."""

    def write_frame(self, frame: bytes) -> bool:
        """Write one encoded JSON frame as a text frame, synchronously.

        Returns:
            Whether writing is paused afterwards (the write buffer is above its high-water
            mark): the caller then checks the outbound limits. Returning it here saves a
            second call per frame on the fan-out hot path.
        """

    def start_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake with ``code``; abort the socket if it does not finish."""

    def abort(self) -> None:
        """Drop the TCP connection at once."""

    def pause_reading(self) -> None:
        """Stop reading from the socket (backpressure)."""

    def resume_reading(self) -> None:
        """Resume reading from the socket."""

    async def wait_closed(self) -> None:
        """Return once the TCP connection is closed."""


ConnectHandler = Callable[[TransportConnection], Awaitable[None]]
"""Called for each accepted connection; the transport keeps the socket open until it returns."""


class Transport(Protocol):
    """A WebSocket server library behind the core."""

    async def start(
        self,
        host: str,
        port: int,
        *,
        on_upgrade: UpgradeHook,
        on_connect: ConnectHandler,
    ) -> None:
        """Bind and start accepting connections."""

    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""

    def stop_accepting(self) -> None:
        """Stop accepting new connections; existing ones stay open."""

    async def close(self) -> None:
        """Stop serving and release the listening socket (connections are closed by the core)."""
