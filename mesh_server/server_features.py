"""Channel, room, presence and record methods of :class:`mesh_server.MeshServer`.

They delegate to the feature managers created by :mod:`mesh_server.builtin_features`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mesh_server.backends.base import MergeStrategy
from mesh_server.builtin_features import create_features
from mesh_server.features import ConnectionLike, Feature

if TYPE_CHECKING:
    from mesh_server.builtin_features import FeatureSet
    from mesh_server.hub import Hub
    from mesh_server.presence import PresenceManager
    from mesh_server.rooms import RoomManager

__all__ = ["FeatureAPI"]

_log = logging.getLogger("mesh_server")


class FeatureAPI:
    """Mixin: channel, room, presence and record methods of the server."""

    _features: list[Feature]
    _feature_set: FeatureSet | None = None
    _hub: Hub

    def _init_features(self, presence_sweep_interval: float) -> None:
        feature_set = create_features(
            self,  # type: ignore[arg-type]  # the mixin is a ServerCore once mixed in
            presence_sweep_interval=presence_sweep_interval,
        )
        self._feature_set = feature_set
        self._features = list(feature_set.all)
        # Remote membership changes must reach the room manager (presence refresh, quotas),
        # not only the core's local room index.
        self._hub.set_room_handlers(feature_set.rooms.apply_control, feature_set.rooms.apply_clear)

    def _require(self) -> FeatureSet:
        if self._feature_set is None:  # pragma: no cover - see _init_features
            raise RuntimeError("the feature managers (mesh_server.builtin_features) are missing")
        return self._feature_set

    def _tracked_rooms(self, rooms: list[str]) -> list[str]:
        if self._feature_set is None or not rooms:
            return []
        return list(self._feature_set.presence.tracked_rooms_of(rooms))

    # ------------------------------------------------------------------ channels (§9)

    def expose_channel(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Allow clients to subscribe to channels matching ``pattern``.

        ``pattern`` is an exact name or a full-match regex; ``guard(connection, channel)`` may
        deny (protocol.md §9.1, §11.1).
        """
        self._require().channels.expose(pattern, guard)

    async def publish_to_channel(self, channel: str, message: Any, history: int = 0) -> None:
        """Publish ``message`` on ``channel`` (protocol.md §9.5).

        Strings are sent verbatim, other values as compact JSON; with ``history`` > 0 the
        ``history`` most recent messages are kept.
        """
        await self._require().channels.publish(channel, message, history)

    # ------------------------------------------------------------------ rooms (§10.1)

    @property
    def room_manager(self) -> RoomManager:
        """The room manager."""
        return self._require().rooms

    async def add_to_room(self, room: str, conn_or_id: ConnectionLike | str) -> None:
        """Add a connection (on any instance) to ``room``."""
        await self._require().rooms.add(room, conn_or_id)

    async def remove_from_room(self, room: str, conn_or_id: ConnectionLike | str) -> None:
        """Remove a connection from ``room``."""
        await self._require().rooms.remove(room, conn_or_id)

    async def is_in_room(self, room: str, conn_or_id: ConnectionLike | str) -> bool:
        """Return whether a connection is a member of ``room``."""
        return await self._require().rooms.is_member(room, conn_or_id)

    async def get_room_members(self, room: str) -> list[str]:
        """Return the ids of all members of ``room`` (all instances)."""
        return await self._require().rooms.members(room)

    async def remove_from_all_rooms(self, conn_or_id: ConnectionLike | str) -> None:
        """Remove a connection from every room."""
        await self._require().rooms.remove_from_all(conn_or_id)

    async def clear_room(self, room: str) -> None:
        """Remove every member (with presence ``leave`` events) and the room's metadata."""
        await self._require().rooms.clear(room)

    async def get_all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        return await self._require().rooms.all_rooms()

    # ------------------------------------------------------------------ presence (§10)

    @property
    def presence_manager(self) -> PresenceManager:
        """The presence manager."""
        return self._require().presence

    def track_presence(
        self,
        pattern: Any,
        ttl: float | Callable[..., Any] | Mapping[str, Any] | None = None,
        guard: Callable[..., Any] | None = None,
    ) -> None:
        """Track presence in rooms matching ``pattern`` (protocol.md §10.2).

        Accepts ``track_presence(pattern, ttl=None, guard=None)``, ``track_presence(pattern,
        guard)`` and ``track_presence(pattern, {"ttl": ..., "guard": ...})``. ``ttl`` is the
        presence TTL in seconds (default ``(max_missed_pongs + 2) × ping_interval``).
        """
        if isinstance(ttl, Mapping):
            options = ttl
            ttl, guard = options.get("ttl"), options.get("guard", guard)
        elif callable(ttl):
            ttl, guard = None, ttl
        self._require().presence.track(pattern, ttl=ttl, guard=guard)

    async def get_present_connections(self, room: str) -> list[str]:
        """Return the ids present in a tracked ``room``."""
        return await self._require().presence.get_present_connections(room)

    # ------------------------------------------------------------------ records (§11)

    def expose_record(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Allow clients to read (subscribe to) records matching ``pattern``.

        ``guard(connection, record_id)`` (sync or async) may deny (protocol.md §11.1).
        """
        self._require().records.expose(pattern, guard)

    def expose_writable_record(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Allow clients to read and write records matching ``pattern``.

        ``guard`` (sync or async) is either ``guard(connection, record_id)`` or
        ``guard(connection, record_id, value)``; the form is decided here, once, from its
        signature (three positional parameters → the value form). The value form gets the
        ``newValue`` a client writes (as sent: the partial value of a ``merge``/``deepMerge``
        write) and, when asked whether the connection may read the record through this pattern
        (writable ⇒ readable), :data:`mesh_server.exposure.READ_ACCESS` instead of a value.

        Raises:
            TypeError: ``guard`` accepts neither form.
        """
        self._require().records.expose_writable(pattern, guard)

    async def publish_record_update(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        expected_version: int | None = None,
    ) -> None:
        """Write a record atomically and push the update to its subscribers (§11.3).

        Args:
            record_id: The record.
            value: The value (a JSON value or pydantic model), combined per ``strategy``.
            strategy: ``"replace"``, ``"merge"`` or ``"deepMerge"``.
            expected_version: Write only if the record is still at this version (0: absent),
                as read by :meth:`get_record`; ``None`` writes unconditionally.

        Raises:
            ConflictError: The record is at another version (``ECONFLICT``, ``details`` =
                ``{"expected": int, "actual": int}``); nothing was stored.
            ValidationError: The contract's record schema rejects the value.
            TooLargeError: The value exceeds ``max_record_size``.
            UnavailableError: The backend is unreachable.
        """
        await self._require().records.publish_update(
            record_id, value, strategy, expected_version=expected_version
        )

    async def update_record(self, record_id: str, fn: Callable[[Any], Any]) -> tuple[Any, int]:
        """Atomically read, modify and write a record (§11.3); returns ``(value, version)``.

        ``fn(current)`` returns the new value (sync or async) from the current one (``None``
        when absent; a private copy it may mutate). The result is committed, as a ``replace``
        write, only if nothing was written in between; otherwise ``fn`` runs again on the newer
        value after a jittered pause, until the backend's operation deadline. So ``fn`` may run
        more than once: it should only compute. Returning the current value writes nothing.
        ``fn`` may raise to abort: nothing is written and the exception propagates unchanged.

        Example::

            def move(game):
                game = game or {"moves": []}
                if cell in game["moves"]:
                    raise ForbiddenError("cell taken")  # aborts: nothing written
                game["moves"].append(cell)
                return game

            value, version = await server.update_record("game:1", move)

        Returns:
            The committed value and its version.

        Raises:
            ValidationError: The contract's record schema rejects the new value.
            TooLargeError: The new value exceeds ``max_record_size``.
            UnavailableError: The backend is unreachable, or the deadline passed (conflicts).
            RuntimeError: ``fn`` wrote the record it updates (it would wait for itself).
        """
        written = await self._require().records.update(record_id, fn)
        return written.value, written.version

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)`` of a record; ``(None, 0)`` when absent."""
        return await self._require().records.get(record_id)

    async def delete_record(self, record_id: str) -> None:
        """Delete a record; subscribers get ``mesh/record-deleted`` (§11.6)."""
        await self._require().records.delete(record_id)

    # ------------------------------------------------------------------ room metadata (§12.2)

    async def set_room_metadata(self, room: str, value: Any) -> None:
        """Replace a room's metadata."""
        await self._require().rooms.set_metadata(room, value)

    async def update_room_metadata(self, room: str, value: Any) -> None:
        """Shallow-merge into a room's metadata (replace if not both objects)."""
        await self._require().rooms.update_metadata(room, value)

    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata or ``None``."""
        return await self._require().rooms.get_metadata(room)
