"""Connections (``server.connections``): metadata (protocol.md §12.1) and the local connections.

The manager answers the built-in metadata commands and offers server code the metadata of a
connection on any instance, pushes to connections on any instance (:meth:`ConnectionManager.send`,
:meth:`ConnectionManager.broadcast`, protocol.md §13.2), and the open connections of this instance
(:meth:`ConnectionManager.local`, :meth:`ConnectionManager.get_local`).

Metadata is stored in the backend apart from routing data. Server code sets it (``replace`` by
default, ``merge``/``deepMerge`` atomically); the ``authenticate`` hook's result is the initial
value; clients may set their own only when ``client_metadata_writes`` is enabled (off by default,
since metadata usually carries identity and permissions).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from mesh_sdk.protocol.codec import dumps, encode_push
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import TooLargeError
from mesh_sdk.protocol.generated.models import (
    GetConnectionMetadataRequest,
    GetConnectionMetadataResponse,
    GetMyConnectionMetadataRequest,
    GetMyConnectionMetadataResponse,
    NoopRequest,
    NoopResponse,
    SetMyConnectionMetadataRequest,
    SetMyConnectionMetadataResponse,
)
from mesh_server.backends.base import MERGE_STRATEGIES, MergeStrategy
from mesh_server.exposure import guard_passes
from mesh_server.features import Builtin, ConnectionLike
from mesh_server.session import is_reserved

if TYPE_CHECKING:
    from mesh_server.connection import Connection
    from mesh_server.features import ServerCore

__all__ = ["ConnectionManager", "MetadataReadGuard", "MetadataWriteGuard"]

MetadataReadGuard: TypeAlias = Callable[[ConnectionLike, str], "bool | Awaitable[bool]"]
"""``(reader connection, target connection id) -> bool``: may the reader see the metadata?"""

MetadataWriteGuard: TypeAlias = Callable[[ConnectionLike, Any], "bool | Awaitable[bool]"]
"""``(connection, new metadata) -> bool``: may the client set this metadata on itself?"""

_log = logging.getLogger("mesh_server.metadata")
_GUARD_FAILED = "metadata guard raised"


class ConnectionManager:
    """The connections: metadata on any instance and this instance's open connections.

    ``server.connections`` of a :class:`~mesh_server.MeshServer`.

    Args:
        core: The server core.
        local: The open local connections by id (a live mapping the core maintains).
        client_metadata_writes: Enable ``mesh/set-my-connection-metadata`` (protocol.md §12.1).
        metadata_write_guard: Optional check of client writes.
        metadata_read_guard: Optional check of ``mesh/get-connection-metadata`` reads.
    """

    def __init__(
        self,
        core: ServerCore,
        local: Mapping[str, Connection],
        *,
        client_metadata_writes: bool = False,
        metadata_write_guard: MetadataWriteGuard | None = None,
        metadata_read_guard: MetadataReadGuard | None = None,
    ) -> None:
        self._core = core
        self._local = local
        self.client_metadata_writes = client_metadata_writes
        self.metadata_write_guard = metadata_write_guard
        self.metadata_read_guard = metadata_read_guard

    # ------------------------------------------------------------------ local connections

    def local(self) -> dict[str, Connection]:
        """Return the open connections of this instance by id (a copy)."""
        return dict(self._local)

    def get_local(self, connection_id: str) -> Connection | None:
        """Return the open connection of this instance with this id, if any."""
        return self._local.get(connection_id)

    # ------------------------------------------------------------------ pushes (§13.2)

    async def send(self, conn_or_id: ConnectionLike | str, command: str, payload: Any) -> bool:
        """Push ``{"command","payload"}`` to one connection on any instance (O(1)).

        ``payload`` (here and in :meth:`broadcast`) is a pydantic (generated) model, dumped by
        wire name, or any JSON-able value.

        Returns:
            ``False`` if the connection is not registered anywhere.

        Raises:
            ValueError: ``command`` is reserved by the protocol (protocol.md §3.4).
        """
        frame = _push_frame(command, payload)
        connection_id = self._core.resolve_connection(conn_or_id)
        local = self._local.get(connection_id)
        if local is not None:
            local.send(frame)
            return True
        return await self._core.backend.send_to_connection(connection_id, frame)

    async def broadcast(
        self,
        command: str,
        payload: Any,
        *,
        room: str | None = None,
        exclude: ConnectionLike | str | Iterable[ConnectionLike | str] | None = None,
    ) -> None:
        """Push to every connection, or every member of ``room``, on every instance.

        One backend message whatever the number of recipients (protocol.md §13.2).

        Args:
            command: The push name (not reserved).
            payload: The payload (see :meth:`send`).
            room: Only the members of this room.
            exclude: Connections (or ids) that do not get the push.

        Raises:
            ValueError: ``command`` is reserved by the protocol (protocol.md §3.4).
        """
        frame = _push_frame(command, payload)
        backend = self._core.backend
        if exclude is None:
            await backend.broadcast(frame, room=room)
            return
        resolve = self._core.resolve_connection
        if isinstance(exclude, str | ConnectionLike):
            ids = [resolve(exclude)]
        else:
            ids = [resolve(item) for item in exclude]
        await backend.broadcast(frame, room=room, exclude=ids)

    # ------------------------------------------------------------------ metadata (§12.1)

    async def set_metadata(
        self, conn_or_id: ConnectionLike | str, value: Any, strategy: MergeStrategy = "replace"
    ) -> Any:
        """Set a connection's metadata, combining with the stored value per ``strategy``.

        Args:
            conn_or_id: The connection or its id (on any instance).
            value: A pydantic (generated) model, dumped by wire name, or any JSON value.
            strategy: ``replace`` (default), ``merge`` or ``deepMerge`` (protocol.md §11.3).

        Returns:
            The stored value.

        Raises:
            ValueError: Unknown strategy.
            UnavailableError: The backend is unreachable.
        """
        if strategy not in MERGE_STRATEGIES:
            raise ValueError(f"unknown metadata strategy {strategy!r}")
        connection_id = self._core.resolve_connection(conn_or_id)
        return await self._core.backend.set_connection_metadata(
            connection_id, to_jsonable(value), strategy
        )

    async def get_metadata(self, conn_or_id: ConnectionLike | str) -> Any:
        """Return a connection's metadata, or ``None`` if it has none or is unknown."""
        connection_id = self._core.resolve_connection(conn_or_id)
        return await self._core.backend.get_connection_metadata(connection_id)

    async def get_all_metadata(self) -> dict[str, Any]:
        """Return connection id → metadata (``None`` for none) for every connection."""
        return await self._core.backend.get_all_connection_metadata()

    async def get_all_metadata_for_room(self, room: str) -> dict[str, Any]:
        """Return connection id → metadata for every member of ``room``."""
        backend = self._core.backend
        members = await backend.room_members(room)
        if not members:
            return {}
        return await backend.get_all_connection_metadata(members)

    # ------------------------------------------------------------------ built-in commands (§7)

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """The metadata built-ins and ``mesh/noop``."""
        commands: dict[str, Builtin[Any]] = {
            "mesh/get-connection-metadata": Builtin(
                GetConnectionMetadataRequest, self._get_connection_metadata
            ),
            "mesh/get-my-connection-metadata": Builtin(
                GetMyConnectionMetadataRequest, self._get_my_connection_metadata
            ),
            "mesh/noop": Builtin(NoopRequest, _noop),
        }
        if self.client_metadata_writes:
            # §12.1: disabled by default → ENOTFOUND (not registered at all).
            commands["mesh/set-my-connection-metadata"] = Builtin(
                SetMyConnectionMetadataRequest, self._set_my_connection_metadata
            )
        return commands

    async def _get_connection_metadata(
        self, connection: ConnectionLike, request: GetConnectionMetadataRequest
    ) -> GetConnectionMetadataResponse:
        target = request.connectionId
        # §12.1: unknown id, none, or read guard denied all answer {"metadata": null}.
        metadata = None
        if await guard_passes(
            self.metadata_read_guard, connection, target, log=_log, failure=_GUARD_FAILED
        ):
            metadata = await self._core.backend.get_connection_metadata(target)
        return GetConnectionMetadataResponse.model_construct(metadata=metadata)

    async def _get_my_connection_metadata(
        self, connection: ConnectionLike, request: GetMyConnectionMetadataRequest
    ) -> GetMyConnectionMetadataResponse:
        metadata = await self._core.backend.get_connection_metadata(connection.id)
        return GetMyConnectionMetadataResponse.model_construct(metadata=metadata)

    async def _set_my_connection_metadata(
        self, connection: ConnectionLike, request: SetMyConnectionMetadataRequest
    ) -> SetMyConnectionMetadataResponse:
        metadata = request.metadata
        limit = self._core.limits.max_metadata_size
        if len(dumps(metadata)) > limit:
            raise TooLargeError("Metadata too large", details={"limit": limit})
        if not await guard_passes(
            self.metadata_write_guard, connection, metadata, log=_log, failure=_GUARD_FAILED
        ):
            return SetMyConnectionMetadataResponse.model_construct(success=False)
        options = request.options
        strategy = options.strategy if options is not None else None
        await self._core.backend.set_connection_metadata(
            connection.id, metadata, strategy or "replace"
        )
        return SetMyConnectionMetadataResponse.model_construct(success=True)


def _push_frame(command: str, payload: Any) -> bytes:
    if not isinstance(command, str) or is_reserved(command):
        raise ValueError(f"{command!r} is reserved by the Mesh protocol (protocol.md §3.4)")
    return encode_push(command, to_jsonable(payload))


async def _noop(connection: ConnectionLike, request: NoopRequest) -> NoopResponse:
    return NoopResponse.model_construct(True)
