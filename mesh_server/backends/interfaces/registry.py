"""Instances and connection routing: heartbeats, dead-instance sweeps (protocol.md §13)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DeadInstanceReport", "InstanceRegistry", "RecoveredCallback"]

RecoveredCallback = Callable[[], Awaitable[None]]
"""Awaited by a backend after it reconnected to its store and re-subscribed its channels."""


@dataclass(frozen=True, slots=True)
class DeadInstanceReport:
    """What a sweep cleaned up for one dead instance it claimed."""

    instance_id: str
    connection_ids: list[str]


class InstanceRegistry(ABC):
    """Which instances live and which instance holds each connection.

    Guarantees
    ----------
    * **Routing.** A connection has at most one routing entry (connection → instance), visible
      to every instance as soon as :meth:`register_connection` returns.
    * **Coalescing.** A backend may carry concurrent :meth:`register_connection` calls in one
      store step (Redis does, up to its ``register_batch``). Each call still returns only once
      its own entry is stored, and raises only for a failure of the step that carried it.
    * **Atomicity.** Registering and unregistering a connection are one step each. Unregistering
      ends presence (exactly one ``leave`` per present room), memberships, metadata and the
      routing entry together, so nothing of a connection outlives it (protocol.md §5.3).
    * **Dead instances.** A heartbeat lapses on the store's clock. Exactly one sweeper across all
      instances claims a given dead instance (an atomic claim); it then cleans each of the dead
      instance's connections as :meth:`unregister_connection` would, one step per connection,
      and finally the instance's registry entries.
    * **Fencing.** :meth:`heartbeat` reports a registration that lapsed or was lost, so the
      instance closes its connections (4002) rather than serve state that is gone (§13.5).
    * **Recovery.** After losing and regaining its store (a Redis restart), a backend re-creates
      its instance registration, re-subscribes its channels, then awaits :attr:`on_recovered`;
      the server re-creates its connections' entries with :meth:`reregister_connections`. A
      store that cannot be lost while its instance lives (memory) never calls it.
    * **Delivery.** Events of a cleanup (``leave``) are published at most once, inside the step
      that removes the presence.
    * **Dropped.** Everything of an instance a sweep cleaned, and of a connection unregistered.
    * **Size limits.** None here: initial metadata is stored as given.
    * **Raises** ``UnavailableError`` when the store is unreachable.
    """

    on_recovered: RecoveredCallback | None = None
    """Set by the server: awaited after the backend lost and regained its store (a Redis
    restart), once its pub/sub channels are subscribed again. Backends that cannot lose their
    store (memory) never call it."""

    # ------------------------------------------------------------------ instances (§13.3–§13.5)

    @abstractmethod
    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh this instance's heartbeat with ``ttl_ms``.

        Returns:
            ``False`` if the heartbeat had lapsed or the registration was removed (the instance
            was presumed dead and cleaned up: the caller must fence itself, protocol.md §13.5); the
            registration is re-created either way.
        """

    @abstractmethod
    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim every instance whose heartbeat lapsed and clean it up (protocol.md §13.4).

        Exactly one caller across all instances claims a given dead instance (atomic claim).
        For each of its connections: presence ends with one ``leave`` per present room, states
        go, memberships go, metadata and routing entry go; then the instance's registry entries.
        """

    @abstractmethod
    async def reregister_connections(self, connections: Mapping[str, Any]) -> None:
        """Re-create the routing entries of this instance's live connections after a store loss.

        Stores that cannot lose state while the instance lives (memory) do nothing.

        Args:
            connections: Connection id → metadata to restore (``None``: keep what is stored).
        """

    # ------------------------------------------------------------------ connections (§5)

    @abstractmethod
    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (connection → this instance) and initial metadata (None: none)."""

    @abstractmethod
    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove everything the backend holds about a connection (protocol.md §5.3 steps 3–5).

        For each room in ``tracked_rooms`` where it is present: remove presence and state and
        publish exactly one ``leave``. Then remove all memberships, metadata and the routing entry.

        Args:
            connection_id: The connection.
            tracked_rooms: Rooms the caller knows to be tracked among the connection's rooms;
                backends may also end presence found elsewhere.
        """

    @abstractmethod
    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the id of the instance holding ``connection_id``, or ``None`` if unknown."""
