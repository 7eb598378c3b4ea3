"""Memory implementation of :class:`~mesh_server.backends.interfaces.metadata.MetadataStore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.patch import combine
from mesh_server.backends.interfaces.metadata import MetadataStore
from mesh_server.backends.interfaces.records import MergeStrategy
from mesh_server.backends.memory.state import MemoryState

__all__ = ["MemoryMetadata"]


class MemoryMetadata(MemoryState, MetadataStore):
    """Metadata as encoded JSON per connection and per room."""

    async def set_connection_metadata(
        self, connection_id: str, value: Any, strategy: MergeStrategy = "replace"
    ) -> Any:
        """Combine ``value`` with the stored metadata per ``strategy``; return the result."""
        old = self._s.conn_meta.get(connection_id)
        encoded = dumps(combine(None if old is None else loads(old), value, strategy))
        self._s.conn_meta[connection_id] = encoded
        return loads(encoded)

    async def get_connection_metadata(self, connection_id: str) -> Any:
        """Return the metadata or ``None``."""
        encoded = self._s.conn_meta.get(connection_id)
        return None if encoded is None else loads(encoded)

    async def get_all_connection_metadata(
        self, connection_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return id → metadata for ``connection_ids`` or every registered connection."""
        ids = list(self._s.routes) if connection_ids is None else connection_ids
        result: dict[str, Any] = {}
        for connection_id in ids:
            encoded = self._s.conn_meta.get(connection_id)
            result[connection_id] = None if encoded is None else loads(encoded)
        return result

    async def set_room_metadata(
        self, room: str, value: Any, strategy: Literal["replace", "merge"] = "replace"
    ) -> Any:
        """Replace or shallowly update the room's metadata (§12.2); return the result."""
        old = self._s.room_meta.get(room)
        encoded = dumps(combine(None if old is None else loads(old), value, strategy))
        self._s.room_meta[room] = encoded
        return loads(encoded)

    async def get_room_metadata(self, room: str) -> Any:
        """Return the room's metadata or ``None``."""
        encoded = self._s.room_meta.get(room)
        return None if encoded is None else loads(encoded)

    async def get_all_room_metadata(self) -> dict[str, Any]:
        """Return room → metadata for every room with metadata."""
        return {room: loads(encoded) for room, encoded in self._s.room_meta.items()}
