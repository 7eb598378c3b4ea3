"""The room half of :class:`~mesh_sdk.client.MeshClient` (protocol.md §10.1, §10.2).

Joining and leaving rooms (re-joined after a reconnect, §14); the :class:`RoomHandle` objects it
returns are in :mod:`mesh_sdk.subscriptions.rooms`. A room's presence is :class:`PresenceAPI`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from mesh_sdk.errors import SubscriptionDenied
from mesh_sdk.protocol.generated.models import JoinRoomRequest, LeaveRoomRequest
from mesh_sdk.subscriptions.core import string_ids, succeeded
from mesh_sdk.subscriptions.presence_api import PresenceAPI
from mesh_sdk.subscriptions.rooms import RoomHandle

if TYPE_CHECKING:
    from mesh_sdk.protocol.errors import MeshError
    from mesh_sdk.subscriptions.presence import PresenceUpdate

__all__ = ["RoomsAPI"]


class RoomsAPI(PresenceAPI):
    """Room membership (with an optional presence subscription); mixed into ``MeshClient``."""

    _rooms: dict[str, RoomHandle]

    async def join_room(
        self, room: str, on_presence: Callable[[PresenceUpdate], Any] | None = None
    ) -> RoomHandle:
        """Join a room (``mesh/join-room``); it is re-joined after reconnects.

        Args:
            room: The room name.
            on_presence: If given, also subscribe to the room's presence with this callback;
                the subscription is :attr:`RoomHandle.presence` and ends on leave.

        Raises:
            MeshError: The join was refused (e.g. ``ForbiddenError`` from middleware).
        """
        handle = self._rooms.get(room) or RoomHandle(self, room, [])
        await self._builtin(
            JoinRoomRequest.model_construct(roomName=room),
            on_result=partial(self._room_answer, handle),
        )
        if on_presence is not None:
            handle.presence = await self.subscribe_presence(room, on_update=on_presence)
        return handle

    def _room_answer(self, handle: RoomHandle, payload: Any) -> Any:
        if not succeeded(payload):
            raise SubscriptionDenied(target=handle.room)
        handle.present = string_ids(payload.get("present"))
        handle.joined = True
        self._rooms[handle.room] = handle
        return payload

    async def leave_room(self, room: str) -> bool:
        """Leave a room (``mesh/leave-room``), ending the presence subscription of its handle."""
        handle = self._rooms.pop(room, None)
        if handle is not None:
            handle.joined = False
        self._presence_states.pop(room, None)
        result = await self._builtin(LeaveRoomRequest.model_construct(roomName=room))
        presence = handle.presence if handle is not None else None
        if presence is not None and self._presence.get(room) is presence:
            await self.unsubscribe_presence(room)
        return succeeded(result)

    def _drop_room(self, handle: RoomHandle, error: MeshError) -> None:
        if self._rooms.get(handle.room) is handle:
            del self._rooms[handle.room]
            handle.joined = False
        self._report(error)
