"""The composite :class:`Backend` the server holds: every coordination interface plus lifecycle.

The server talks to shared state only through :class:`Backend`, the intersection of the small
interfaces in :mod:`mesh_server.backends.interfaces` (each with its own Guarantees: broker,
instance registry, rooms, presence, records, metadata). Operations are *semantic* (join a room,
write a record) rather than key/value primitives, so that each one can be a single atomic step:
a Lua script on Redis, a plain synchronous section on the memory backend (asyncio gives it
atomicity as long as it does not await in the middle).

Both implementations pass the conformance suite in ``tests/conformance``, one module per
interface. The names the server needs are re-exported here, so it imports them from one place.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from mesh_server.backends.interfaces.broker import Broker, MessageHandler
from mesh_server.backends.interfaces.metadata import MetadataStore
from mesh_server.backends.interfaces.presence import PresenceSnapshot, PresenceStore
from mesh_server.backends.interfaces.records import (
    MERGE_STRATEGIES,
    MergeStrategy,
    RecordStore,
    RecordUpdater,
    RecordWrite,
)
from mesh_server.backends.interfaces.registry import (
    DeadInstanceReport,
    InstanceRegistry,
    RecoveredCallback,
)
from mesh_server.backends.interfaces.rooms import JoinResult, RoomStore

__all__ = [
    "MERGE_STRATEGIES",
    "Backend",
    "BackendStats",
    "DeadInstanceReport",
    "JoinResult",
    "MergeStrategy",
    "MessageHandler",
    "PresenceSnapshot",
    "RecordUpdater",
    "RecordWrite",
    "RecoveredCallback",
]


@dataclass(slots=True)
class BackendStats:
    """Cumulative counters a backend keeps for metrics (read at scrape time, never reset).

    Attributes:
        errors: Failed store operations and reconnect attempts (Redis).
        outages: Periods during which the store was unreachable (Redis).
        reconnects: Pub/sub reconnections (Redis).
        record_conflicts: Record writes refused with ``ECONFLICT`` (a stale expected version).
        record_retries: Record commits or updates run again after a concurrent write.
    """

    errors: int = 0
    outages: int = 0
    reconnects: int = 0
    record_conflicts: int = 0
    record_retries: int = 0


class Backend(Broker, InstanceRegistry, RoomStore, PresenceStore, RecordStore, MetadataStore):
    """Shared state and pub/sub for one server instance: all interfaces of one store.

    Lifecycle: :meth:`start` once, then any operation, then :meth:`close`. One backend object
    serves exactly one instance; several instances share state through the store behind it.
    """

    namespace: str
    """Prefix of every internal key and channel (protocol.md §9.2), e.g. ``"mesh:"``."""

    @abstractmethod
    async def start(self, instance_id: str, on_message: MessageHandler) -> None:
        """Connect, register the instance (heartbeat), subscribe its inbox and broadcast channels.

        Args:
            instance_id: Unique id of this process start (protocol.md §13.1).
            on_message: Receives every pub/sub message this instance is subscribed to.
        """

    @abstractmethod
    async def close(self) -> None:
        """Deregister the instance (its heartbeat and registry entries) and release resources.

        Connections must have been unregistered before; whatever is left is removed as a dead
        instance's would be (with ``leave`` events).
        """

    def health_issues(self) -> tuple[str, ...]:
        """Why this backend cannot serve right now, as stable codes; empty when healthy.

        Synchronous and free of I/O (readiness probes call it on every request, see
        :mod:`mesh_server.health`): it reports what the backend already knows, e.g. the Redis
        backend's ``"pubsub_disconnected"`` while its pub/sub reader is reconnecting. The
        memory backend is always healthy.
        """
        return ()

    def stats(self) -> BackendStats:
        """Return this backend's cumulative counters (cheap; no I/O; for metrics scrapes)."""
        return BackendStats()
