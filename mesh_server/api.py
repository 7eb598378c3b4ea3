"""What a command handler sees of its server: :class:`ServerAPI` (the type of ``ctx.server``).

``ctx.server`` is the :class:`~mesh_server.MeshServer` itself; this protocol names the part of it
that handlers and middleware use (the feature managers and the push methods), so that
:mod:`mesh_server.context` need not import the server (dependencies point one way:
docs/architecture.md). ``MeshServer`` is checked against it where it hands itself to the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mesh_server.channels import ChannelManager
    from mesh_server.connection_manager import ConnectionManager
    from mesh_server.features import ConnectionLike
    from mesh_server.presence import PresenceManager
    from mesh_server.records import RecordManager
    from mesh_server.rooms import RoomManager

__all__ = ["ServerAPI"]


class ServerAPI(Protocol):
    """The managers and push methods of a :class:`~mesh_server.MeshServer`."""

    @property
    def instance_id(self) -> str:
        """This instance's id (protocol.md §13)."""

    @property
    def channels(self) -> ChannelManager:
        """Application channels (protocol.md §9)."""

    @property
    def rooms(self) -> RoomManager:
        """Rooms and room metadata (protocol.md §10.1, §12.2)."""

    @property
    def presence(self) -> PresenceManager:
        """Presence (protocol.md §10.2–§10.5)."""

    @property
    def records(self) -> RecordManager:
        """Records (protocol.md §11)."""

    @property
    def connections(self) -> ConnectionManager:
        """Connection metadata on any instance and the local connections (protocol.md §12.1)."""

    async def send(self, conn_or_id: ConnectionLike | str, command: str, payload: Any) -> bool:
        """Push to one connection on any instance (``connections.send``)."""

    async def broadcast(self, command: str, payload: Any) -> None:
        """Push to every connection on every instance."""

    async def broadcast_room(self, room: str, command: str, payload: Any) -> None:
        """Push to every member of ``room`` on every instance."""
