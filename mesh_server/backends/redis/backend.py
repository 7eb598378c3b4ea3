"""Redis backend: shared state and pub/sub for any number of instances (PROTOCOL §13).

Guarantees
----------
Everything in :mod:`mesh_server.backends.base`'s Guarantees, implemented as follows:

* **Atomicity.** Every multi-key update is one Lua script (``lua/*.lua``) run with ``EVALSHA``:
  room join/leave/clear, presence refresh/sweep/state, connection (un)registration, channel
  publish with history, record commit/delete, direct sends, heartbeat, dead-instance claim.
  Events are published from inside the script that changes the state, so their order is the
  order of the changes. Presence expiry is one script over a sorted set of deadlines, so with any
  number of sweeping instances each expiry yields exactly one event (PROTOCOL §10.3).
* **Records.** Optimistic concurrency (PROTOCOL §11.3), see
  :mod:`mesh_server.backends.redis.records`: writes of one record are serialised per instance,
  combine/compare/diff/size-check/validate run in Python on the cached last known state, and
  one ``record_commit`` script stores version n + 1 and publishes the update iff the record is
  still at version n (same incarnation); a conflict returns the current state and the write is
  recomputed after a jittered pause, until the operation deadline (→ ``UnavailableError``). An
  uncontended write costs one command; an unchanged one publishes nothing. Merge strategies
  of metadata use the same scheme (``metadata_cas``); ``replace`` is a single ``HSET``.
* **Costs.** ``send_to_connection`` is one script call (route lookup + publish);
  ``broadcast`` is one ``PUBLISH`` that every instance resolves locally (PROTOCOL §13.2).
* **Pub/sub.** One pub/sub connection per instance, one reader task, delivery in arrival order;
  :meth:`RedisBackend.subscribe` returns after Redis confirmed the subscription. Application
  channel names are used verbatim (PROTOCOL §9.2); internal ones carry the namespace.
* **Clock.** Deadlines and event timestamps come from Redis ``TIME``.
* **Errors.** Every operation runs inside one boundary
  (:func:`~mesh_server.backends.redis.errors.unavailable_on_failure`) bounded by
  ``operation_timeout_ms``; connection errors, timeouts and transient error replies (``LOADING``,
  ``BUSY``, ``READONLY``…) raise :class:`~mesh_sdk.protocol.errors.UnavailableError` with the
  neutral message ``"service temporarily unavailable"``; the detail goes to the log.
* **Outages** are tracked by :attr:`RedisBackend.health`: one warning when the first operation
  or pub/sub attempt fails, one line with the duration when Redis answers again.
* **Recovery.** The command pool reconnects on the next operation; the pub/sub reader
  reconnects with backoff (at most ``reconnect_max_ms`` apart, so the end of any outage is seen
  within that delay) and re-subscribes every channel; scripts reload on ``NOSCRIPT``; the
  instance registration is re-created and, if it was lost (e.g. Redis restarted empty), the next
  :meth:`RedisBackend.heartbeat` returns ``False`` so the server fences itself (PROTOCOL §13.5).
  Then :attr:`RedisBackend.on_recovered` is awaited: the server runs that heartbeat at once
  (fencing before anything else, so a store that came back empty is never mistaken for deleted
  records), then calls :meth:`RedisBackend.reregister_connections` and resyncs record
  subscribers (PROTOCOL §11.5).
* **No KEYS, no CONFIG, no keyspace notifications.** Enumeration uses the indexes below.

Key layout
----------
See :mod:`mesh_server.backends.redis.keys`. Every script declares in ``KEYS`` each key the
caller can name (the lists are built by ``Keys.for_<script>``). A few scripts also visit keys
found only in the store — the rooms of a disconnecting connection, the rooms of due presence
deadlines, the members of a cleared room — and derive those per-room/per-connection keys in
Lua; their headers list them under "Dynamic keys". A single Redis server (with replicas) allows
that. For Redis Cluster, use a hash-tagged namespace such as ``"{mesh}:"``: every key then
lives in one slot. Application channel names are not prefixed, so
deployments sharing a server need distinct namespaces and channel names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mesh_sdk.protocol.codec import dumps, loads
from mesh_sdk.protocol.errors import UnavailableError
from mesh_sdk.protocol.patch import combine
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
    record_channel,
)
from mesh_server.backends.redis.errors import unavailable, unavailable_on_failure
from mesh_server.backends.redis.health import Health
from mesh_server.backends.redis.keys import Keys
from mesh_server.backends.redis.pubsub import Subscriber
from mesh_server.backends.redis.records import RecordWriter, UpdateAborted
from mesh_server.backends.redis.scripts import Scripts

__all__ = ["PUBSUB_DISCONNECTED", "RedisBackend"]

logger = logging.getLogger(__name__)

PUBSUB_DISCONNECTED = "pubsub_disconnected"
"""Health code (:meth:`RedisBackend.health_issues`): the pub/sub reader is down or reconnecting."""

RecoveredCallback = Callable[[], Awaitable[None]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend(Backend):
    """The :class:`~mesh_server.backends.base.Backend` on Redis (``redis.asyncio`` + hiredis).

    Args:
        url: ``redis://`` or ``rediss://`` URL (``unix://`` too).
        namespace: Prefix of every key and internal channel.
        operation_timeout_ms: Deadline of one backend operation (→ ``UnavailableError``).
        instance_ttl_ms: Heartbeat TTL used when registering at start and after recovery.
        claim_ttl_ms: How long a dead-instance claim protects its cleanup.
        sweep_batch: Most deadline entries one ``sweep_presence`` script call handles.
        reconnect_min_ms: First pub/sub reconnect delay (doubles per failure).
        reconnect_max_ms: Longest pub/sub reconnect delay: after any outage, Redis is seen to
            be back within this many ms (an attempt against a down server costs one refused
            TCP connect).
        max_connections: Size of the command connection pool (plus the pub/sub connection);
            operations wait for a free connection within their deadline.
        record_cache_entries: Records whose last known state this instance caches so that a
            write is one command (0: no cache, every write reads first).
        record_cache_bytes: Most bytes of cached record values.
        record_retry_base_ms: First jittered pause after a record write conflict.
        record_retry_max_ms: Longest pause between conflicting record writes; also how long
            after a conflict writes of that record pause briefly first (fairness).
        on_recovered: Awaited after the pub/sub link was re-established.
        **options: Passed to :meth:`redis.asyncio.BlockingConnectionPool.from_url` (e.g.
            ``ssl_cert_reqs``, ``health_check_interval``).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "mesh:",
        operation_timeout_ms: int = 5000,
        instance_ttl_ms: int = 15_000,
        claim_ttl_ms: int = 60_000,
        sweep_batch: int = 1000,
        reconnect_min_ms: int = 50,
        reconnect_max_ms: int = 500,
        max_connections: int = 64,
        record_cache_entries: int = 4096,
        record_cache_bytes: int = 16 * 1024 * 1024,
        record_retry_base_ms: float = 1.0,
        record_retry_max_ms: float = 32.0,
        on_recovered: RecoveredCallback | None = None,
        **options: Any,
    ) -> None:
        self.namespace = namespace
        self.on_recovered = on_recovered
        """Awaited after a reconnect, once the pub/sub channels are subscribed again."""
        self.health = Health()
        """Outage state and its log lines (shared by commands and the pub/sub reader)."""
        self._timeout_s = operation_timeout_ms / 1000
        self._instance_ttl_ms = instance_ttl_ms
        self._claim_ttl_ms = claim_ttl_ms
        self._sweep_batch = sweep_batch
        self._reconnect_min_s = reconnect_min_ms / 1000
        self._reconnect_max_s = reconnect_max_ms / 1000
        # Never retry inside redis-py: a retried script could publish twice (at-most-once).
        options.setdefault("retry", Retry(NoBackoff(), 0))
        options.setdefault("socket_connect_timeout", self._timeout_s)
        options.setdefault("socket_timeout", self._timeout_s)
        # A blocking pool makes bursts of concurrent operations wait for a connection (within
        # the operation deadline) instead of failing with "Too many connections".
        options.setdefault("max_connections", max_connections)
        options.setdefault("timeout", self._timeout_s)
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._keys = Keys(namespace)
        self._scripts = Scripts(self._client, namespace)
        self._records = RecordWriter(
            self._client,
            self._scripts,
            self._keys,
            cache_entries=record_cache_entries,
            cache_bytes=record_cache_bytes,
            retry_base_s=record_retry_base_ms / 1000,
            retry_max_s=record_retry_max_ms / 1000,
        )
        self._instance_id = ""
        self._subscriber: Subscriber | None = None
        self._registration_lost = False

    @property
    def instance_id(self) -> str:
        """The id given to :meth:`start` (empty before)."""
        return self._instance_id

    def _guard(self, operation: str) -> Any:
        return unavailable_on_failure(self._timeout_s, operation, self.health)

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self._timeout_s

    @staticmethod
    def _check_deadline(deadline: float, operation: str) -> None:
        # Retry loops check the deadline themselves: redis-py may swallow the cancellation
        # that asyncio.timeout delivers while a command is in flight.
        if asyncio.get_running_loop().time() > deadline:
            raise unavailable(f"Redis backend: {operation} timed out (conflicts)")

    # ------------------------------------------------------------------ lifecycle and instances

    async def start(self, instance_id: str, on_message: MessageHandler) -> None:
        """Load the scripts, register the instance and subscribe its inbox and broadcast."""
        self._instance_id = instance_id
        async with self._guard("start"):
            await self._scripts.load_all()
            await self._register_instance(self._instance_ttl_ms)
        observe = self._records.observe

        def dispatch(channel: str, data: bytes) -> None:
            observe(channel, data)
            on_message(channel, data)

        self._subscriber = Subscriber(
            self._client,
            dispatch,
            timeout_s=self._timeout_s,
            backoff_min_s=self._reconnect_min_s,
            backoff_max_s=self._reconnect_max_s,
            on_reconnected=self._recover,
            health=self.health,
        )
        await self._subscriber.start(
            {inbox_channel(self.namespace, instance_id), self.namespace + BROADCAST}
        )

    async def close(self) -> None:
        """Stop pub/sub, remove what is left of this instance, and close the client.

        Failures to reach Redis are logged, not raised: resources are released either way.
        """
        if self._subscriber is not None:
            await self._subscriber.close()
            self._subscriber = None
        if self._instance_id:
            try:
                async with self._guard("close"):
                    await self._scripts.run(
                        "release_instance",
                        self._keys.for_release_instance(self._instance_id),
                        self._instance_id,
                        "1",
                    )
            except Exception as exc:
                logger.warning("could not deregister instance %s: %s", self._instance_id, exc)
        await self._client.aclose()

    async def _register_instance(self, ttl_ms: int) -> bool:
        existed = await self._scripts.run(
            "heartbeat", self._keys.for_heartbeat(self._instance_id), self._instance_id, ttl_ms
        )
        return bool(existed)

    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh the heartbeat; ``False`` if it had lapsed or the registration was lost."""
        async with self._guard("heartbeat"):
            existed = await self._register_instance(ttl_ms)
        # The heartbeat runs every probe interval during an outage: it notices the end.
        self.health.succeeded()
        lost, self._registration_lost = self._registration_lost, False
        return existed and not lost

    async def _recover(self) -> None:
        """After a pub/sub reconnect: re-register the instance, then call ``on_recovered``."""
        # The store may have been lost: cached record states would only cost conflicts.
        self._records.clear()
        try:
            async with self._guard("re-register"):
                if not await self._register_instance(self._instance_ttl_ms):
                    self._registration_lost = True
        except UnavailableError:
            # Logged as part of the outage; the next heartbeat retries.
            self._registration_lost = True
        if self.on_recovered is not None:
            await self.on_recovered()

    def health_issues(self) -> tuple[str, ...]:
        """``("pubsub_disconnected",)`` while the pub/sub reader is down (or not started)."""
        subscriber = self._subscriber
        return () if subscriber is not None and subscriber.connected else (PUBSUB_DISCONNECTED,)

    @property
    def pubsub_reconnects(self) -> int:
        """How many times the pub/sub link was re-established since start."""
        return self._subscriber.reconnects if self._subscriber is not None else 0

    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim each registered instance whose heartbeat lapsed and clean it up (§13.4)."""
        reports: list[DeadInstanceReport] = []
        async with self._guard("sweep dead instances"):
            instances = await self._client.smembers(self._keys.instances)
            for raw in sorted(instances):
                instance = _text(raw)
                if instance == self._instance_id:
                    continue
                claimed = await self._scripts.run(
                    "claim_instance",
                    self._keys.for_claim_instance(instance),
                    instance,
                    self._claim_ttl_ms,
                )
                if claimed is None:
                    continue
                connections = sorted(_text(c) for c in claimed)
                for connection_id in connections:
                    await self._scripts.run(
                        "unregister_connection",
                        self._keys.for_unregister_connection(connection_id, instance),
                        connection_id,
                    )
                await self._scripts.run(
                    "release_instance", self._keys.for_release_instance(instance), instance, "0"
                )
                reports.append(DeadInstanceReport(instance, connections))
        return reports

    async def ping(self) -> None:
        """Check that Redis answers."""
        async with self._guard("ping"):
            await self._client.ping()

    async def reregister_connections(self, connection_ids_with_metadata: Mapping[str, Any]) -> None:
        """Re-create routing entries (and metadata) of live connections after Redis lost them.

        Args:
            connection_ids_with_metadata: Connection id → metadata (``None``: keep/none).
        """
        args: list[str | bytes | int] = [self._instance_id]
        for connection_id, metadata in connection_ids_with_metadata.items():
            if metadata is None:
                args += [connection_id, "0", ""]
            else:
                args += [connection_id, "1", dumps(metadata)]
        if len(args) == 1:
            return
        async with self._guard("re-register connections"):
            await self._scripts.run(
                "register_connections",
                self._keys.for_register_connections(self._instance_id),
                *args,
            )

    # ------------------------------------------------------------------ pub/sub

    def _require_subscriber(self) -> Subscriber:
        if self._subscriber is None:
            raise RuntimeError("RedisBackend.start() was not called")
        return self._subscriber

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once Redis confirmed it."""
        await self._require_subscriber().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Unsubscribe (``UNSUBSCRIBE`` is sent and confirmed)."""
        await self._require_subscriber().unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> None:
        """``PUBLISH`` raw bytes."""
        async with self._guard("publish"):
            await self._client.publish(channel, data)

    # ------------------------------------------------------------------ connections and routing

    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (and initial metadata) for a connection of this instance."""
        await self.reregister_connections({connection_id: metadata})

    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove presence (one ``leave`` each), memberships, metadata and routing entry."""
        async with self._guard("unregister connection"):
            await self._scripts.run(
                "unregister_connection",
                self._keys.for_unregister_connection(connection_id, self._instance_id),
                connection_id,
                *tracked_rooms,
            )

    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the instance holding ``connection_id``."""
        async with self._guard("connection instance"):
            raw = await self._client.hget(self._keys.conns, connection_id)
        return _text(raw) if raw is not None else None

    async def all_connection_ids(self) -> list[str]:
        """Return every registered connection id (from the routing hash)."""
        async with self._guard("all connection ids"):
            raw = await self._client.hkeys(self._keys.conns)
        return [_text(c) for c in raw]

    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Route ``frame`` to the connection's instance inbox: one script call."""
        envelope = encode_envelope({"t": "send", "c": connection_id}, frame)
        async with self._guard("send to connection"):
            sent = await self._scripts.run(
                "send_to_connection", [self._keys.conns], connection_id, envelope
            )
        return bool(sent)

    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """One ``PUBLISH`` on the broadcast channel, resolved locally by every instance."""
        envelope = encode_envelope({"t": "bc", "r": room, "x": list(exclude)}, frame)
        await self.publish(self.namespace + BROADCAST, envelope)

    # ------------------------------------------------------------------ metadata (§12)

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
                ids = [_text(c) for c in await self._client.hkeys(self._keys.conns)]
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
        return {_text(room): loads(value) for room, value in raw.items()}

    # ------------------------------------------------------------------ rooms (§10.1, §10.2)

    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Add membership and, for a tracked room, presence (``join`` only if new)."""
        ttl = "" if presence_ttl_ms is None else presence_ttl_ms
        async with self._guard("join room"):
            joined, present = await self._scripts.run(
                "join_room",
                self._keys.for_join_room(room, connection_id),
                room,
                connection_id,
                ttl,
                "",
                "",
            )
        return JoinResult(bool(joined), [_text(c) for c in present])

    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Route check, join and inbox control in one ``join_room`` script call."""
        ttl = "" if presence_ttl_ms is None else presence_ttl_ms
        control = encode_envelope({"t": "room", "op": "join", "r": room, "c": connection_id})
        async with self._guard("join room"):
            result = await self._scripts.run(
                "join_room",
                self._keys.for_join_room(room, connection_id),
                room,
                connection_id,
                ttl,
                "1",
                control,
            )
        if result is None:
            return None
        joined, present = result
        return JoinResult(bool(joined), [_text(c) for c in present])

    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Remove membership, presence and state (``leave`` if it was present)."""
        async with self._guard("leave room"):
            was_member = await self._scripts.run(
                "leave_room", self._keys.for_leave_room(room, connection_id), room, connection_id
            )
        return bool(was_member)

    async def room_members(self, room: str) -> list[str]:
        """Return the member ids of ``room``."""
        async with self._guard("room members"):
            raw = await self._client.smembers(self._keys.room_members(room))
        return [_text(c) for c in raw]

    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms of ``connection_id``."""
        async with self._guard("connection rooms"):
            raw = await self._client.smembers(self._keys.conn_rooms(connection_id))
        return [_text(r) for r in raw]

    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""
        async with self._guard("is in room"):
            return bool(await self._client.sismember(self._keys.room_members(room), connection_id))

    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member."""
        async with self._guard("all rooms"):
            raw = await self._client.smembers(self._keys.rooms)
        return [_text(r) for r in raw]

    async def clear_room(self, room: str) -> list[str]:
        """Remove all members (``leave`` for each present one), states and metadata."""
        async with self._guard("clear room"):
            members = await self._scripts.run("clear_room", self._keys.for_clear_room(room), room)
        return [_text(c) for c in members]

    # ------------------------------------------------------------------ presence (§10.3–§10.5)

    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Extend presence deadlines in one script (re-joining expired members)."""
        if not rooms_ttl_ms:
            return
        args: list[str | bytes | int] = [connection_id]
        for room, ttl in rooms_ttl_ms:
            args += [room, ttl]
        async with self._guard("refresh presence"):
            rooms = [room for room, _ in rooms_ttl_ms]
            await self._scripts.run(
                "refresh_presence", self._keys.for_refresh_presence(rooms), *args
            )

    async def sweep_presence(self) -> int:
        """Expire due presence and states (one script per batch of due entries)."""
        total = 0
        async with self._guard("sweep presence"):
            while True:
                expired = int(
                    await self._scripts.run(
                        "sweep_presence", [self._keys.deadlines], self._sweep_batch
                    )
                )
                total += expired
                if expired < self._sweep_batch:
                    return total

    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Read present ids and their states in one ``MULTI``/``EXEC``."""
        async with (
            self._guard("presence snapshot"),
            self._client.pipeline(transaction=True) as pipe,
        ):
            pipe.smembers(self._keys.room_presence(room))
            pipe.hgetall(self._keys.room_states(room))
            present_raw, states_raw = await pipe.execute()
        present = [_text(c) for c in present_raw]
        present_set = set(present)
        states = {_text(c): loads(v) for c, v in states_raw.items() if _text(c) in present_set}
        return PresenceSnapshot(present, states)

    async def is_present(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is present in ``room``."""
        async with self._guard("is present"):
            return bool(await self._client.sismember(self._keys.room_presence(room), connection_id))

    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Replace the state of a present connection (``state`` event unless silent)."""
        expire = expire_after_ms if expire_after_ms else ""
        async with self._guard("set presence state"):
            stored = await self._scripts.run(
                "set_presence_state",
                self._keys.for_presence_state(room),
                room,
                connection_id,
                dumps(state),
                expire,
                "1" if silent else "0",
            )
        return bool(stored)

    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state (``state`` null iff one existed)."""
        async with self._guard("clear presence state"):
            present = await self._scripts.run(
                "clear_presence_state", self._keys.for_presence_state(room), room, connection_id
            )
        return bool(present)

    # ------------------------------------------------------------------ channels (§9)

    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish verbatim; with history, append + trim to exactly N + publish in one script."""
        async with self._guard("publish channel"):
            if history > 0:
                await self._scripts.run(
                    "publish_channel", [self._keys.history(channel)], channel, message, history
                )
            else:
                await self._client.publish(channel, message)

    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages, newest first."""
        if limit <= 0:
            return []
        async with self._guard("channel history"):
            raw = await self._client.lrange(self._keys.history(channel), 0, limit - 1)
        return [m.decode("utf-8", "replace") if isinstance(m, bytes) else m for m in raw]

    # ------------------------------------------------------------------ records (§11)

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``, ``(None, 0)`` when absent."""
        async with self._guard("get record"):
            raw_value, raw_version = await self._client.hmget(
                self._keys.record(record_id), ["v", "n"]
            )
        if raw_version is None:
            return None, 0
        return loads(raw_value or b"null"), int(raw_version)

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
        """Commit with one script call when uncontended (see :mod:`.records`)."""
        async with self._guard("write record"):
            return await self._records.write(
                record_id,
                value,
                strategy,
                max_size=max_size,
                validate=validate,
                expected_version=expected_version,
                deadline=self._deadline(),
            )

    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Run ``fn`` on the cached or read state and commit with one script call if current."""
        try:
            async with self._guard("update record"):
                return await self._records.update(
                    record_id, fn, max_size=max_size, validate=validate, deadline=self._deadline()
                )
        except UpdateAborted as aborted:
            error = aborted.error
        # Raised outside the handler so that nothing is chained to the function's exception.
        raise error

    async def delete_record(self, record_id: str) -> int | None:
        """Delete value and version and publish the deletion (``None`` if absent)."""
        async with self._guard("delete record"):
            version = await self._scripts.run(
                "record_delete",
                [self._keys.record(record_id)],
                record_channel(self.namespace, record_id),
                dumps(record_id),
            )
        self._records.forget(record_id)
        return int(version) if version is not None else None
