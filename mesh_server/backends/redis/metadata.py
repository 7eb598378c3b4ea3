"""Redis implementation of :class:`~mesh_server.backends.interfaces.metadata.MetadataStore`.

``replace`` is a single ``HSET``; merge strategies read, combine in Python and commit with the
``metadata_cas`` script, retrying until the operation deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.patch import combine
from mesh_server.backends.interfaces.metadata import MetadataStore
from mesh_server.backends.interfaces.records import MergeStrategy
from mesh_server.backends.redis.state import RedisState, text

__all__ = ["RedisMetadata"]


class RedisMetadata(RedisState, MetadataStore):
    """Connection and room metadata in two hashes."""

    async def _set_metadata(
        self, hash_key: str, field: str, value: Any, strategy: MergeStrategy, what: str
    ) -> Any:
        async with self._guard(what):
            if strategy == "replace":
                await self._client.hset(hash_key, field, dumps(value))
                return value
            deadline = self._deadline()
            while True:
                self._check_deadline(deadline, what)
                raw = await self._client.hget(hash_key, field)
                old = loads(raw) if raw is not None else None
                new = combine(old, value, strategy)
                committed = await self._scripts.run(
                    "metadata_cas",
                    [hash_key],
                    field,
                    "0" if raw is None else "1",
                    raw if raw is not None else "",
                    dumps(new),
                )
                if committed:
                    return new

    async def set_connection_metadata(
        self, connection_id: str, value: Any, strategy: MergeStrategy = "replace"
    ) -> Any:
        """Combine and store a connection's metadata (CAS loop for merge strategies)."""
        return await self._set_metadata(
            self._keys.conn_meta, connection_id, value, strategy, "set connection metadata"
        )

    async def get_connection_metadata(self, connection_id: str) -> Any:
        """Return a connection's metadata or ``None``."""
        async with self._guard("get connection metadata"):
            raw = await self._client.hget(self._keys.conn_meta, connection_id)
        return loads(raw) if raw is not None else None

    async def get_all_connection_metadata(
        self, connection_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return connection id → metadata for the given ids or every registered connection."""
        async with self._guard("get all connection metadata"):
            if connection_ids is None:
                ids = [text(c) for c in await self._client.hkeys(self._keys.conns)]
            else:
                ids = list(connection_ids)
            if not ids:
                return {}
            raws = await self._client.hmget(self._keys.conn_meta, ids)
        return {
            cid: loads(raw) if raw is not None else None for cid, raw in zip(ids, raws, strict=True)
        }

    async def set_room_metadata(
        self, room: str, value: Any, strategy: Literal["replace", "merge"] = "replace"
    ) -> Any:
        """Replace or shallowly merge room metadata."""
        return await self._set_metadata(
            self._keys.room_meta, room, value, strategy, "set room metadata"
        )

    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata or ``None``."""
        async with self._guard("get room metadata"):
            raw = await self._client.hget(self._keys.room_meta, room)
        return loads(raw) if raw is not None else None

    async def get_all_room_metadata(self) -> dict[str, Any]:
        """Return room → metadata for every room with metadata."""
        async with self._guard("get all room metadata"):
            raw = await self._client.hgetall(self._keys.room_meta)
        return {text(room): loads(value) for room, value in raw.items()}
