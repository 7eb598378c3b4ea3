"""Memory implementation of :class:`~mesh_server.backends.interfaces.rooms.RoomStore`."""

from __future__ import annotations

from mesh_server.backends.interfaces.rooms import JoinResult, RoomStore
from mesh_server.backends.memory.state import MemoryState
from mesh_server.backends.messages import encode_envelope, inbox_channel

__all__ = ["MemoryRooms"]


class MemoryRooms(MemoryState, RoomStore):
    """Membership sets per room and per connection; presence through the shared transitions."""

    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Add membership and, for a tracked room, presence (``join`` only if newly present)."""
        self._s.members.setdefault(room, set()).add(connection_id)
        self._s.conn_rooms.setdefault(connection_id, set()).add(room)
        if presence_ttl_ms is None:
            return JoinResult(joined_presence=False, present=[])
        joined = self._set_presence(room, connection_id, presence_ttl_ms)
        return JoinResult(joined_presence=joined, present=list(self._s.presence[room]))

    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Join a registered connection and publish the join control to its instance's inbox."""
        owner = self._s.routes.get(connection_id)
        if owner is None:
            return None
        result = await self.join_room(room, connection_id, presence_ttl_ms)
        control = encode_envelope({"t": "room", "op": "join", "r": room, "c": connection_id})
        self.hub.publish(inbox_channel(self.namespace, owner), control)
        return result

    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Remove membership, presence and state (``leave`` if it was present)."""
        self._end_presence(room, connection_id)
        return self._remove_member(room, connection_id)

    async def room_members(self, room: str) -> list[str]:
        """Return the members of ``room``."""
        return list(self._s.members.get(room, ()))

    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms ``connection_id`` is a member of."""
        return list(self._s.conn_rooms.get(connection_id, ()))

    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""
        return connection_id in self._s.members.get(room, ())

    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        return list(self._s.members)

    async def clear_room(self, room: str) -> list[str]:
        """Remove every member (``leave`` for each present one), their states and metadata."""
        members = sorted(self._s.members.get(room, ()))
        for connection_id in members:
            self._end_presence(room, connection_id)
            self._remove_member(room, connection_id)
        # Presence implies membership; this only guards against an inconsistent store.
        for connection_id in list(self._s.presence.get(room, {})):
            self._end_presence(room, connection_id)
        self._s.room_meta.pop(room, None)
        return members
