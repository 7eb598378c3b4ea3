"""The seam between the server core and its feature managers (channels, rooms, presence, records).

The private core (``mesh_server._core``) owns sockets, sessions, the command pipeline, liveness and
the backend's lifecycle. Each feature manager plugs into it through :class:`Feature`: it contributes
built-in ``mesh/*`` commands (:class:`Builtin`: the generated request model and a handler typed by
it), routes for backend pub/sub messages, and cleanup hooks; a manager that reacts to pongs is also
a :class:`PongListener`. Managers see the core only through :class:`ServerCore`, so they do not
depend on the transport. The core knows managers through :class:`Feature` only, except that it
builds the built-in ones (:mod:`mesh_server.builtin_features`), which
:class:`~mesh_server.MeshServer` offers as ``server.channels``, ``server.rooms``,
``server.presence`` and ``server.records``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    import logging

    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_server.backends.base import Backend
    from mesh_server.limits import Limits
    from mesh_server.metrics import Metrics

__all__ = [
    "Builtin",
    "BuiltinHandler",
    "ConnectionLike",
    "Feature",
    "MessageRoute",
    "PongListener",
    "ServerCore",
]

RequestT = TypeVar("RequestT", bound=BaseModel)
"""The generated request model of a built-in command."""


@runtime_checkable
class ConnectionLike(Protocol):
    """What feature managers may do with a local connection."""

    @property
    def id(self) -> str:
        """The connection id (protocol.md §5.2)."""

    @property
    def closed(self) -> bool:
        """Whether the connection is closing or closed (cleanup runs exactly once after)."""

    def send(self, frame: bytes) -> None:
        """Queue an encoded frame without blocking (bounded; overflow closes with 4001)."""

    def after_response(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` right after the response of the running built-in is sent.

        Subscriptions release the pushes they held during set-up with it, so the response comes
        first (protocol.md §9.3, §10.4, §11.5).
        """


BuiltinHandler: TypeAlias = Callable[[ConnectionLike, RequestT], Awaitable[BaseModel]]
"""A built-in command handler: ``(connection, validated request model) -> response model``.

The core validates the payload against the built-in contract before calling it, runs the
built-ins of one connection in arrival order (protocol.md §3.4), and encodes the returned model of
:mod:`mesh_sdk.protocol.generated.models` once (:func:`mesh_sdk.protocol.contract.to_wire`).
Raising :class:`mesh_sdk.protocol.errors.MeshError` sends that error.
"""


@dataclass(frozen=True, slots=True)
class Builtin(Generic[RequestT]):
    """A built-in ``mesh/*`` command: its generated request model and its handler.

    Attributes:
        request: The request model; the core checks it is the built-in contract's model of the
            command when it registers it, so the handler gets exactly this type.
        handler: The handler, typed by ``request``.
    """

    request: type[RequestT]
    handler: BuiltinHandler[RequestT]


MessageRoute = Callable[[str, bytes], None]
"""Receives backend pub/sub messages ``(channel, data)`` whose channel matches a route prefix."""


class ServerCore(Protocol):
    """The parts of the server core that feature managers use."""

    @property
    def backend(self) -> Backend:
        """The coordination backend (started)."""

    @property
    def namespace(self) -> str:
        """Internal key/channel prefix (protocol.md §9.2)."""

    @property
    def limits(self) -> Limits:
        """Configured limits (protocol.md §15)."""

    @property
    def contract(self) -> ContractIndex | None:
        """The application contract, if any."""

    @property
    def log(self) -> logging.Logger:
        """The server's logger."""

    @property
    def metrics(self) -> Metrics:
        """The server's metrics facade (:mod:`mesh_server.metrics`)."""

    def local_connection(self, connection_id: str) -> ConnectionLike | None:
        """Return the open local connection with this id, if any."""

    def deliver(self, connection_ids: Iterable[str], frame: bytes) -> None:
        """Write one encoded frame to each open local connection among ``connection_ids``."""

    @property
    def ping_interval(self) -> float:
        """The liveness ping interval in seconds (presence TTLs must exceed it, §10.3)."""

    @property
    def max_missed_pongs(self) -> int:
        """Missed pongs tolerated before close 4000 (§6)."""

    def index_join(self, room: str, connection_id: str) -> None:
        """Record a local connection's room membership in the local room index (§13.2)."""

    def index_leave(self, room: str, connection_id: str) -> None:
        """Drop a local connection's room membership from the local room index."""

    def index_clear(self, room: str) -> None:
        """Drop a room from the local room index (room cleared)."""

    def local_room_members(self, room: str) -> set[str]:
        """Return the local connection ids that are members of ``room``."""

    def resolve_connection(self, conn_or_id: ConnectionLike | str) -> str:
        """Return the connection id of a connection object or id."""


class Feature(Protocol):
    """A feature manager plugged into the core."""

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """Return the ``mesh/*`` commands this feature answers."""

    def message_routes(self) -> Mapping[str, MessageRoute]:
        """Return channel-prefix → handler for backend messages (longest prefix wins).

        The empty prefix ``""`` receives application channels (anything not internal).
        """

    async def on_disconnect(self, connection: ConnectionLike) -> None:
        """Release this feature's local state for a closing connection (protocol.md §5.3)."""

    async def on_backend_recovered(self) -> None:
        """Re-establish backend subscriptions / push current state after a backend outage."""

    async def start(self) -> None:
        """Start background work (e.g. the presence sweep) once the backend is started."""

    async def stop(self) -> None:
        """Stop background work; called before the backend closes."""


@runtime_checkable
class PongListener(Protocol):
    """A feature that reacts to pongs; the core calls only those (none: no work per pong)."""

    async def on_pong(self, connection: ConnectionLike) -> None:
        """React to a pong (presence refresh, §10.3)."""
