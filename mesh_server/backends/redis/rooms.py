"""Redis implementation of :class:`~mesh_server.backends.interfaces.rooms.RoomStore`.

Join (with the route check and inbox control of a remote join), leave and clear are one script
each (``join_room``, ``leave_room``, ``clear_room``); queries read the membership sets.
"""

from __future__ import annotations

from mesh_server.backends.interfaces.rooms import JoinResult, RoomStore
from mesh_server.backends.messages import encode_envelope
from mesh_server.backends.redis.state import RedisState, text

__all__ = ["RedisRooms"]


class RedisRooms(RedisState, RoomStore):
    """Room membership on Redis sets."""

    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Add membership and, for a tracked room, presence (``join`` only if new)."""
        ttl = "" if presence_ttl_ms is None else presence_ttl_ms
        async with self._guard("join room"):
            joined, present = await self._scripts.run(
                "join_room",
                self._keys.for_join_room(room, connection_id),
                room,
                connection_id,
                ttl,
                "",
                "",
            )
        return JoinResult(bool(joined), [text(c) for c in present])

    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Route check, join and inbox control in one ``join_room`` script call."""
        ttl = "" if presence_ttl_ms is None else presence_ttl_ms
        control = encode_envelope({"t": "room", "op": "join", "r": room, "c": connection_id})
        async with self._guard("join room"):
            result = await self._scripts.run(
                "join_room",
                self._keys.for_join_room(room, connection_id),
                room,
                connection_id,
                ttl,
                "1",
                control,
            )
        if result is None:
            return None
        joined, present = result
        return JoinResult(bool(joined), [text(c) for c in present])

    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Remove membership, presence and state (``leave`` if it was present)."""
        async with self._guard("leave room"):
            was_member = await self._scripts.run(
                "leave_room", self._keys.for_leave_room(room, connection_id), room, connection_id
            )
        return bool(was_member)

    async def room_members(self, room: str) -> list[str]:
        """Return the member ids of ``room``."""
        async with self._guard("room members"):
            raw = await self._client.smembers(self._keys.room_members(room))
        return [text(c) for c in raw]

    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms of ``connection_id``."""
        async with self._guard("connection rooms"):
            raw = await self._client.smembers(self._keys.conn_rooms(connection_id))
        return [text(r) for r in raw]

    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""
        async with self._guard("is in room"):
            return bool(await self._client.sismember(self._keys.room_members(room), connection_id))

    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        async with self._guard("all rooms"):
            raw = await self._client.smembers(self._keys.rooms)
        return [text(r) for r in raw]

    async def clear_room(self, room: str) -> list[str]:
        """Remove all members (``leave`` for each present one), states and metadata."""
        async with self._guard("clear room"):
            members = await self._scripts.run("clear_room", self._keys.for_clear_room(room), room)
        return [text(c) for c in members]
