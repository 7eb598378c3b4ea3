"""The transport seam: the whole contract between a WebSocket library and the server core.

Three adapters meet it: ``websockets`` (the default, :mod:`mesh_server.transport.websockets`),
picows (:mod:`mesh_server.transport.picows`) and an ASGI application (uvicorn, FastAPI,
Starlette: :mod:`mesh_server.transport.asgi`). The core (``mesh_server._core``,
:mod:`mesh_server.connection`) only uses the names defined here, so an adapter is one module that
touches neither the session, the pipeline, the feature managers nor the backends.

What every adapter guarantees
-----------------------------
**Requests.** For each HTTP request it parses, the adapter builds an :class:`UpgradeRequest`.

* A request that is not a valid WebSocket upgrade (e.g. a plain ``GET /healthz``) goes to
  :attr:`TransportHooks.on_http`, which is synchronous and cheap; a returned
  :class:`HttpResponse` is sent and the TCP connection closed. ``None`` gets the adapter's own
  answer: ``426 Upgrade Required`` for a plain request, ``400``/``405``/``505`` for a malformed
  handshake (the ASGI adapter answers ``404``: paths outside its mount never reach it).
* A valid upgrade goes to :attr:`TransportHooks.on_upgrade` (protocol.md §5.1), which returns an
  :class:`Accept` or an :class:`HttpResponse` (the refusal, any status 400–599), either directly
  or as an awaitable. A direct answer completes the handshake within the same read callback (no
  task per handshake); reading is paused while an awaitable is pending. picows decides upgrades
  synchronously: its adapter needs the direct form (an awaitable is refused with ``500``), and
  cannot tell the hooks the peer address (``peer`` is set once the WebSocket opens). ASGI's
  ``websocket.close`` before ``websocket.accept`` can only say ``403``; an adapter uses the
  "WebSocket Denial Response" extension when the server offers it to send the real status.
* The handshake (request, hooks, response) is bounded by the adapter's open timeout.

**Connections.** After the ``101`` is written, :attr:`TransportHooks.on_connect` is awaited once
with the :class:`TransportConnection`. The connection stays open after it returns, until the core
closes it or the peer goes away; the adapter never closes it on the core's behalf (ASGI: the
application coroutine waits for the close). The core returns as soon as the connection is started,
so an idle connection holds no task.

**Inbound.** Each complete data message (text or binary, fragments joined, as ``bytes``) is handed
to the ``on_message`` callback in arrival order, synchronously from the read path: no coroutine or
queue per message. Messages that arrive before :meth:`TransportConnection.set_handlers` are held
(a few, then reading pauses: protocol.md §5.2 step 4). A message over the configured size closes the
connection with 1009; a protocol violation with 1002 (protocol.md §2, §16). Protocol-level pings are
answered by the adapter and never reach the core; liveness is the application-level ping
(protocol.md §6). ``on_lost`` is called exactly once, when the TCP connection (or the ASGI
connection) is gone; no message follows it.

**Outbound.** :meth:`TransportConnection.write_frame` writes one text frame synchronously and
reports whether the adapter's write buffer is above its high-water mark;
:attr:`TransportConnection.buffered_amount` counts bytes accepted but not yet handed to the kernel
(ASGI: queued for ``send()``), so the core can bound outbound memory and close a slow consumer
with 4001 (protocol.md §15). Adapters never block or drop a frame silently while open.

**Closing.** :meth:`TransportConnection.start_close` sends a close frame with the core's code
(protocol.md §16) and aborts the socket if the peer does not finish the closing handshake within the
adapter's close timeout. Close codes come from the core; adapters only originate 1002, 1007 and
1009 (and 1011 for their own failures).
"""

from __future__ import annotations

import http
import http.cookies
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

__all__ = [
    "DEFAULT_BACKLOG",
    "Accept",
    "ConnectHandler",
    "HttpHook",
    "HttpResponse",
    "Transport",
    "TransportConnection",
    "TransportHooks",
    "UpgradeDecision",
    "UpgradeHook",
    "UpgradeRequest",
    "effective_backlog",
]

DEFAULT_BACKLOG = 1024
"""Default listen backlog (pending TCP connections); the kernel caps it at ``somaxconn``."""

_SOMAXCONN = "/proc/sys/net/core/somaxconn"


def effective_backlog(requested: int) -> int:
    """Return the listen backlog the kernel will actually apply for ``requested``.

    Linux silently caps ``listen()``'s backlog at ``net.core.somaxconn``; elsewhere (or when the
    value cannot be read) ``requested`` is returned unchanged.
    """
    try:
        with open(_SOMAXCONN, encoding="ascii") as file:
            limit = int(file.read())
    except (OSError, ValueError):
        return requested
    return min(requested, limit)


class UpgradeRequest:
    """An HTTP request on the WebSocket port, as the hooks see it (protocol.md §5.1).

    Usually an upgrade, seen by the ``authenticate`` hook; or a plain ``GET`` seen by the health
    endpoints. The query and the cookies are parsed on first access, so a handshake that never
    looks at them does not pay for them.

    Args:
        path: Request path without the query string, e.g. ``"/ws"``.
        query: Query parameters (the first value of each name); parsed from ``query_string``
            when omitted.
        query_string: The raw query string (without ``?``).
        headers: Request headers; the adapters pass a case-insensitive mapping.
        cookies: Cookies; parsed from the ``Cookie`` header(s) when omitted.
        peer: Remote ``(host, port)`` when known.
        method: The HTTP method.
    """

    __slots__ = ("_cookies", "_query", "headers", "method", "path", "peer", "query_string")

    def __init__(
        self,
        path: str,
        query: Mapping[str, str] | None = None,
        query_string: str = "",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        peer: tuple[str, int] | None = None,
        method: str = "GET",
    ) -> None:
        self.path = path
        self.query_string = query_string
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.peer = peer
        self.method = method
        self._query = query
        self._cookies = cookies

    def __repr__(self) -> str:
        return f"<UpgradeRequest {self.method} {self.path!r} from {self.peer}>"

    @property
    def query(self) -> Mapping[str, str]:
        """Query parameters (the first value of each name)."""
        if self._query is None:
            query: dict[str, str] = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                query.setdefault(name, value)
            self._query = query
        return self._query

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookies from the ``Cookie`` header(s); malformed headers are ignored."""
        if self._cookies is None:
            self._cookies = _parse_cookies(self.headers)
        return self._cookies

    @property
    def origin(self) -> str | None:
        """The ``Origin`` header, if any."""
        return self.headers.get("Origin")


def _parse_cookies(headers: Mapping[str, str]) -> dict[str, str]:
    # websockets' Headers holds repeated fields (get_all); a plain mapping holds one value.
    get_all = getattr(headers, "get_all", None)
    values: list[str]
    if get_all is not None:
        values = list(get_all("Cookie"))
    else:
        single = headers.get("Cookie")
        values = [single] if single is not None else []
    cookies: dict[str, str] = {}
    for value in values:
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(value)
        except http.cookies.CookieError:
            continue
        cookies.update({name: morsel.value for name, morsel in jar.items()})
    return cookies


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response: a refused upgrade, or the answer to a plain request.

    Attributes:
        status: HTTP status code.
        body: Response body.
        content_type: ``Content-Type`` of the body.
        headers: Extra response headers.
    """

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def text(cls, status: int, message: str) -> HttpResponse:
        """A plain-text response (the body of a refused upgrade, protocol.md §5.1)."""
        return cls(status, message.encode())

    @classmethod
    def json(
        cls, status: int, content: Any, headers: tuple[tuple[str, str], ...] = ()
    ) -> HttpResponse:
        """A JSON response."""
        return cls(status, orjson.dumps(content), "application/json", headers)

    @property
    def reason(self) -> str:
        """The reason phrase (``"Error"`` for a status :mod:`http` does not name)."""
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return "Error"


@dataclass(frozen=True, slots=True)
class Accept:
    """Open the WebSocket.

    Attributes:
        value: What the core attaches to the connection (:attr:`TransportConnection.accepted`):
            the ``authenticate`` hook's result, i.e. the connection's initial metadata.
    """

    value: Any = None


UpgradeDecision = Accept | HttpResponse
"""The answer to an upgrade: open the WebSocket, or refuse it with an HTTP response."""

UpgradeHook = Callable[["UpgradeRequest"], "UpgradeDecision | Awaitable[UpgradeDecision]"]
"""Decides on a valid upgrade, directly or through an awaitable (see the module docstring)."""

HttpHook = Callable[["UpgradeRequest"], "HttpResponse | None"]
"""Answers a plain (non-upgrade) request synchronously, or ``None`` to leave it to the adapter."""


class TransportConnection(Protocol):
    """One accepted WebSocket connection, as the core drives it."""

    @property
    def upgrade(self) -> UpgradeRequest:
        """The upgrade request."""

    @property
    def accepted(self) -> Any:
        """:attr:`Accept.value` of the upgrade decision."""

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
        """The close code received from the peer, once the connection is closed."""

    def set_handlers(
        self, on_message: Callable[[bytes], None], on_lost: Callable[[], None]
    ) -> None:
        """Install the message and connection-lost callbacks; delivers held messages first."""

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


ConnectHandler = Callable[[TransportConnection], Coroutine[Any, Any, None]]
"""Awaited once per accepted connection, right after the ``101`` response."""


def _no_http(request: UpgradeRequest) -> HttpResponse | None:
    """Default :attr:`TransportHooks.on_http`: every plain request gets the adapter's answer."""
    return None


@dataclass(frozen=True, slots=True)
class TransportHooks:
    """The core's callbacks, given to :meth:`Transport.start`.

    Attributes:
        on_upgrade: Decides on each valid WebSocket upgrade.
        on_connect: Takes over each accepted connection.
        on_http: Answers plain HTTP requests (health endpoints).
    """

    on_upgrade: UpgradeHook
    on_connect: ConnectHandler
    on_http: HttpHook = _no_http


class Transport(Protocol):
    """A WebSocket server library behind the core.

    Listening adapters take their address (host, port, backlog) in their constructor; an ASGI
    adapter has none (the ASGI server owns the socket).
    """

    async def start(self, hooks: TransportHooks) -> None:
        """Start serving (listening adapters bind here) and route requests to ``hooks``."""

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when constructed with port ``0``)."""

    async def close(self) -> None:
        """Stop serving: release the listener and close what is still open.

        The core closes its connections first (1001, protocol.md §5.3); the adapter then closes any
        connection still open with 1001, aborts handshakes in progress and returns once every
        TCP connection is closed (each bounded by the close timeout).
        """
