"""Room membership handles (protocol.md §10.1–§10.2)."""

from __future__ import annotations

from typing import Protocol

from mesh_sdk.subscriptions.base import AsyncContextSubscription
from mesh_sdk.subscriptions.presence import PresenceSubscription

__all__ = ["RoomHandle", "RoomOwner"]


class RoomOwner(Protocol):
    """What a :class:`RoomHandle` asks of its client (the room half of the client)."""

    async def leave_room(self, room: str) -> bool:
        """Send ``mesh/leave-room`` and end the room's presence subscription."""
        ...


class RoomHandle(AsyncContextSubscription):
    """Membership of one room, returned by :meth:`~mesh_sdk.client.MeshClient.join_room`.

    The client re-joins the room after a reconnect (§14). ``async with`` leaves on exit.

    Attributes:
        room: The room name.
        present: Ids present when the room was (re-)joined (``[]`` if the room is not tracked
            or the presence guard denies, §10.2). For a live view, use :attr:`presence`.
        presence: The room's presence subscription when ``on_presence`` was given, else ``None``.
        joined: ``False`` once left.
    """

    def __init__(self, owner: RoomOwner, room: str, present: list[str]) -> None:
        self.room = room
        self.present = present
        self.presence: PresenceSubscription | None = None
        self.joined = True
        self._owner = owner

    def __repr__(self) -> str:
        return f"<RoomHandle {self.room!r} joined={self.joined}>"

    async def leave(self) -> bool:
        """Leave the room (``mesh/leave-room``), ending its presence subscription too."""
        if not self.joined:
            return False
        return await self._owner.leave_room(self.room)

    async def unsubscribe(self) -> bool:
        """Same as :meth:`leave`."""
        return await self.leave()
