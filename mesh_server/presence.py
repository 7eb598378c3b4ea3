"""Presence: tracked rooms, presence subscriptions, state and expiry (protocol.md §10.2–§10.5).

A room is *tracked* if any :meth:`PresenceManager.track` pattern matches it; its TTL is the first
matching pattern's and its presence guard passes if any matching pattern's guard passes. Joining
a tracked room makes a connection present (:mod:`mesh_server.rooms`); every pong refreshes its
presence deadlines, and a periodic sweep (every ``presence_sweep_interval``) lets the backend
expire the presences and states whose deadline passed, each with exactly one event.

Presence events travel on one internal pub/sub channel per room (``{ns}presence:{room}``),
subscribed once per instance while a local connection subscribes to the room's presence, and
are fanned out locally: every subscriber on every instance gets each event exactly once (§10.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from mesh_sdk.protocol.codec import dumps, encode_push, loads
from mesh_sdk.protocol.errors import TooLargeError, UnavailableError
from mesh_sdk.protocol.generated.models import (
    ClearPresenceStateRequest,
    ClearPresenceStateResponse,
    GetPresenceStateDenied,
    GetPresenceStateRequest,
    GetPresenceStateSuccess,
    PublishPresenceStateRequest,
    PublishPresenceStateResponse,
    SubscribePresenceDenied,
    SubscribePresenceRequest,
    SubscribePresenceSuccess,
    UnsubscribePresenceRequest,
    UnsubscribePresenceResponse,
)
from mesh_server.backends.messages import presence_channel
from mesh_server.exposure import Exposure, Guard, Pattern, SubscriptionQuota, check_name
from mesh_server.features import Builtin
from mesh_server.periodic import Periodic
from mesh_server.quotas import PresenceStateLedger
from mesh_server.subscribers import BackendChannels, LocalSubscribers

if TYPE_CHECKING:
    from mesh_server.features import ConnectionLike, MessageRoute, ServerCore

__all__ = ["LocalMemberships", "PresenceManager"]

PRESENCE_UPDATE: Final = "mesh/presence-update"
_TTL_CACHE_SIZE: Final = 10_000


class LocalMemberships:
    """The rooms each local connection is a member of (kept to refresh presence per pong)."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[str]] = {}

    def add(self, connection_id: str, room: str) -> bool:
        """Record a membership; returns ``True`` if it is new."""
        rooms = self._rooms.setdefault(connection_id, set())
        if room in rooms:
            return False
        rooms.add(room)
        return True

    def remove(self, connection_id: str, room: str) -> bool:
        """Forget a membership; returns whether it was known."""
        rooms = self._rooms.get(connection_id)
        if rooms is None or room not in rooms:
            return False
        rooms.discard(room)
        if not rooms:
            del self._rooms[connection_id]
        return True

    def has(self, connection_id: str, room: str) -> bool:
        """Whether the membership is known."""
        return room in self._rooms.get(connection_id, ())

    def rooms_of(self, connection_id: str) -> set[str]:
        """Return a copy of the rooms of ``connection_id``."""
        return set(self._rooms.get(connection_id, ()))

    def drop(self, connection_id: str) -> set[str]:
        """Forget every membership of ``connection_id``; returns the rooms."""
        return self._rooms.pop(connection_id, set())


class PresenceManager:
    """Tracked rooms, presence subscriptions and states."""

    def __init__(
        self,
        core: ServerCore,
        pubsub: BackendChannels,
        quota: SubscriptionQuota,
        memberships: LocalMemberships,
        *,
        sweep_interval: float = 1.0,
    ) -> None:
        if not sweep_interval > 0:
            raise ValueError("presence_sweep_interval must be > 0 seconds")
        self._core = core
        self._pubsub = pubsub
        self._memberships = memberships
        self._exposure = Exposure()
        # TTLs in ms: the backend's presence deadlines are ms (mesh_server.limits).
        self._ttls: list[int] = []
        self._ttl_cache: dict[str, int | None] = {}
        self._prefix = presence_channel(core.namespace, "")
        self._subscribers = LocalSubscribers(core, pubsub, quota, self._prefix)
        self._states = PresenceStateLedger(core.limits.max_presence_state_bytes)
        self._sweeper = Periodic("mesh-presence-sweep", sweep_interval, self._sweep_once, core.log)

    # ------------------------------------------------------------------ server API

    def track(self, pattern: Pattern, ttl: float | None = None, guard: Guard | None = None) -> None:
        """Track presence in rooms matching ``pattern`` (§10.2, §10.3).

        Args:
            pattern: Exact room name or compiled regular expression (full match, §11.1).
            ttl: Presence TTL in seconds; default ``(max_missed_pongs + 2) × ping_interval``.
            guard: ``(connection, room) -> bool`` for presence reads and state writes.

        Raises:
            ValueError: ``ttl`` ≤ ``ping_interval`` (a healthy client would expire).
        """
        ping_interval = self._core.ping_interval
        recommended = (self._core.max_missed_pongs + 2) * ping_interval
        if ttl is None:
            ttl = recommended
        if ttl <= ping_interval:
            raise ValueError(f"presence ttl {ttl} s must exceed ping_interval {ping_interval} s")
        if ttl < recommended:
            self._core.log.warning(
                "presence ttl %g s for %r is below (max_missed_pongs + 2) × ping_interval = %g s; "
                "live connections may expire",
                ttl,
                pattern,
                recommended,
            )
        self._exposure.add(pattern, guard)
        self._ttls.append(max(1, round(ttl * 1000)))
        self._ttl_cache.clear()

    def ttl_ms_for(self, room: str) -> int | None:
        """Return the room's presence TTL in ms (first matching pattern), ``None`` if untracked.

        Milliseconds, as the backend's presence operations take them.
        """
        try:
            return self._ttl_cache[room]
        except KeyError:
            pass
        index = self._exposure.first_match(room)
        ttl = None if index is None else self._ttls[index]
        if len(self._ttl_cache) >= _TTL_CACHE_SIZE:
            self._ttl_cache.clear()
        self._ttl_cache[room] = ttl
        return ttl

    def is_tracked(self, room: str) -> bool:
        """Whether presence is tracked in ``room``."""
        return self.ttl_ms_for(room) is not None

    def tracked_rooms_of(self, room_names: Iterable[str]) -> list[str]:
        """Return the tracked rooms among ``room_names`` (for cleanup, §5.3)."""
        return [room for room in room_names if self.ttl_ms_for(room) is not None]

    async def guard_allows(self, connection: ConnectionLike, room: str) -> bool:
        """Whether the room is tracked and a matching pattern's presence guard passes."""
        return await self._exposure.allows(connection, room)

    async def get_present_connections(self, room: str) -> list[str]:
        """Return the ids present in ``room`` (all instances)."""
        return (await self._core.backend.presence_snapshot(room)).present

    # ------------------------------------------------------------------ built-ins

    def builtin_commands(self) -> Mapping[str, Builtin[Any]]:
        """Return the presence built-ins (§7)."""
        return {
            "mesh/subscribe-presence": Builtin(SubscribePresenceRequest, self._subscribe),
            "mesh/unsubscribe-presence": Builtin(UnsubscribePresenceRequest, self._unsubscribe),
            "mesh/get-presence-state": Builtin(GetPresenceStateRequest, self._get_state),
            "mesh/publish-presence-state": Builtin(
                PublishPresenceStateRequest, self._publish_state
            ),
            "mesh/clear-presence-state": Builtin(ClearPresenceStateRequest, self._clear_state),
        }

    def _room(self, command: str, room: str) -> str:
        check_name(command, "roomName", room, self._core.limits.max_name_length)
        return room

    async def _subscribe(
        self, connection: ConnectionLike, request: SubscribePresenceRequest
    ) -> SubscribePresenceSuccess | SubscribePresenceDenied:
        room = self._room("mesh/subscribe-presence", request.roomName)
        if not await self.guard_allows(connection, room):
            return SubscribePresenceDenied.model_construct(success=False, present=[])
        cid = connection.id
        # §10.4: register, read present/states, then queue the response before any event of
        # this subscription (events arriving meanwhile are held back).
        repeat = await self._subscribers.open(room, cid)
        try:
            snapshot = await self._core.backend.presence_snapshot(room)
        except BaseException:
            await self._subscribers.rollback(room, cid, repeat=repeat)
            raise
        connection.after_response(lambda: self._subscribers.unhold(room, cid))
        return SubscribePresenceSuccess.model_construct(
            success=True, present=snapshot.present, states=snapshot.states
        )

    async def _unsubscribe(
        self, connection: ConnectionLike, request: UnsubscribePresenceRequest
    ) -> UnsubscribePresenceResponse:
        room = self._room("mesh/unsubscribe-presence", request.roomName)
        ended = await self._subscribers.end(room, connection.id)
        return UnsubscribePresenceResponse.model_construct(ended)

    async def _get_state(
        self, connection: ConnectionLike, request: GetPresenceStateRequest
    ) -> GetPresenceStateSuccess | GetPresenceStateDenied:
        room = self._room("mesh/get-presence-state", request.roomName)
        if not await self.guard_allows(connection, room):
            return GetPresenceStateDenied.model_construct(success=False, present=[])
        snapshot = await self._core.backend.presence_snapshot(room)
        return GetPresenceStateSuccess.model_construct(
            success=True, present=snapshot.present, states=snapshot.states
        )

    async def _publish_state(
        self, connection: ConnectionLike, request: PublishPresenceStateRequest
    ) -> PublishPresenceStateResponse:
        room = self._room("mesh/publish-presence-state", request.roomName)
        state = request.state  # never null: the request schema rejects it (§7)
        # §7: false when the room is untracked or the presence guard denies.
        if not await self.guard_allows(connection, room):
            return PublishPresenceStateResponse.model_construct(False)
        limit = self._core.limits.max_presence_state_size
        size = len(dumps(state))
        if size > limit:
            raise TooLargeError(f"Presence state exceeds {limit} bytes", details={"limit": limit})
        cid = connection.id
        self._states.check(cid, room, size)
        expire_after = request.expireAfter or None
        # The backend answers False (nothing stored) when the caller is not present.
        stored = await self._core.backend.set_presence_state(
            room, cid, state, expire_after_ms=expire_after, silent=bool(request.silent)
        )
        if stored:
            self._states.stored(cid, room, size, expire_after)
        else:
            self._states.forget(cid, room)
        return PublishPresenceStateResponse.model_construct(stored)

    async def _clear_state(
        self, connection: ConnectionLike, request: ClearPresenceStateRequest
    ) -> ClearPresenceStateResponse:
        room = self._room("mesh/clear-presence-state", request.roomName)
        if not await self.guard_allows(connection, room):
            return ClearPresenceStateResponse.model_construct(False)
        cleared = await self._core.backend.clear_presence_state(room, connection.id)
        self._states.forget(connection.id, room)
        return ClearPresenceStateResponse.model_construct(cleared)

    def forget_state(self, connection_id: str, room: str) -> None:
        """Stop counting a local connection's state in ``room`` (it left or was removed)."""
        self._states.forget(connection_id, room)

    # ------------------------------------------------------------------ Feature hooks

    def message_routes(self) -> Mapping[str, MessageRoute]:
        """Presence events arrive on ``{ns}presence:{room}``."""
        return {self._prefix: self._on_event}

    def _on_event(self, channel: str, data: bytes) -> None:
        room = channel[len(self._prefix) :]
        if room not in self._subscribers:
            return
        try:
            payload = loads(data)
        except ValueError:
            self._core.log.warning("dropping malformed presence event on %r", channel)
            return
        # Decoded once, encoded once, sent to every local subscriber (§10.4).
        self._subscribers.deliver(room, encode_push(PRESENCE_UPDATE, payload))

    async def on_disconnect(self, connection: ConnectionLike) -> None:
        """Drop the connection's presence subscriptions (§5.3 step 2) and state quota."""
        self._states.drop(connection.id)
        await self._subscribers.end_connection(connection.id)

    async def on_pong(self, connection: ConnectionLike) -> None:
        """Refresh the connection's presence in its tracked rooms (§10.3)."""
        rooms = [
            (room, ttl)
            for room in self._memberships.rooms_of(connection.id)
            if (ttl := self.ttl_ms_for(room)) is not None
        ]
        if rooms:
            await self._core.backend.refresh_presence(connection.id, rooms)

    async def on_backend_recovered(self) -> None:
        """Re-assert the backend subscriptions of presence channels."""
        await self._pubsub.resync(self._pubsub.channels(self._prefix))

    async def start(self) -> None:
        """Start the expiry sweep (every ``presence_sweep_interval`` seconds, §10.3)."""
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop the expiry sweep (between sweeps: a backend call is never cancelled)."""
        await self._sweeper.stop()

    async def _sweep_once(self) -> None:
        try:
            expired = await self._core.backend.sweep_presence()
        except UnavailableError:
            self._core.log.debug("presence sweep skipped: backend unavailable")
            return
        self._core.metrics.presence_expired(expired)
