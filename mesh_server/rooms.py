"""Rooms: membership, join, leave, clear and room metadata (protocol.md §10.1, §10.2, §12.2).

Membership lives in the backend, shared by all instances. Each instance also indexes the rooms
of its *local* connections (the core's room index, used to resolve room broadcasts in
O(instances) messages, §13.2) and the per-connection room list presence refreshes use (§10.3).
Server code may add or remove a connection held by another instance: the backend is updated
here and the owner instance is told through its inbox to update its index.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.generated.models import (
    GetRoomMetadataRequest,
    GetRoomMetadataResponse,
    JoinRoomRequest,
    JoinRoomResponse,
    LeaveRoomRequest,
    LeaveRoomResponse,
)
from mesh_server.backends.messages import BROADCAST, encode_envelope, inbox_channel
from mesh_server.exposure import SubscriptionQuota, check_name
from mesh_server.features import Builtin

if TYPE_CHECKING:
    from mesh_server.features import ConnectionLike, MessageRoute, ServerCore
    from mesh_server.presence import LocalMemberships, PresenceManager

__all__ = ["RoomManager"]


class RoomManager:
    """Room membership for server code and the room built-ins."""

    def __init__(
        self,
        core: ServerCore,
        presence: PresenceManager,
        memberships: LocalMemberships,
        quota: SubscriptionQuota,
    ) -> None:
        self._core = core
        self._presence = presence
        self._memberships = memberships
        self._quota = quota

    # ------------------------------------------------------------------ server API

    async def add(self, room: str, conn_or_id: ConnectionLike | str) -> list[str]:
        """Add a connection (on any instance) to ``room``; in a tracked room it becomes present.

        Returns:
            The ids present in the room afterwards (``[]`` if untracked or the connection is
            unknown).
        """
        cid = self._core.resolve_connection(conn_or_id)
        if self._core.local_connection(cid) is not None:
            return await self._join_local(room, cid, enforce_quota=False)
        # One atomic step: a connection unregistering meanwhile cannot keep the membership.
        result = await self._core.backend.join_registered(
            room, cid, self._presence.ttl_ms_for(room)
        )
        return [] if result is None else result.present

    async def remove(self, room: str, conn_or_id: ConnectionLike | str) -> bool:
        """Remove a connection (on any instance) from ``room``; returns whether it was a member."""
        cid = self._core.resolve_connection(conn_or_id)
        if self._core.local_connection(cid) is not None:
            return await self._leave_local(room, cid)
        was_member = await self._core.backend.leave_room(room, cid)
        owner = await self._core.backend.connection_instance(cid)
        if owner is not None:
            await self._control(owner, "leave", room, cid)
        return was_member

    async def is_member(self, room: str, conn_or_id: ConnectionLike | str) -> bool:
        """Whether the connection is a member of ``room``."""
        return await self._core.backend.is_in_room(room, self._core.resolve_connection(conn_or_id))

    async def members(self, room: str) -> list[str]:
        """Return the member ids of ``room`` on all instances."""
        return await self._core.backend.room_members(room)

    async def remove_from_all(self, conn_or_id: ConnectionLike | str) -> None:
        """Remove a connection from every room it is a member of."""
        cid = self._core.resolve_connection(conn_or_id)
        for room in await self._core.backend.connection_rooms(cid):
            await self.remove(room, cid)

    async def clear(self, room: str) -> list[str]:
        """Empty ``room`` on all instances, ending presence (one ``leave`` each) and metadata.

        Returns:
            The ids that were members.
        """
        members = await self._core.backend.clear_room(room)
        self.apply_clear(room)
        # Every instance (this one too) drops the room from its local index.
        await self._core.backend.publish(
            self._core.namespace + BROADCAST, encode_envelope({"t": "clear", "r": room})
        )
        return members

    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        return await self._core.backend.all_rooms()

    async def set_metadata(self, room: str, value: Any) -> Any:
        """Replace the room's metadata (§12.2); ``value``: a model or any JSON value."""
        return await self._core.backend.set_room_metadata(room, to_jsonable(value), "replace")

    async def update_metadata(self, room: str, value: Any) -> Any:
        """Shallowly merge into the room's metadata if both are objects, else replace (§12.2).

        ``value`` is a pydantic (generated) model or any JSON value.
        """
        return await self._core.backend.set_room_metadata(room, to_jsonable(value), "merge")

    async def get_metadata(self, room: str) -> Any:
        """Return the room's metadata or ``None``."""
        return await self._core.backend.get_room_metadata(room)

    async def get_all_metadata(self) -> dict[str, Any]:
        """Return room → metadata for every room that has metadata."""
        return await self._core.backend.get_all_room_metadata()

    def local_rooms_of(self, connection_id: str) -> set[str]:
        """Return the rooms a local connection is a member of (as known to this instance)."""
        return self._memberships.rooms_of(connection_id)

    # ------------------------------------------------------------------ inbox control

    def apply_control(self, op: str, room: str, connection_id: str) -> None:
        """Apply a membership change another instance made for a local connection.

        The core calls this for inbox headers ``{"t":"room","op":"join"|"leave","r","c"}``.
        """
        if op == "join":
            self._core.index_join(room, connection_id)
            if self._memberships.add(connection_id, room):
                self._quota.add(connection_id)
        elif op == "leave":
            self._core.index_leave(room, connection_id)
            self._presence.forget_state(connection_id, room)
            if self._memberships.remove(connection_id, room):
                self._quota.release(connection_id)

    def apply_clear(self, room: str) -> None:
        """Forget a cleared room for the local connections (the core drops its index entry)."""
        for cid in self._core.local_room_members(room):
            self._presence.forget_state(cid, room)
            if self._memberships.remove(cid, room):
                self._quota.release(cid)
        self._core.index_clear(room)

    async def _control(self, owner: str, op: str, room: str, cid: str) -> None:
        header = {"t": "room", "op": op, "r": room, "c": cid}
        await self._core.backend.publish(
            inbox_channel(self._core.namespace, owner), encode_envelope(header)
        )

    # ------------------------------------------------------------------ local membership

    async def _join_local(self, room: str, cid: str, *, enforce_quota: bool) -> list[str]:
        new = not self._memberships.has(cid, room)
        if new:
            if enforce_quota:
                self._quota.reserve(cid)
            else:
                self._quota.add(cid)
            self._memberships.add(cid, room)
        try:
            result = await self._core.backend.join_room(room, cid, self._presence.ttl_ms_for(room))
        except BaseException:
            if new and self._memberships.remove(cid, room):
                self._quota.release(cid)
            raise
        self._core.index_join(room, cid)
        return result.present

    async def _leave_local(self, room: str, cid: str) -> bool:
        was_member = await self._core.backend.leave_room(room, cid)
        self._core.index_leave(room, cid)
        self._presence.forget_state(cid, room)
        if self._memberships.remove(cid, room):
            self._quota.release(cid)
        return was_member

    # ------------------------------------------------------------------ built-ins

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """Return the room built-ins (§7)."""
        return {
            "mesh/join-room": Builtin(JoinRoomRequest, self._join),
            "mesh/leave-room": Builtin(LeaveRoomRequest, self._leave),
            "mesh/get-room-metadata": Builtin(GetRoomMetadataRequest, self._get_metadata),
        }

    def _room(self, command: str, room: str) -> str:
        check_name(command, "roomName", room, self._core.limits.max_name_length)
        return room

    async def _join(self, connection: ConnectionLike, request: JoinRoomRequest) -> JoinRoomResponse:
        room = self._room("mesh/join-room", request.roomName)
        present = await self._join_local(room, connection.id, enforce_quota=True)
        # §10.2: `present` only for a tracked room whose presence guard passes, else [].
        if not present or not await self._presence.guard_allows(connection, room):
            present = []
        return JoinRoomResponse.model_construct(success=True, present=present)

    async def _leave(
        self, connection: ConnectionLike, request: LeaveRoomRequest
    ) -> LeaveRoomResponse:
        room = self._room("mesh/leave-room", request.roomName)
        await self._leave_local(room, connection.id)
        return LeaveRoomResponse.model_construct(success=True)

    async def _get_metadata(
        self, connection: ConnectionLike, request: GetRoomMetadataRequest
    ) -> GetRoomMetadataResponse:
        room = self._room("mesh/get-room-metadata", request.roomName)
        metadata = await self._core.backend.get_room_metadata(room)
        return GetRoomMetadataResponse.model_construct(metadata=metadata)

    # ------------------------------------------------------------------ Feature hooks

    def message_routes(self) -> Mapping[str, MessageRoute]:
        """Rooms receive nothing directly (the core resolves broadcasts and inbox controls)."""
        return {}

    async def on_disconnect(self, connection: ConnectionLike) -> None:
        """Forget the connection's local memberships (the core removes them from the backend)."""
        rooms = self._memberships.drop(connection.id)
        if rooms:
            self._quota.release(connection.id, len(rooms))

    async def on_backend_recovered(self) -> None:
        """Nothing to re-establish."""

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""
