"""The metadata half of :class:`~mesh_sdk.client.MeshClient` (protocol.md §12).

Reading connection and room metadata and writing this connection's own; nothing to subscribe to.
"""

from __future__ import annotations

from typing import Any

from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.generated.models import (
    GetConnectionMetadataRequest,
    GetMyConnectionMetadataRequest,
    GetRoomMetadataRequest,
    MetadataWriteOptions,
    SetMyConnectionMetadataRequest,
)
from mesh_sdk.subscriptions.core import SubscriptionCore, succeeded, write_strategy

__all__ = ["MetadataAPI"]


class MetadataAPI(SubscriptionCore):
    """Connection and room metadata; mixed into ``MeshClient``."""

    async def get_connection_metadata(self, id: str | None = None) -> Any:
        """Return a connection's metadata (``None`` if none, unknown or denied, §12.1).

        Args:
            id: The connection id (the original ``getConnectionMetadata(id)``); ``None`` reads
                this client's own metadata.
        """
        if id is None:
            result = await self._builtin(GetMyConnectionMetadataRequest.model_construct())
        else:
            result = await self._builtin(
                GetConnectionMetadataRequest.model_construct(connectionId=id)
            )
        return result.get("metadata") if isinstance(result, dict) else None

    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata (``None`` if none, §12.2)."""
        result = await self._builtin(GetRoomMetadataRequest.model_construct(roomName=room))
        return result.get("metadata") if isinstance(result, dict) else None

    async def set_connection_metadata(self, metadata: Any, strategy: str | None = None) -> bool:
        """Set this connection's metadata (``mesh/set-my-connection-metadata``, §12.1).

        Args:
            metadata: Any JSON value (or pydantic model).
            strategy: ``"replace"`` (default), ``"merge"`` or ``"deepMerge"``.

        Returns:
            ``True`` if stored, ``False`` if the server's guard denied it.

        Raises:
            CommandNotFoundError: Client metadata writes are disabled on the server (default).
        """
        request = SetMyConnectionMetadataRequest.model_construct(metadata=to_jsonable(metadata))
        if strategy is not None:
            request.options = MetadataWriteOptions.model_construct(
                strategy=write_strategy(strategy)
            )
        return succeeded(await self._builtin(request))
