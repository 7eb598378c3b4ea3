"""Presence in tracked rooms: deadlines, expiry sweeps and per-connection states (§10.3–§10.5)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PresenceSnapshot", "PresenceStore"]


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Who is present in a room and their states (only present connections with a state)."""

    present: list[str]
    states: dict[str, Any]


class PresenceStore(ABC):
    """Who is present in which tracked room until when, and with which state.

    Presence begins with a join of a tracked room
    (:meth:`~mesh_server.backends.interfaces.rooms.RoomStore.join_room`) and ends by a leave, a
    clear, an unregistration or expiry. Events go to ``{ns}presence:{room}``, each exactly the
    ``mesh/presence-update`` payload (protocol.md §8) with a wall-clock millisecond timestamp
    (Redis: the server's ``TIME``).

    Guarantees
    ----------
    * **Exactly one event per change.** Every presence that ends publishes exactly one
      ``leave`` (its state goes silently); every state that expires publishes exactly one
      ``state`` with ``null``, however many instances sweep at once (the removal and its event
      are one step).
    * **Delivery: at most once**, in the order of the state changes per room (the channel's
      publication order).
    * **Presence implies membership.** Only members become present; :meth:`refresh_presence`
      skips rooms the connection is not a member of.
    * **Atomicity.** Each method is one step (a sweep: one step per batch of due entries);
      :meth:`refresh_presence` covers all its rooms in one step, and :meth:`presence_snapshot`
      reads ids and states consistently.
    * **Clock.** Deadlines are the store's clock plus the TTL; the server's sweep interval only
      bounds how late an expiry is noticed.
    * **Dropped.** A state of a connection that is not present is not stored (``False``).
    * **Size limits.** None here: the server bounds states (``max_presence_state_size``,
      ``max_presence_state_bytes`` per connection, :mod:`mesh_server.quotas`).
    * **Raises** ``UnavailableError`` when the store is unreachable.
    """

    @abstractmethod
    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Set deadline = now + TTL for each (room, ttl) the connection is a member of.

        A member whose presence had expired becomes present again and ``join`` is published.
        One atomic step for all rooms.
        """

    @abstractmethod
    async def sweep_presence(self) -> int:
        """Atomically remove due presence entries and due states, publishing their events.

        An expired presence publishes exactly one ``leave`` (its state goes silently); an expired
        state publishes exactly one ``state`` event with ``null``. Exactly one instance removes
        (and so publishes) a given entry. Returns how many entries expired.
        """

    @abstractmethod
    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Return the present ids and the states of present connections that have one."""

    @abstractmethod
    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Atomically replace the state (and its expiry) of a present connection.

        Publishes a ``state`` event unless ``silent``. Returns ``False`` (nothing stored) if the
        connection is not present in the room.
        """

    @abstractmethod
    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state; publish ``state`` with ``null`` iff a state existed.

        Returns:
            ``False`` if the connection is not present in the room.
        """
