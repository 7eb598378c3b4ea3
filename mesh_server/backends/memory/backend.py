"""The in-process backend: the default, for one server process (and for multi-instance tests).

:class:`~mesh_server.backends.memory.hub.MemoryHub` is the shared store and pub/sub;
:class:`MemoryBackend` is one instance's view of it, composed of one class per interface
(:mod:`.broker`, :mod:`.registry`, :mod:`.rooms`, :mod:`.presence`, :mod:`.records`,
:mod:`.metadata`, over the shared :mod:`.state`). Several backends sharing one hub behave like
several instances on one Redis, which lets the multi-instance behaviour (routing, presence
sweeps, dead-instance cleanup) run in tests without a Redis server. A backend created without a
hub gets a private one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from mesh_server.backends.base import Backend, BackendStats, MessageHandler
from mesh_server.backends.memory.broker import MemoryBroker
from mesh_server.backends.memory.hub import Endpoint, MemoryHub
from mesh_server.backends.memory.metadata import MemoryMetadata
from mesh_server.backends.memory.presence import MemoryPresence
from mesh_server.backends.memory.records import MemoryRecords
from mesh_server.backends.memory.registry import MemoryRegistry
from mesh_server.backends.memory.rooms import MemoryRooms
from mesh_server.backends.messages import BROADCAST, inbox_channel
from mesh_server.backends.slots import RecordSlots

__all__ = ["DEFAULT_INSTANCE_TTL", "MemoryBackend"]

DEFAULT_INSTANCE_TTL: Final = 15.0
"""Heartbeat TTL given to an instance by :meth:`MemoryBackend.start` (protocol.md §13.3)."""


class MemoryBackend(
    MemoryBroker,
    MemoryRegistry,
    MemoryRooms,
    MemoryPresence,
    MemoryRecords,
    MemoryMetadata,
    Backend,
):
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
      deadline.
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
        instance_ttl: Heartbeat TTL registered by :meth:`start`, in seconds.
        operation_timeout: Deadline of one :meth:`update_record`, its function's runs
            included, in seconds (→ ``UnavailableError``).
        record_retry_base: First jittered pause after an update conflict, in seconds.
        record_retry_max: Longest pause between conflicting update attempts, in seconds.

    Raises:
        ValueError: Both ``hub`` and ``clock`` were given, or a duration is out of range.
    """

    def __init__(
        self,
        namespace: str = "mesh:",
        *,
        hub: MemoryHub | None = None,
        clock: Callable[[], float] | None = None,
        instance_ttl: float = DEFAULT_INSTANCE_TTL,
        operation_timeout: float = 5.0,
        record_retry_base: float = 0.001,
        record_retry_max: float = 0.032,
    ) -> None:
        if hub is not None and clock is not None:
            raise ValueError("pass the clock to the MemoryHub, not to a backend sharing it")
        self.namespace = namespace
        self.hub = hub if hub is not None else MemoryHub(clock)
        if not instance_ttl > 0 or not operation_timeout > 0:
            raise ValueError("instance_ttl and operation_timeout must be > 0 seconds")
        if record_retry_base < 0 or record_retry_max < record_retry_base:
            raise ValueError("record_retry_base must be >= 0 and at most record_retry_max")
        self.instance_ttl = instance_ttl
        """Heartbeat TTL registered by :meth:`start`, in seconds."""
        self._s = self.hub._store(namespace)
        self._instance_id: str | None = None
        self._endpoint: Endpoint | None = None
        self._closed = False
        self._operation_timeout = operation_timeout
        self._retry = (record_retry_base, record_retry_max)
        self._slots = RecordSlots()
        self._stats = BackendStats()

    def stats(self) -> BackendStats:
        """Return the record counters (the memory store has no errors, outages or reconnects)."""
        return self._stats

    # ------------------------------------------------------------------ lifecycle

    async def start(self, instance_id: str, on_message: MessageHandler) -> None:
        """Register the instance with a heartbeat and subscribe its inbox and broadcast."""
        self._instance_id = instance_id
        self._closed = False
        self._endpoint = Endpoint(on_message)
        self._s.instances[instance_id] = self._now() + self.instance_ttl * 1000
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
