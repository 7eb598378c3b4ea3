"""Redis backend: shared state and pub/sub for any number of instances (protocol.md §13).

:class:`RedisBackend` composes one class per interface of
:mod:`mesh_server.backends.interfaces` (:mod:`.broker`, :mod:`.registry`, :mod:`.rooms`,
:mod:`.presence`, :mod:`.records`, :mod:`.metadata`, over the shared :mod:`.state`) and owns the
lifecycle: start, close and recovery after a Redis restart.

Guarantees
----------
Everything the interfaces guarantee, implemented as follows:

* **Atomicity.** Every multi-key update is one Lua script (``lua/*.lua``) run with ``EVALSHA``:
  room join/leave/clear, presence refresh/sweep/state, connection (un)registration, channel
  publish with history, record commit/delete, direct sends, heartbeat, dead-instance claim.
  Events are published from inside the script that changes the state, so their order is the
  order of the changes. Presence expiry is one script over a sorted set of deadlines, so with any
  number of sweeping instances each expiry yields exactly one event (protocol.md §10.3).
* **Records.** Optimistic concurrency (protocol.md §11.3), see
  :mod:`mesh_server.backends.redis.records`: writes of one record are serialised per instance,
  combine/compare/diff/size-check/validate run in Python on the cached last known state, and
  one ``record_commit`` script stores version n + 1 and publishes the update iff the record is
  still at version n (same incarnation); a conflict returns the current state and the write is
  recomputed after a jittered pause, until the operation deadline (→ ``UnavailableError``). An
  uncontended write costs one command; an unchanged one publishes nothing. Merge strategies
  of metadata use the same scheme (``metadata_cas``); ``replace`` is a single ``HSET``.
* **Costs.** Concurrent ``register_connection`` calls are coalesced (group commit, see
  :mod:`mesh_server.backends.redis.batching`): while one ``register_connections`` script call is
  in flight, later ones queue and go out as one call of at most ``register_batch`` connections;
  each caller gets its own outcome. ``unregister_connection`` is one script call per connection.
  ``send_to_connection`` is one script call (route lookup + publish);
  ``broadcast`` is one ``PUBLISH`` that every instance resolves locally (protocol.md §13.2).
* **Pub/sub.** One pub/sub connection per instance, one reader task, delivery in arrival order;
  :meth:`RedisBackend.subscribe` returns after Redis confirmed the subscription. Application
  channel names are used verbatim (protocol.md §9.2); internal ones carry the namespace.
* **Clock.** Deadlines and event timestamps come from Redis ``TIME``.
* **Errors.** Every operation runs inside one boundary
  (:func:`~mesh_server.backends.redis.errors.unavailable_on_failure`) bounded by
  ``operation_timeout``; connection errors, timeouts and transient error replies (``LOADING``,
  ``BUSY``, ``READONLY``…) raise :class:`~mesh_sdk.protocol.errors.UnavailableError` with the
  neutral message ``"service temporarily unavailable"``; the detail goes to the log.
* **Outages** are tracked by :attr:`RedisBackend.health`: one warning when the first operation
  or pub/sub attempt fails, one line with the duration when Redis answers again.
* **Recovery.** The command pool reconnects on the next operation; the pub/sub reader
  reconnects with backoff (at most ``reconnect_max`` apart, so the end of any outage is seen
  within that delay) and re-subscribes every channel; scripts reload on ``NOSCRIPT``; the
  instance registration is re-created and, if it was lost (e.g. Redis restarted empty), the next
  :meth:`RedisBackend.heartbeat` returns ``False`` so the server fences itself (protocol.md §13.5).
  Then :attr:`RedisBackend.on_recovered` is awaited: the server runs that heartbeat at once
  (fencing before anything else, so a store that came back empty is never mistaken for deleted
  records), then calls :meth:`RedisBackend.reregister_connections` and resyncs record
  subscribers (protocol.md §11.5).
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

import logging
from typing import Any, Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.base import Backend, BackendStats, MessageHandler, RecoveredCallback
from mesh_server.backends.messages import BROADCAST, inbox_channel
from mesh_server.backends.redis.batching import GroupCommit
from mesh_server.backends.redis.broker import RedisBroker
from mesh_server.backends.redis.health import Health
from mesh_server.backends.redis.keys import Keys
from mesh_server.backends.redis.metadata import RedisMetadata
from mesh_server.backends.redis.presence import RedisPresence
from mesh_server.backends.redis.pubsub import Subscriber
from mesh_server.backends.redis.records import RecordWriter, RedisRecords
from mesh_server.backends.redis.registry import RedisRegistry
from mesh_server.backends.redis.rooms import RedisRooms
from mesh_server.backends.redis.scripts import Scripts

__all__ = ["PUBSUB_DISCONNECTED", "RedisBackend"]

logger = logging.getLogger(__name__)

PUBSUB_DISCONNECTED = "pubsub_disconnected"
"""Health code (:meth:`RedisBackend.health_issues`): the pub/sub reader is down or reconnecting."""


# Options that took milliseconds before durations became seconds. ``**options`` would hand
# them to redis-py, which fails only when it first connects: refuse them here instead.
_RENAMED_OPTIONS: Final = {
    "operation_timeout_ms": "operation_timeout",
    "instance_ttl_ms": "instance_ttl",
    "claim_ttl_ms": "claim_ttl",
    "reconnect_min_ms": "reconnect_min",
    "reconnect_max_ms": "reconnect_max",
    "record_retry_base_ms": "record_retry_base",
    "record_retry_max_ms": "record_retry_max",
}


class RedisBackend(
    RedisBroker,
    RedisRegistry,
    RedisRooms,
    RedisPresence,
    RedisRecords,
    RedisMetadata,
    Backend,
):
    """The :class:`~mesh_server.backends.base.Backend` on Redis (``redis.asyncio`` + hiredis).

    Args:
        url: ``redis://`` or ``rediss://`` URL (``unix://`` too).
        namespace: Prefix of every key and internal channel.
        operation_timeout: Deadline of one backend operation, in seconds
            (→ ``UnavailableError``).
        instance_ttl: Heartbeat TTL used when registering at start and after recovery, in
            seconds.
        claim_ttl: How long a dead-instance claim protects its cleanup, in seconds.
        sweep_batch: Most deadline entries one ``sweep_presence`` script call handles.
        register_batch: Most connections one ``register_connections`` script call carries when
            concurrent registrations are coalesced (1: one call per connection).
        reconnect_min: First pub/sub reconnect delay in seconds (doubles per failure).
        reconnect_max: Longest pub/sub reconnect delay in seconds: after any outage, Redis is
            seen to be back within this many seconds (an attempt against a down server costs
            one refused TCP connect).
        max_connections: Size of the command connection pool (plus the pub/sub connection);
            operations wait for a free connection within their deadline.
        record_cache_entries: Records whose last known state this instance caches so that a
            write is one command (0: no cache, every write reads first).
        record_cache_bytes: Most bytes of cached record values.
        record_retry_base: First jittered pause after a record write conflict, in seconds.
        record_retry_max: Longest pause between conflicting record writes, in seconds; also
            how long after a conflict writes of that record pause briefly first (fairness).
        on_recovered: Awaited after the pub/sub link was re-established.
        **options: Passed to :meth:`redis.asyncio.BlockingConnectionPool.from_url` (e.g.
            ``ssl_cert_reqs``, ``health_check_interval``).

    Raises:
        TypeError: An option of the former millisecond API (``operation_timeout_ms``…).
        ValueError: A timeout, TTL or reconnect delay is not positive, ``register_batch`` is
            below 1, or the record retry pauses are negative or out of order.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "mesh:",
        operation_timeout: float = 5.0,
        instance_ttl: float = 15.0,
        claim_ttl: float = 60.0,
        sweep_batch: int = 1000,
        register_batch: int = 256,
        reconnect_min: float = 0.05,
        reconnect_max: float = 0.5,
        max_connections: int = 64,
        record_cache_entries: int = 4096,
        record_cache_bytes: int = 16 * 1024 * 1024,
        record_retry_base: float = 0.001,
        record_retry_max: float = 0.032,
        on_recovered: RecoveredCallback | None = None,
        **options: Any,
    ) -> None:
        renamed = sorted(set(options) & _RENAMED_OPTIONS.keys())
        if renamed:
            hint = ", ".join(f"{old} → {_RENAMED_OPTIONS[old]}" for old in renamed)
            raise TypeError(f"RedisBackend options now take seconds under new names: {hint}")
        self.namespace = namespace
        self.on_recovered = on_recovered
        """Awaited after a reconnect, once the pub/sub channels are subscribed again."""
        self.health = Health()
        """Outage state and its log lines (shared by commands and the pub/sub reader)."""
        for name, seconds in (
            ("operation_timeout", operation_timeout),
            ("instance_ttl", instance_ttl),
            ("claim_ttl", claim_ttl),
            ("reconnect_min", reconnect_min),
            ("reconnect_max", reconnect_max),
        ):
            if not seconds > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if register_batch < 1:
            raise ValueError("register_batch must be >= 1")
        if record_retry_base < 0 or record_retry_max < record_retry_base:
            raise ValueError("record_retry_base must be >= 0 and at most record_retry_max")
        self._timeout_s = operation_timeout
        # The Lua scripts take PX-style TTLs in ms.
        self._instance_ttl_ms = max(1, round(instance_ttl * 1000))
        self._claim_ttl_ms = max(1, round(claim_ttl * 1000))
        self._sweep_batch = sweep_batch
        self._registrations = GroupCommit(self._register_batch, register_batch)
        self._reconnect_min_s = reconnect_min
        self._reconnect_max_s = reconnect_max
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
            retry_base_s=record_retry_base,
            retry_max_s=record_retry_max,
        )
        self._instance_id = ""
        self._subscriber: Subscriber | None = None
        self._registration_lost = False

    # ------------------------------------------------------------------ lifecycle

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

    def stats(self) -> BackendStats:
        """Return the outage, reconnect and record counters (see :class:`BackendStats`)."""
        health = self.health
        records = self._records
        return BackendStats(
            errors=health.errors,
            outages=health.outages,
            reconnects=self.pubsub_reconnects,
            record_conflicts=records.conflicts,
            record_retries=records.retries,
        )

    @property
    def pubsub_reconnects(self) -> int:
        """How many times the pub/sub link was re-established since start."""
        return self._subscriber.reconnects if self._subscriber is not None else 0
