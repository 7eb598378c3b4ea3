"""Connection metadata and room metadata (protocol.md §12)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

from mesh_server.backends.interfaces.records import MergeStrategy

__all__ = ["MetadataStore"]


class MetadataStore(ABC):
    """A JSON value per connection and per room, shared by all instances.

    Connection metadata begins with
    :meth:`~mesh_server.backends.interfaces.registry.InstanceRegistry.register_connection` and
    goes with the connection's unregistration; room metadata goes with
    :meth:`~mesh_server.backends.interfaces.rooms.RoomStore.clear_room`.

    Guarantees
    ----------
    * **Atomicity.** A set combines with the stored value and stores in one step (``merge`` and
      ``deepMerge`` are never lost to a concurrent set: Redis retries a check-and-set until the
      operation deadline); it returns what it stored.
    * **No events.** Metadata changes publish nothing.
    * **Enumeration.** :meth:`get_all_connection_metadata` without ids covers every registered
      connection (``None`` for one without metadata), from the routing index.
    * **Size limits.** None here: the server bounds what clients may set (``max_metadata_size``).
    * **Raises** ``UnavailableError`` when the store is unreachable or the deadline passed.
    """

    # ------------------------------------------------------------------ connections (§12.1)

    @abstractmethod
    async def set_connection_metadata(
        self, connection_id: str, value: Any, strategy: MergeStrategy = "replace"
    ) -> Any:
        """Atomically combine and store a connection's metadata; returns the stored value."""

    @abstractmethod
    async def get_connection_metadata(self, connection_id: str) -> Any:
        """Return a connection's metadata, or ``None`` if it has none or is unknown."""

    @abstractmethod
    async def get_all_connection_metadata(
        self, connection_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return connection id → metadata (``None`` for none) for the given ids or all ids."""

    # ------------------------------------------------------------------ rooms (§12.2)

    @abstractmethod
    async def set_room_metadata(
        self, room: str, value: Any, strategy: Literal["replace", "merge"] = "replace"
    ) -> Any:
        """Atomically set (``replace``) or shallowly update (``merge``) room metadata."""

    @abstractmethod
    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata or ``None``."""

    @abstractmethod
    async def get_all_room_metadata(self) -> dict[str, Any]:
        """Return room → metadata for every room that has metadata."""
