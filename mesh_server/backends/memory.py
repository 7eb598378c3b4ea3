"""The in-process backend: the default, for one server process (and for multi-instance tests).

:class:`MemoryHub` is the shared store and pub/sub; :class:`MemoryBackend` is one instance's view
of it. Several backends sharing one hub behave like several instances on one Redis, which lets
the multi-instance behaviour (routing, presence sweeps, dead-instance cleanup) run in tests
without a Redis server. A backend created without a hub gets a private one.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.errors import ConflictError, TooLargeError, UnavailableError
from mesh_sdk.protocol.patch import combine, diff, json_equal
from mesh_server.backends.base import (
    Backend,
    DeadInstanceReport,
    JoinResult,
    MergeStrategy,
    MessageHandler,
    PresenceSnapshot,
    RecordUpdater,
    RecordWrite,
)
from mesh_server.backends.messages import (
    BROADCAST,
    encode_envelope,
    inbox_channel,
    presence_channel,
    record_channel,
)
from mesh_server.backends.slots import RecordSlots

__all__ = ["DEFAULT_INSTANCE_TTL_MS", "MemoryBackend", "MemoryHub"]

log = logging.getLogger(__name__)

DEFAULT_INSTANCE_TTL_MS: Final = 15_000
"""Heartbeat TTL given to an instance by :meth:`MemoryBackend.start` (PROTOCOL §13.3)."""

_MIN_COMPACT_AT: Final = 1024
_PRESENCE: Final = 0
_STATE: Final = 1


def _monotonic_ms() -> float:
    return time.monotonic() * 1000.0


def _wall_ms() -> int:
    # PROTOCOL §8: the presence-update timestamp is the producing instance's wall clock.
    return int(time.time() * 1000)


class _Endpoint:
    """One backend's pub/sub connection: its handler and its subscribed channels."""

    __slots__ = ("channels", "closed", "handler")

    def __init__(self, handler: MessageHandler) -> None:
        self.handler = handler
        self.channels: set[str] = set()
        self.closed = False

    def deliver(self, channel: str, data: bytes) -> None:
        # Checked at delivery time: a message in flight to a dropped subscription is lost, as
        # at-most-once delivery allows.
        if self.closed or channel not in self.channels:
            return
        try:
            self.handler(channel, data)
        except Exception:
            log.exception("message handler failed on channel %r", channel)


@dataclass(eq=False)
class _Store:
    """Everything one namespace holds; values are encoded JSON bytes (or immutable str)."""

    instances: dict[str, float] = field(default_factory=dict)
    instance_conns: dict[str, set[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)
    conn_meta: dict[str, bytes] = field(default_factory=dict)
    room_meta: dict[str, bytes] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    conn_rooms: dict[str, set[str]] = field(default_factory=dict)
    presence: dict[str, dict[str, float]] = field(default_factory=dict)
    states: dict[tuple[str, str], tuple[bytes, float | None]] = field(default_factory=dict)
    deadlines: list[tuple[float, int, int, str, str]] = field(default_factory=list)
    history: dict[str, deque[str]] = field(default_factory=dict)
    records: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    seq: int = 0
    compact_at: int = _MIN_COMPACT_AT

    def schedule(self, deadline: float, kind: int, room: str, conn: str) -> None:
        """Index a presence or state deadline (stale heap entries are skipped when popped)."""
        self.seq += 1
        heapq.heappush(self.deadlines, (deadline, self.seq, kind, room, conn))
        if len(self.deadlines) > self.compact_at:
            # Refreshes leave stale entries behind; rebuilding when the heap has grown 4-fold
            # since the last rebuild keeps memory bounded at amortized O(log n) per entry.
            self.deadlines = [entry for entry in self.deadlines if self.is_current(entry)]
            heapq.heapify(self.deadlines)
            self.compact_at = max(_MIN_COMPACT_AT, 4 * len(self.deadlines))

    def is_current(self, entry: tuple[float, int, int, str, str]) -> bool:
        """Whether a heap entry is still the live deadline of its presence or state."""
        deadline, _, kind, room, conn = entry
        if kind == _PRESENCE:
            return self.presence.get(room, {}).get(conn) == deadline
        state = self.states.get((room, conn))
        return state is not None and state[1] == deadline


class MemoryHub:
    """The shared in-process store and pub/sub behind one or more :class:`MemoryBackend` objects.

    Each namespace has its own store (like keys prefixed per namespace on one Redis); pub/sub
    channels are global, as Redis pub/sub ignores prefixes and databases.

    Args:
        clock: The store clock in milliseconds (monotonic by default); all deadlines (presence,
            states, heartbeats) use it, never an instance's clock. Tests inject a fake one.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock if clock is not None else _monotonic_ms
        self._stores: dict[str, _Store] = {}
        self._subscribers: dict[str, dict[_Endpoint, None]] = {}

    def now(self) -> float:
        """Return the store clock in milliseconds."""
        return self._clock()

    def _store(self, namespace: str) -> _Store:
        store = self._stores.get(namespace)
        if store is None:
            store = self._stores[namespace] = _Store()
        return store

    def _subscribe(self, channel: str, endpoint: _Endpoint) -> None:
        endpoint.channels.add(channel)
        self._subscribers.setdefault(channel, {})[endpoint] = None

    def _unsubscribe(self, channel: str, endpoint: _Endpoint) -> None:
        endpoint.channels.discard(channel)
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.pop(endpoint, None)
            if not subscribers:
                del self._subscribers[channel]

    def publish(self, channel: str, data: bytes) -> int:
        """Queue ``data`` for every current subscriber of ``channel``; return their number.

        Delivery happens later on the running event loop, never inside the publisher's call
        stack (as with Redis, handlers cannot re-enter the publisher). ``call_soon`` runs
        callbacks in FIFO order, so every subscriber sees messages in publication order.
        """
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return 0
        loop = asyncio.get_running_loop()
        for endpoint in subscribers:
            loop.call_soon(endpoint.deliver, channel, data)
        return len(subscribers)


class MemoryBackend(Backend):
    """A :class:`~mesh_server.backends.base.Backend` kept in process memory.

    Guarantees
    ----------
    * **Single process only.** State lives in a :class:`MemoryHub` object: instances sharing a
      hub must run in one process and on one event loop. Use the Redis backend to scale out.
    * **Atomicity.** Every operation runs without awaiting between its reads and writes, so it is
      one indivisible step on the event loop; events are published inside that step.
    * **Delivery.** Pub/sub messages reach each subscribed backend's handler at most once, in
      publication order, from a later event-loop callback (never synchronously in the publisher's
      call stack). A handler that raises is logged and does not affect other deliveries.
    * **Isolation.** Values are stored as encoded JSON bytes and decoded on every read, so
      nothing mutable is shared between writers, readers and subscribers.
    * **Clock.** Presence, state and heartbeat deadlines use the hub clock (monotonic ms).
    * **Errors.** Nothing can be unreachable: operations raise only the documented
      :class:`~mesh_sdk.protocol.errors.TooLargeError` and
      :class:`~mesh_sdk.protocol.errors.ConflictError`, exceptions of a ``validate`` callback or
      an update function, and ``UnavailableError`` when :meth:`update_record` misses its
      deadline; :meth:`ping` raises ``UnavailableError`` after :meth:`close`.
    * **Record updates.** :meth:`update_record` holds a per-record slot of this backend while
      its function runs (updates of one record on one instance wait for each other); if a
      write of another instance, or a plain write, commits while the function awaits, the
      function runs again on the new value after a jittered pause.

    Args:
        namespace: Prefix of internal channels; backends see each other's state only within
            the same namespace of the same hub.
        hub: Shared store and pub/sub; a private one when ``None``.
        clock: Clock of the private hub, in milliseconds (only without ``hub``: a shared hub has
            one clock).
        instance_ttl_ms: Heartbeat TTL registered by :meth:`start`.
        operation_timeout: Deadline of one :meth:`update_record`, its function's runs
            included, in seconds (→ ``UnavailableError``).
        record_retry_base: First jittered pause after an update conflict, in seconds.
        record_retry_max: Longest pause between conflicting update attempts, in seconds.

    Raises:
        ValueError: Both ``hub`` and ``clock`` were given.
    """

    def __init__(
        self,
        namespace: str = "mesh:",
        *,
        hub: MemoryHub | None = None,
        clock: Callable[[], float] | None = None,
        instance_ttl_ms: int = DEFAULT_INSTANCE_TTL_MS,
        operation_timeout: float = 5.0,
        record_retry_base: float = 0.001,
        record_retry_max: float = 0.032,
    ) -> None:
        if hub is not None and clock is not None:
            raise ValueError("pass the clock to the MemoryHub, not to a backend sharing it")
        self.namespace = namespace
        self.hub = hub if hub is not None else MemoryHub(clock)
        self.instance_ttl_ms = instance_ttl_ms
        self._s = self.hub._store(namespace)
        self._instance_id: str | None = None
        self._endpoint: _Endpoint | None = None
        self._closed = False
        self._operation_timeout = operation_timeout
        self._retry = (record_retry_base, record_retry_max)
        self._slots = RecordSlots()

    @property
    def instance_id(self) -> str:
        """The id given to :meth:`start`.

        Raises:
            RuntimeError: The backend was not started.
        """
        if self._instance_id is None:
            raise RuntimeError("MemoryBackend used before start()")
        return self._instance_id

    def _now(self) -> float:
        return self.hub.now()

    def _emit(self, channel: str, payload: Any) -> None:
        self.hub.publish(channel, dumps(payload))

    # ------------------------------------------------------------------ lifecycle and instances

    async def start(self, instance_id: str, on_message: MessageHandler) -> None:
        """Register the instance with a heartbeat and subscribe its inbox and broadcast."""
        self._instance_id = instance_id
        self._closed = False
        self._endpoint = _Endpoint(on_message)
        self._s.instances[instance_id] = self._now() + self.instance_ttl_ms
        self._s.instance_conns.setdefault(instance_id, set())
        self.hub._subscribe(inbox_channel(self.namespace, instance_id), self._endpoint)
        self.hub._subscribe(self.namespace + BROADCAST, self._endpoint)

    async def close(self) -> None:
        """Deregister the instance, clean up leftover connections and drop subscriptions."""
        if self._closed or self._instance_id is None:
            self._closed = True
            return
        self._closed = True
        self._remove_instance(self._instance_id)
        endpoint = self._endpoint
        if endpoint is not None:
            for channel in list(endpoint.channels):
                self.hub._unsubscribe(channel, endpoint)
            endpoint.closed = True

    async def reregister_connections(self, connections: Mapping[str, Any]) -> None:
        """Do nothing: the in-process store cannot lose state while this instance lives."""

    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh the heartbeat; ``False`` if it had lapsed or was removed (re-created anyway)."""
        instance_id = self.instance_id
        now = self._now()
        deadline = self._s.instances.get(instance_id)
        alive = deadline is not None and deadline > now
        self._s.instances[instance_id] = now + ttl_ms
        self._s.instance_conns.setdefault(instance_id, set())
        return alive

    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim and clean every instance whose heartbeat lapsed (PROTOCOL §13.4)."""
        now = self._now()
        dead = sorted(i for i, deadline in self._s.instances.items() if deadline <= now)
        return [self._remove_instance(instance_id) for instance_id in dead]

    def _remove_instance(self, instance_id: str) -> DeadInstanceReport:
        self._s.instances.pop(instance_id, None)
        connections = sorted(self._s.instance_conns.pop(instance_id, set()))
        for connection_id in connections:
            if self._s.routes.get(connection_id) == instance_id:
                self._drop_connection(connection_id, ())
        return DeadInstanceReport(instance_id, connections)

    async def ping(self) -> None:
        """Return at once; raise ``UnavailableError`` once the backend is closed."""
        if self._closed:
            raise UnavailableError("memory backend is closed")

    # ------------------------------------------------------------------ pub/sub

    def _require_endpoint(self) -> _Endpoint:
        if self._endpoint is None:
            raise RuntimeError("MemoryBackend used before start()")
        return self._endpoint

    async def subscribe(self, channel: str) -> None:
        """Subscribe this instance to ``channel`` (idempotent)."""
        self.hub._subscribe(channel, self._require_endpoint())

    async def unsubscribe(self, channel: str) -> None:
        """Drop this instance's subscription to ``channel`` (idempotent)."""
        self.hub._unsubscribe(channel, self._require_endpoint())

    async def publish(self, channel: str, data: bytes) -> None:
        """Publish raw ``data`` on ``channel``."""
        self.hub.publish(channel, bytes(data))

    # ------------------------------------------------------------------ connections and routing

    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (connection → this instance) and initial metadata."""
        instance_id = self.instance_id
        previous = self._s.routes.get(connection_id)
        if previous is not None and previous != instance_id:
            self._s.instance_conns.get(previous, set()).discard(connection_id)
        self._s.routes[connection_id] = instance_id
        self._s.instance_conns.setdefault(instance_id, set()).add(connection_id)
        if metadata is None:
            self._s.conn_meta.pop(connection_id, None)
        else:
            self._s.conn_meta[connection_id] = dumps(metadata)

    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove presence (one ``leave`` per present room), memberships, metadata and route."""
        self._drop_connection(connection_id, tracked_rooms)

    def _drop_connection(self, connection_id: str, tracked_rooms: Iterable[str]) -> None:
        # PROTOCOL §5.3 steps 3–5. Presence implies membership here, so scanning the
        # connection's rooms also ends presence in rooms the caller did not list.
        rooms = dict.fromkeys(tracked_rooms)
        rooms.update(dict.fromkeys(sorted(self._s.conn_rooms.get(connection_id, ()))))
        for room in rooms:
            self._end_presence(room, connection_id)
            self._remove_member(room, connection_id)
        self._s.conn_rooms.pop(connection_id, None)
        self._s.conn_meta.pop(connection_id, None)
        instance_id = self._s.routes.pop(connection_id, None)
        if instance_id is not None:
            self._s.instance_conns.get(instance_id, set()).discard(connection_id)

    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the instance holding ``connection_id``, or ``None``."""
        return self._s.routes.get(connection_id)

    async def all_connection_ids(self) -> list[str]:
        """Return every registered connection id."""
        return list(self._s.routes)

    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Publish ``frame`` to the inbox of the instance holding the connection."""
        instance_id = self._s.routes.get(connection_id)
        if instance_id is None:
            return False
        data = encode_envelope({"t": "send", "c": connection_id}, bytes(frame))
        self.hub.publish(inbox_channel(self.namespace, instance_id), data)
        return True

    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """Publish one broadcast envelope that every instance resolves locally (§13.2)."""
        header = {"t": "bc", "r": room, "x": list(exclude)}
        self.hub.publish(self.namespace + BROADCAST, encode_envelope(header, bytes(frame)))

    # ------------------------------------------------------------------ metadata (§12)

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

    # ------------------------------------------------------------------ rooms (§10.1, §10.2)

    def _presence_event(self, kind: str, room: str, connection_id: str, state: Any = None) -> None:
        event: dict[str, Any] = {
            "type": kind,
            "connectionId": connection_id,
            "roomName": room,
            "timestamp": _wall_ms(),
        }
        if kind == "state":
            event["state"] = state
        self._emit(presence_channel(self.namespace, room), event)

    def _set_presence(self, room: str, connection_id: str, ttl_ms: int) -> bool:
        """Set the presence deadline; publish ``join`` and return ``True`` if newly present."""
        present = self._s.presence.setdefault(room, {})
        joined = connection_id not in present
        deadline = self._now() + ttl_ms
        present[connection_id] = deadline
        self._s.schedule(deadline, _PRESENCE, room, connection_id)
        if joined:
            self._presence_event("join", room, connection_id)
        return joined

    def _end_presence(self, room: str, connection_id: str) -> bool:
        """End presence and state silently but for one ``leave``; ``False`` if not present."""
        present = self._s.presence.get(room)
        if present is None or connection_id not in present:
            return False
        del present[connection_id]
        if not present:
            del self._s.presence[room]
        self._s.states.pop((room, connection_id), None)
        self._presence_event("leave", room, connection_id)
        return True

    def _remove_member(self, room: str, connection_id: str) -> bool:
        members = self._s.members.get(room)
        if members is None or connection_id not in members:
            return False
        members.discard(connection_id)
        if not members:
            del self._s.members[room]
        rooms = self._s.conn_rooms.get(connection_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._s.conn_rooms[connection_id]
        return True

    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Add membership and, for a tracked room, presence (``join`` only if newly present)."""
        self._s.members.setdefault(room, set()).add(connection_id)
        self._s.conn_rooms.setdefault(connection_id, set()).add(room)
        if presence_ttl_ms is None:
            return JoinResult(joined_presence=False, present=[])
        joined = self._set_presence(room, connection_id, presence_ttl_ms)
        return JoinResult(joined_presence=joined, present=list(self._s.presence[room]))

    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Join a registered connection and publish the join control to its instance's inbox."""
        owner = self._s.routes.get(connection_id)
        if owner is None:
            return None
        result = await self.join_room(room, connection_id, presence_ttl_ms)
        control = encode_envelope({"t": "room", "op": "join", "r": room, "c": connection_id})
        self.hub.publish(inbox_channel(self.namespace, owner), control)
        return result

    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Remove membership, presence and state (``leave`` if it was present)."""
        self._end_presence(room, connection_id)
        return self._remove_member(room, connection_id)

    async def room_members(self, room: str) -> list[str]:
        """Return the members of ``room``."""
        return list(self._s.members.get(room, ()))

    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms ``connection_id`` is a member of."""
        return list(self._s.conn_rooms.get(connection_id, ()))

    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""
        return connection_id in self._s.members.get(room, ())

    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        return list(self._s.members)

    async def clear_room(self, room: str) -> list[str]:
        """Remove every member (``leave`` for each present one), their states and metadata."""
        members = sorted(self._s.members.get(room, ()))
        for connection_id in members:
            self._end_presence(room, connection_id)
            self._remove_member(room, connection_id)
        # Presence implies membership; this only guards against an inconsistent store.
        for connection_id in list(self._s.presence.get(room, {})):
            self._end_presence(room, connection_id)
        self._s.room_meta.pop(room, None)
        return members

    # ------------------------------------------------------------------ presence (§10.3–§10.5)

    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Extend presence in each member room; re-join (publishing ``join``) where it expired."""
        for room, ttl_ms in rooms_ttl_ms:
            if connection_id in self._s.members.get(room, ()):
                self._set_presence(room, connection_id, ttl_ms)

    async def sweep_presence(self) -> int:
        """Expire due presence (``leave``) and due states (``state`` null); return the count."""
        now = self._now()
        heap = self._s.deadlines
        expired = 0
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._s.is_current(entry):
                continue
            _, _, kind, room, connection_id = entry
            if kind == _PRESENCE:
                self._end_presence(room, connection_id)
            else:
                del self._s.states[(room, connection_id)]
                self._presence_event("state", room, connection_id, None)
            expired += 1
        return expired

    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Return present ids and the states of those that have one."""
        present = list(self._s.presence.get(room, ()))
        states = {}
        for connection_id in present:
            state = self._s.states.get((room, connection_id))
            if state is not None:
                states[connection_id] = loads(state[0])
        return PresenceSnapshot(present=present, states=states)

    async def is_present(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is present in ``room``."""
        return connection_id in self._s.presence.get(room, ())

    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Replace the state and its expiry; publish ``state`` unless ``silent`` (§10.5)."""
        if connection_id not in self._s.presence.get(room, ()):
            return False
        encoded = dumps(state)
        deadline = None
        if expire_after_ms:
            deadline = self._now() + expire_after_ms
            self._s.schedule(deadline, _STATE, room, connection_id)
        self._s.states[(room, connection_id)] = (encoded, deadline)
        if not silent:
            self._presence_event("state", room, connection_id, loads(encoded))
        return True

    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state; publish ``state`` null iff there was one."""
        if connection_id not in self._s.presence.get(room, ()):
            return False
        if self._s.states.pop((room, connection_id), None) is not None:
            self._presence_event("state", room, connection_id, None)
        return True

    # ------------------------------------------------------------------ channels (§9)

    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish ``message`` verbatim; keep exactly the ``history`` most recent (§9.5)."""
        if history > 0:
            stored = self._s.history.setdefault(channel, deque())
            stored.appendleft(message)
            while len(stored) > history:
                stored.pop()
        self.hub.publish(channel, message.encode("utf-8"))

    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages, newest first."""
        stored = self._s.history.get(channel)
        if stored is None or limit <= 0:
            return []
        return [message for _, message in zip(range(limit), stored, strict=False)]

    # ------------------------------------------------------------------ records (§11)

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``, ``(None, 0)`` when absent."""
        stored = self._s.records.get(record_id)
        if stored is None:
            return None, 0
        return loads(stored[0]), stored[1]

    async def write_record(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
        expected_version: int | None = None,
    ) -> RecordWrite:
        """Combine, check, diff, store with version + 1 and publish, in one step (§11.3).

        The size limit and ``validate`` apply to every write, also one that changes nothing.
        """
        self._slots.check_reentry(record_id)
        return self._write_now(record_id, value, strategy, max_size, validate, expected_version)

    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Run ``fn`` on the current value and commit unless a write came in between."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._operation_timeout
        try:
            async with asyncio.timeout_at(deadline):
                slot = await self._slots.acquire(record_id)
        except TimeoutError:
            raise UnavailableError("memory backend: update record timed out") from None
        try:
            return await self._update_locked(record_id, fn, max_size, validate, deadline)
        finally:
            self._slots.release(record_id, slot)

    async def _update_locked(
        self,
        record_id: str,
        fn: RecordUpdater,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        deadline: float,
    ) -> RecordWrite:
        loop = asyncio.get_running_loop()
        base, ceiling = self._retry
        attempt = 0
        while True:
            if attempt:
                await asyncio.sleep(random.uniform(0, min(ceiling, base * 2 ** (attempt - 1))))
            if loop.time() > deadline:
                raise UnavailableError("memory backend: update record timed out (conflicts)")
            stored = self._s.records.get(record_id)
            version = 0 if stored is None else stored[1]
            new = fn(None if stored is None else loads(stored[0]))
            if inspect.isawaitable(new):
                budget = asyncio.timeout_at(deadline)
                try:
                    async with budget:
                        new = await new
                except TimeoutError:
                    # fn's own TimeoutError propagates; the deadline's means unavailability.
                    if budget.expired():
                        raise UnavailableError("memory backend: update record timed out") from None
                    raise
            # Every write stores a new tuple: the same object means nothing was written.
            if self._s.records.get(record_id) is not stored:
                attempt += 1
                continue
            return self._write_now(record_id, new, "replace", max_size, validate, version)

    def _write_now(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy,
        max_size: int | None,
        validate: Callable[[Any], None] | None,
        expected_version: int | None,
    ) -> RecordWrite:
        """One write, without awaiting: an atomic step on the event loop."""
        stored = self._s.records.get(record_id)
        old, version = (None, 0) if stored is None else (loads(stored[0]), stored[1])
        if expected_version is not None and version != expected_version:
            raise ConflictError.for_record(record_id, expected_version, version)
        encoded = dumps(combine(old, value, strategy))
        if max_size is not None and len(encoded) > max_size:
            raise TooLargeError(
                f"record {record_id!r} would exceed {max_size} bytes",
                details={"limit": max_size},
            )
        new = loads(encoded)
        if validate is not None:
            validate(loads(encoded))
        if json_equal(old, new):
            return RecordWrite(changed=False, version=version, value=old, size=len(encoded))
        patch = diff(old, new)
        version += 1
        self._s.records[record_id] = (encoded, version)
        self._emit(
            record_channel(self.namespace, record_id),
            {
                "t": "update",
                "recordId": record_id,
                "version": version,
                "value": new,
                "patch": patch,
            },
        )
        return RecordWrite(changed=True, version=version, value=new, patch=patch, size=len(encoded))

    async def delete_record(self, record_id: str) -> int | None:
        """Delete the record and publish the deletion; ``None`` if it was absent."""
        stored = self._s.records.pop(record_id, None)
        if stored is None:
            return None
        version = stored[1]
        self._emit(
            record_channel(self.namespace, record_id),
            {"t": "deleted", "recordId": record_id, "version": version},
        )
        return version
