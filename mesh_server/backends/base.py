"""The coordination interface every backend implements (memory: one process; Redis: scale-out).

The server talks to shared state only through :class:`Backend`. Operations are *semantic* (join a
room, write a record) rather than key/value primitives, so that each one can be a single atomic
step: a Lua script on Redis, a plain synchronous section on the memory backend (asyncio gives it
atomicity as long as it does not await in the middle).

Both implementations pass the one conformance suite in ``tests/conformance``.

Guarantees (all backends)
-------------------------
* **Atomicity.** Every method documented as atomic is one indivisible step: no other operation of
  any instance is interleaved with it (Redis: one script call; memory: no ``await`` inside).
* **Events.** Backend-originated events (presence join/leave/state, record updates, record
  deletions, channel messages, broadcasts, direct sends) are published on the backend's pub/sub
  and reach every *subscribed* instance's :data:`MessageHandler` **at most once**, in publication
  order per pub/sub channel. Events are published *inside* the atomic step that caused them, so
  their order equals the order of the state changes.
* **Clock.** Deadlines (presence TTL, state expiry) use the backend's clock (Redis ``TIME``),
  never an instance's wall clock.
* **Errors.** Any failure to reach the store raises
  :class:`mesh_sdk.protocol.errors.UnavailableError` (``EUNAVAILABLE``); operations that miss the
  backend deadline (default 5000 ms) raise it too. Nothing else escapes, except the documented
  record outcomes (``TooLargeError``, ``ConflictError``, exceptions of a ``validate`` callback or
  an update function) and programming errors.
* **Isolation.** Stored and published values are encoded bytes/str: nothing mutable is shared
  between a writer and readers (the memory backend copies through JSON).
* **No KEYS.** Enumeration uses indexes (sets/hashes), never ``KEYS``.

Internal pub/sub channels are prefixed with the namespace (default ``mesh:``); application channel
names are used verbatim (PROTOCOL §9.2). The layout of internal messages is defined by
:mod:`mesh_server.backends.messages` so every backend publishes byte-identical events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Backend",
    "DeadInstanceReport",
    "JoinResult",
    "MergeStrategy",
    "MessageHandler",
    "PresenceSnapshot",
    "RecordUpdater",
    "RecordWrite",
    "RecoveredCallback",
]

MergeStrategy = Literal["replace", "merge", "deepMerge"]
"""How a new value combines with the stored one (PROTOCOL §11.3, §12.1)."""

RecordUpdater = Callable[[Any], Any]
"""``fn(current) -> new`` for :meth:`Backend.update_record`: ``current`` is the record's JSON
value (``None`` when absent; a private copy), the result the new JSON value or an awaitable of
it."""

RecoveredCallback = Callable[[], Awaitable[None]]
"""Awaited by a backend after it reconnected to its store and re-subscribed its channels."""

MessageHandler = Callable[[str, bytes], None]
"""Called for every pub/sub message an instance receives: ``(channel, data)``.

It is called synchronously on the event loop and must not block; it may schedule tasks.
"""


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Outcome of :meth:`Backend.join_room`.

    Attributes:
        joined_presence: ``True`` iff the connection became present (a ``join`` was published).
        present: Ids present in the room after the join (empty when the room is untracked).
    """

    joined_presence: bool
    present: list[str]


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Who is present in a room and their states (only present connections with a state)."""

    present: list[str]
    states: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """Outcome of an atomic record write (PROTOCOL §11.3).

    Attributes:
        changed: ``False`` when the new value equals the old one (nothing stored or published).
        version: The record's version after the write.
        value: The stored value after the write.
        patch: RFC 6902 operations from the old to the new value (empty when unchanged).
        size: Serialized size of the stored value in bytes (for quotas; not compared).
    """

    changed: bool
    version: int
    value: Any
    patch: list[dict[str, Any]] = field(default_factory=list)
    size: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class DeadInstanceReport:
    """What a sweep cleaned up for one dead instance it claimed."""

    instance_id: str
    connection_ids: list[str]


class Backend(ABC):
    """Shared state and pub/sub for one server instance.

    Lifecycle: :meth:`start` once, then any operation, then :meth:`close`. One backend object
    serves exactly one instance; several instances share state through the store behind it.
    """

    namespace: str
    """Prefix of every internal key and channel (PROTOCOL §9.2), e.g. ``"mesh:"``."""

    on_recovered: RecoveredCallback | None = None
    """Set by the server: awaited after the backend lost and regained its store (a Redis
    restart), once its pub/sub channels are subscribed again. Backends that cannot lose their
    store (memory) never call it."""

    @abstractmethod
    async def reregister_connections(self, connections: Mapping[str, Any]) -> None:
        """Re-create the routing entries of this instance's live connections after a store loss.

        Stores that cannot lose state while the instance lives (memory) do nothing.

        Args:
            connections: Connection id → metadata to restore (``None``: keep what is stored).
        """

    # ------------------------------------------------------------------ lifecycle and instances

    @abstractmethod
    async def start(self, instance_id: str, on_message: MessageHandler) -> None:
        """Connect, register the instance (heartbeat), subscribe its inbox and broadcast channels.

        Args:
            instance_id: Unique id of this process start (PROTOCOL §13.1).
            on_message: Receives every pub/sub message this instance is subscribed to.
        """

    @abstractmethod
    async def close(self) -> None:
        """Deregister the instance (its heartbeat and registry entries) and release resources.

        Connections must have been unregistered before; whatever is left is removed as a dead
        instance's would be (with ``leave`` events).
        """

    @abstractmethod
    async def heartbeat(self, ttl_ms: int) -> bool:
        """Refresh this instance's heartbeat with ``ttl_ms``.

        Returns:
            ``False`` if the heartbeat had lapsed or the registration was removed (the instance
            was presumed dead and cleaned up: the caller must fence itself, PROTOCOL §13.5); the
            registration is re-created either way.
        """

    @abstractmethod
    async def sweep_dead_instances(self) -> list[DeadInstanceReport]:
        """Claim every instance whose heartbeat lapsed and clean it up (PROTOCOL §13.4).

        Exactly one caller across all instances claims a given dead instance (atomic claim).
        For each of its connections: presence ends with one ``leave`` per present room, states
        go, memberships go, metadata and routing entry go; then the instance's registry entries.
        """

    @abstractmethod
    async def ping(self) -> None:
        """Check that the store answers (raises ``UnavailableError`` if not)."""

    def health_issues(self) -> tuple[str, ...]:
        """Why this backend cannot serve right now, as stable codes; empty when healthy.

        Synchronous and free of I/O (readiness probes call it on every request, see
        :mod:`mesh_server.health`): it reports what the backend already knows, e.g. the Redis
        backend's ``"pubsub_disconnected"`` while its pub/sub reader is reconnecting. The
        memory backend is always healthy.
        """
        return ()

    # ------------------------------------------------------------------ pub/sub

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Subscribe this instance to ``channel`` and return once the subscription is confirmed.

        Idempotent per instance (the server counts local subscribers; the backend need not).
        """

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Drop this instance's subscription to ``channel`` (idempotent)."""

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Publish raw ``data`` on ``channel`` (at-most-once to current subscribers)."""

    # ------------------------------------------------------------------ connections and routing

    @abstractmethod
    async def register_connection(self, connection_id: str, metadata: Any = None) -> None:
        """Add the routing entry (connection → this instance) and initial metadata (None: none)."""

    @abstractmethod
    async def unregister_connection(self, connection_id: str, tracked_rooms: Sequence[str]) -> None:
        """Remove everything the backend holds about a connection (PROTOCOL §5.3 steps 3–5).

        For each room in ``tracked_rooms`` where it is present: remove presence and state and
        publish exactly one ``leave``. Then remove all memberships, metadata and the routing entry.

        Args:
            connection_id: The connection.
            tracked_rooms: Rooms the caller knows to be tracked among the connection's rooms;
                backends may also end presence found elsewhere.
        """

    @abstractmethod
    async def connection_instance(self, connection_id: str) -> str | None:
        """Return the id of the instance holding ``connection_id``, or ``None`` if unknown."""

    @abstractmethod
    async def all_connection_ids(self) -> list[str]:
        """Return the ids of all registered connections on all instances (index scan, no KEYS)."""

    @abstractmethod
    async def send_to_connection(self, connection_id: str, frame: bytes) -> bool:
        """Deliver an encoded frame to a connection on any instance, in O(1) backend operations.

        Returns:
            ``False`` if the connection is not registered anywhere.
        """

    @abstractmethod
    async def broadcast(
        self, frame: bytes, *, room: str | None = None, exclude: Iterable[str] = ()
    ) -> None:
        """Deliver ``frame`` to every connection (or every member of ``room``) on every instance.

        Costs O(1) backend messages per call: one publish that each instance resolves against
        its local connection and room index (PROTOCOL §13.2). ``exclude`` lists connection ids.
        """

    # ------------------------------------------------------------------ metadata (§12)

    @abstractmethod
    async def set_connection_metadata(
        self, connection_id: str, value: Any, strategy: MergeStrategy = "replace"
    ) -> Any:
        """Atomically combine and store a connection's metadata; returns the stored value."""

    @abstractmethod
    async def get_connection_metadata(self, connection_id: str) -> Any:
        """Return a connection's metadata, or ``None`` if it has none or is unknown."""

    @abstractmethod
    async def get_all_connection_metadata(
        self, connection_ids: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Return connection id → metadata (``None`` for none) for the given ids or all ids."""

    @abstractmethod
    async def set_room_metadata(
        self, room: str, value: Any, strategy: Literal["replace", "merge"] = "replace"
    ) -> Any:
        """Atomically set (``replace``) or shallowly update (``merge``) room metadata."""

    @abstractmethod
    async def get_room_metadata(self, room: str) -> Any:
        """Return a room's metadata or ``None``."""

    @abstractmethod
    async def get_all_room_metadata(self) -> dict[str, Any]:
        """Return room → metadata for every room that has metadata."""

    # ------------------------------------------------------------------ rooms (§10.1, §10.2)

    @abstractmethod
    async def join_room(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult:
        """Atomically add membership and, if ``presence_ttl_ms`` is given (tracked room), presence.

        Presence gets deadline = backend now + TTL; a ``join`` event is published only if the
        connection was not present already. Idempotent.
        """

    @abstractmethod
    async def join_registered(
        self, room: str, connection_id: str, presence_ttl_ms: int | None
    ) -> JoinResult | None:
        """Atomically join a connection of any instance and tell its instance (§13.2).

        One step: if the connection has a routing entry, do what :meth:`join_room` does and
        publish the inbox control ``{"t":"room","op":"join","r":room,"c":connection_id}`` to
        the owner instance (:mod:`mesh_server.backends.messages`). A connection that
        unregistered before the step is not joined; one that unregisters after it loses the
        membership with everything else, so no membership outlives its connection.

        Returns:
            ``None`` if the connection is not registered (nothing changed), else the
            :class:`JoinResult`.
        """

    @abstractmethod
    async def leave_room(self, room: str, connection_id: str) -> bool:
        """Atomically remove membership, presence and state; publish ``leave`` if it was present.

        Returns:
            Whether the connection was a member.
        """

    @abstractmethod
    async def room_members(self, room: str) -> list[str]:
        """Return the member ids of ``room`` (all instances), unordered."""

    @abstractmethod
    async def connection_rooms(self, connection_id: str) -> list[str]:
        """Return the rooms ``connection_id`` is a member of."""

    @abstractmethod
    async def is_in_room(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is a member of ``room``."""

    @abstractmethod
    async def all_rooms(self) -> list[str]:
        """Return every room with at least one member (index scan, no KEYS)."""

    @abstractmethod
    async def clear_room(self, room: str) -> list[str]:
        """Atomically remove every member, their presence (``leave`` each) and states, and metadata.

        Returns:
            The ids that were members.
        """

    # ------------------------------------------------------------------ presence (§10.3–§10.5)

    @abstractmethod
    async def refresh_presence(
        self, connection_id: str, rooms_ttl_ms: Sequence[tuple[str, int]]
    ) -> None:
        """Set deadline = now + TTL for each (room, ttl) the connection is a member of.

        A member whose presence had expired becomes present again and ``join`` is published.
        One atomic step for all rooms.
        """

    @abstractmethod
    async def sweep_presence(self) -> int:
        """Atomically remove due presence entries and due states, publishing their events.

        An expired presence publishes exactly one ``leave`` (its state goes silently); an expired
        state publishes exactly one ``state`` event with ``null``. Exactly one instance removes
        (and so publishes) a given entry. Returns how many entries expired.
        """

    @abstractmethod
    async def presence_snapshot(self, room: str) -> PresenceSnapshot:
        """Return the present ids and the states of present connections that have one."""

    @abstractmethod
    async def is_present(self, room: str, connection_id: str) -> bool:
        """Return whether ``connection_id`` is present in ``room``."""

    @abstractmethod
    async def set_presence_state(
        self,
        room: str,
        connection_id: str,
        state: Any,
        *,
        expire_after_ms: int | None = None,
        silent: bool = False,
    ) -> bool:
        """Atomically replace the state (and its expiry) of a present connection.

        Publishes a ``state`` event unless ``silent``. Returns ``False`` (nothing stored) if the
        connection is not present in the room.
        """

    @abstractmethod
    async def clear_presence_state(self, room: str, connection_id: str) -> bool:
        """Remove the state; publish ``state`` with ``null`` iff a state existed.

        Returns:
            ``False`` if the connection is not present in the room.
        """

    # ------------------------------------------------------------------ channels (§9)

    @abstractmethod
    async def publish_channel(self, channel: str, message: str, history: int = 0) -> None:
        """Publish ``message`` on the application channel (verbatim name).

        With ``history`` > 0 one atomic step appends it to the channel's history, trims the
        history to the ``history`` most recent messages and publishes.
        """

    @abstractmethod
    async def channel_history(self, channel: str, limit: int) -> list[str]:
        """Return up to ``limit`` most recent messages of ``channel``, newest first."""

    # ------------------------------------------------------------------ records (§11)

    @abstractmethod
    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)``; ``(None, 0)`` when absent."""

    @abstractmethod
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
        """Atomically combine, diff, store with version + 1 and publish the update (§11.3).

        Unchanged values store and publish nothing. The update event carries the record id,
        version, full value and patch; it is published inside the same atomic step (or the
        commit step of an optimistic compute-then-check-and-set loop).

        With ``expected_version`` the write is a compare-and-set: it happens only if the record
        is at that version (0: absent) when it commits, else nothing is stored or published
        and :class:`~mesh_sdk.protocol.errors.ConflictError` reports the version found (never a
        stale cached one). The version check comes first: a conflicting write is refused as
        a conflict even if its value is too large or invalid.

        Args:
            record_id: The record.
            value: The new value (combined with the stored one per ``strategy``).
            strategy: ``replace``, ``merge`` or ``deepMerge``.
            max_size: Limit of the serialized combined value → ``TooLargeError``, nothing stored.
            validate: Called with the combined value before storing; raising aborts the write.
            expected_version: The version the record must be at; ``None``: any.

        Raises:
            ConflictError: The record is not at ``expected_version`` (``details`` =
                ``{"expected": int, "actual": int}``).
            TooLargeError: The combined value exceeds ``max_size``.
            UnavailableError: The store is unreachable or the deadline passed.
        """

    @abstractmethod
    async def update_record(
        self,
        record_id: str,
        fn: RecordUpdater,
        *,
        max_size: int | None = None,
        validate: Callable[[Any], None] | None = None,
    ) -> RecordWrite:
        """Atomically read, modify and write a record (§11.3).

        Reads the value, computes ``fn(value)`` and commits the result as a ``replace`` write
        iff no write or deletion of the record happened in between; otherwise it runs ``fn``
        again on the newer value, after a jittered, growing pause, until the operation
        deadline, which bounds the whole update including every run of ``fn``. Updates of one
        record on one instance wait for each other, so they conflict only with writes of
        other instances (or plain writes that commit while ``fn`` awaits).

        ``fn`` gets a private copy (it may mutate and return it); it may be sync or async and
        may run several times. An exception raised by ``fn`` aborts the update (nothing stored)
        and propagates unchanged. A backend that ran ``fn`` on a cached state first checks that
        the state is current and otherwise runs ``fn`` again on the current one: a stale cache
        never decides an outcome. ``fn`` writing the record it updates (from the same task)
        raises ``RuntimeError`` instead of waiting for itself. A result equal to the current
        value stores nothing.

        Args:
            record_id: The record.
            fn: Computes the new value from the current one (``None`` when absent).
            max_size: Limit of the serialized new value → ``TooLargeError``, nothing stored.
            validate: Called with the new value before storing; raising aborts the update.

        Returns:
            The committed write (``changed=False`` when ``fn`` returned the current value).

        Raises:
            TooLargeError: The new value exceeds ``max_size``.
            UnavailableError: The store is unreachable or the deadline passed.
        """

    @abstractmethod
    async def delete_record(self, record_id: str) -> int | None:
        """Atomically delete value and version and publish the deletion event.

        Returns:
            The last version, or ``None`` if the record was absent (nothing published).
        """
