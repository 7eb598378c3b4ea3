"""Room membership: joins (also of other instances' connections), leaves, clearing (§10.1–§10.2)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["JoinResult", "RoomStore"]


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Outcome of :meth:`RoomStore.join_room`.

    Attributes:
        joined_presence: ``True`` iff the connection became present (a ``join`` was published).
        present: Ids present in the room after the join (empty when the room is untracked).
    """

    joined_presence: bool
    present: list[str]


class RoomStore(ABC):
    """Who is in which room, shared by all instances.

    A room is *tracked* when the server gives a presence TTL on join; a member of a tracked room
    is also present (see :class:`~mesh_server.backends.interfaces.presence.PresenceStore`).

    Guarantees
    ----------
    * **Atomicity.** :meth:`join_room`, :meth:`join_registered`, :meth:`leave_room` and
      :meth:`clear_room` are one step each, membership and presence together, with the presence
      events they cause published inside the step.
    * **Events: at most once, in order.** A join publishes ``join`` only if the connection was
      not present already; a leave publishes ``leave`` iff it was present; a clear publishes one
      ``leave`` per present member. Nothing else is published (membership itself has no event,
      except the inbox control of :meth:`join_registered`).
    * **No orphans.** :meth:`join_registered` joins only a connection that has a routing entry at
      that moment; one that unregisters later loses the membership with everything else, so no
      membership outlives its connection.
    * **Idempotent.** Joining twice is one membership; leaving a room one is not in changes
      nothing.
    * **Queries** return unordered lists from indexes (rooms with at least one member).
    * **Size limits.** None here: the server bounds room names (``max_name_length``).
    * **Raises** ``UnavailableError`` when the store is unreachable.
    """

    @abstractmethod
    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Atomically add membership and, if ``presence_ttl_ms`` is given (tracked room), presence.

        Presence gets deadline = backend now + TTL; a ``join`` event is published only if the
        connection was not present already. Idempotent.
        """

    @abstractmethod
    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Atomically join a connection of any instance and tell its instance (§13.2).

        One step: if the connection has a routing entry, do what :meth:`join_room` does and
        publish the inbox control ``{"t":"room","op":"join","r":room,"c":connection_id}`` to
        the owner instance (:mod:`mesh_server.backends.messages`). A connection that
        unregistered before the step is not joined; one that unregisters after it loses the
        membership with everything else, so no membership outlives its connection.

        Returns:
            ``None`` if the connection is not registered (nothing changed), else the
            :class:`JoinResult`.
        """

    @abstractmethod
    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Atomically remove membership, presence and state; publish ``leave`` if it was present.

        Returns:
            Whether the connection was a member.
        """

    @abstractmethod
    async def room_members(self, room: str) -> list[str]:
        """Return the member ids of ``room`` (all instances), unordered."""

    @abstractmethod
    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms ``connection_id`` is a member of."""

    @abstractmethod
    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""

    @abstractmethod
    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member (index scan, no KEYS)."""

    @abstractmethod
    async def clear_room(self, room: str) -> list[str]:
        """Atomically remove every member, their presence (``leave`` each) and states, and metadata.

        Returns:
            The ids that were members.
        """
