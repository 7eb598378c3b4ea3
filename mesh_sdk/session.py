"""Sans-I/O state of one client across its connections (protocol.md §3, §4, §6, §14).

:class:`ClientSession` holds what outlives a socket — request ids, requests in flight, commands
queued while offline, the reconnect attempt counter — and what belongs to the current socket:
the connection id, the latency the server reported and the ping watchdog. It imports no asyncio
or websockets: the adapter (:mod:`mesh_sdk.client`) feeds it frames and the current time in
seconds (any monotonic clock, e.g. ``loop.time()``), sends what
:meth:`ClientSession.data_to_send` returns, and acts on the returned events.

Every time and duration here is in seconds, like the rest of the SDK's Python API; the only
milliseconds are on the wire (the ``latency`` push, §6), converted where the frame is read.

Each request carries an opaque *handle* chosen by the adapter (a future, typically); the session
hands it back exactly once, in a :class:`Resolved` or :class:`Failed` event, or drops it when the
adapter cancels the request. The pending entries and the events are in
:mod:`mesh_sdk.session_events`.
"""

from __future__ import annotations

import enum
import heapq
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mesh_sdk.protocol.codec import (
    DEFAULT_SDK_MAX_JSON_DEPTH,
    ErrorResponse,
    Malformed,
    Push,
    Response,
    decode_server_frame,
    encode_request,
)
from mesh_sdk.protocol.errors import MeshConnectionError, MeshTimeoutError
from mesh_sdk.reconnect import Backoff
from mesh_sdk.session_events import (
    Assigned,
    Event,
    Failed,
    Ignored,
    LatencyChanged,
    Pending,
    PushReceived,
    Resolved,
    WatchdogExpired,
)

__all__ = ["ClientSession", "SessionState"]

H = TypeVar("H")

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Inbound frames the SDK accepts (protocol.md §2: SHOULD accept up to 16 MiB)."""


class SessionState(enum.Enum):
    """Where the client stands; commands are sent only when :attr:`READY`."""

    IDLE = "idle"
    """Never connected: commands fail at once."""
    CONNECTING = "connecting"
    """A socket is open, ``mesh/assign-id`` not yet received."""
    RESTORING = "restoring"
    """Assigned; the adapter re-establishes subscriptions before releasing queued commands."""
    READY = "ready"
    """Commands go out as they are issued."""
    DISCONNECTED = "disconnected"
    """Between sockets while reconnecting: commands wait in the offline queue."""
    CLOSED = "closed"
    """Closed for good (application close or a do-not-reconnect condition)."""


@dataclass(slots=True)
class _Watchdog:
    deadline: float | None = None
    last_ping: float | None = None


@dataclass(slots=True)
class _Counters:
    malformed: int = 0
    stray_responses: int = 0
    pings: int = 0


class ClientSession(Generic[H]):
    """Client-side protocol state machine (sans-I/O).

    Args:
        ping_timeout: Expected ``ping`` interval of the server in seconds; ``None`` disables
            the watchdog. Must equal the server's ``ping_interval`` (§6).
        max_missed_pings: Pings that may go missing before the watchdog fires (§14).
        backoff: The reconnect delay policy.
        max_message_size: Inbound frame limit in bytes (``None``: unlimited).
        max_json_depth: Nesting limit of a received frame's ``id``, ``payload`` and ``error``: a
            deeper response fails its request with ``ETOOLARGE``, a deeper push is ignored (no
            code path recurses into hostile nesting).
        assign_timeout: Seconds a new socket may stay without ``mesh/assign-id`` before the
            watchdog fires (``None``: wait forever).

    Raises:
        ValueError: ``ping_timeout`` or ``assign_timeout`` is not positive, or
            ``max_missed_pings`` is negative.
    """

    def __init__(
        self,
        *,
        ping_timeout: float | None = 30.0,
        max_missed_pings: int = 1,
        backoff: Backoff | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_json_depth: int = DEFAULT_SDK_MAX_JSON_DEPTH,
        assign_timeout: float | None = None,
    ) -> None:
        if ping_timeout is not None and ping_timeout <= 0:
            raise ValueError("ping_timeout must be positive (or None to disable the watchdog)")
        if assign_timeout is not None and assign_timeout <= 0:
            raise ValueError("assign_timeout must be positive (or None to wait forever)")
        if max_missed_pings < 0:
            raise ValueError("max_missed_pings must be >= 0")
        self.ping_timeout = ping_timeout
        self.max_missed_pings = max_missed_pings
        self.backoff = backoff if backoff is not None else Backoff()
        self.max_message_size = max_message_size
        self.max_json_depth = max_json_depth
        self.assign_timeout = assign_timeout
        self.state = SessionState.IDLE
        self.connection_id: str | None = None
        self.latency: float | None = None
        self.reconnect_attempt = 0
        self.counters = _Counters()
        self._next_id = 0
        self._pending: dict[int, Pending[H]] = {}
        self._deadline_heap: list[tuple[float, int]] = []
        self._watchdog = _Watchdog()
        self._outbox: list[bytes] = []
        self._assigned_before = False

    # ----------------------------------------------------------------------------------------
    # Introspection

    @property
    def pending(self) -> dict[int, Pending[H]]:
        """Requests in flight and queued, by id (read-only view by convention)."""
        return self._pending

    @property
    def in_flight(self) -> list[Pending[H]]:
        """Requests sent on the current socket and not yet answered, in issue order."""
        return [p for p in self._pending.values() if not p.queued]

    @property
    def queued(self) -> list[Pending[H]]:
        """Commands waiting for the connection to be ready, in issue order."""
        return [p for p in self._pending.values() if p.queued]

    def data_to_send(self) -> list[bytes]:
        """Return and clear the frames the session wants sent (liveness answers)."""
        frames, self._outbox = self._outbox, []
        return frames

    # ----------------------------------------------------------------------------------------
    # Connection lifecycle

    def connection_opened(self, now: float) -> None:
        """A new socket is open; wait for ``mesh/assign-id`` (§5.2).

        With ``assign_timeout``, the watchdog fires if the id does not arrive in time.
        """
        self.state = SessionState.CONNECTING
        self.connection_id = None
        self.latency = None
        self._watchdog = _Watchdog()
        if self.assign_timeout is not None:
            self._watchdog.deadline = now + self.assign_timeout
        self._outbox.clear()

    def mark_ready(self, now: float) -> list[bytes]:
        """Subscriptions are restored: release the offline queue in issue order (§14 step 4).

        Call it repeatedly, sending the returned frames in order each time, until it returns an
        empty list: only then is the state :attr:`SessionState.READY`. Commands issued while the
        adapter is still sending released frames therefore queue behind them, which keeps the
        issue order on the wire without a lock.

        Returns:
            The queued requests' frames to send now, oldest first. Requests whose deadline has
            passed are not among them; the next :meth:`tick` fails them.
        """
        if self.state not in (SessionState.RESTORING, SessionState.READY):
            return []
        frames = []
        for pending in self._pending.values():
            if pending.queued and (pending.deadline is None or pending.deadline > now):
                pending.queued = False
                frames.append(pending.frame)
        if not frames:
            self.state = SessionState.READY
        return frames

    def connection_lost(self, now: float) -> list[Failed[H]]:
        """The socket is gone. Requests in flight fail with ``ECONNECTION``; queued ones wait.

        §14: requests in flight may have run, so they are never resent.
        """
        del now
        failures = [
            Failed(p, MeshConnectionError(f'Connection lost before "{p.command}" was answered'))
            for p in self.in_flight
        ]
        for failure in failures:
            del self._pending[failure.pending.id]
        if self.state is not SessionState.CLOSED:
            self.state = SessionState.DISCONNECTED
        self.connection_id = None
        self._watchdog = _Watchdog()
        self._outbox.clear()
        return failures

    def close(self) -> list[Failed[H]]:
        """Close for good: every request, queued or in flight, fails with ``ECONNECTION``."""
        failures = [
            Failed(p, MeshConnectionError(f'Client closed before "{p.command}" was answered'))
            for p in self._pending.values()
        ]
        self._pending.clear()
        self._deadline_heap.clear()
        self.state = SessionState.CLOSED
        self._assigned_before = False
        self.connection_id = None
        self._watchdog = _Watchdog()
        self._outbox.clear()
        return failures

    def next_reconnect_delay(self, cap: float | None = None) -> float:
        """Return the delay in seconds before the next reconnect attempt and count the attempt.

        Args:
            cap: A lower backoff ceiling in seconds for this attempt, e.g. after HTTP 503.
        """
        delay = self.backoff.delay(self.reconnect_attempt, cap)
        self.reconnect_attempt += 1
        return delay

    # ----------------------------------------------------------------------------------------
    # Requests

    def request(
        self,
        command: str,
        payload: Any,
        handle: H,
        now: float,
        timeout: float | None,
        *,
        internal: bool = False,
    ) -> Pending[H]:
        """Register a request and tell the caller whether to send it now.

        Application commands go out when :attr:`SessionState.READY` and wait in the offline
        queue while connecting, restoring or reconnecting. ``internal`` requests (the adapter's
        re-subscriptions and resyncs) bypass the queue and need an assigned connection.

        Args:
            command: Command name.
            payload: JSON-serializable payload.
            handle: The adapter's object, returned in the outcome event.
            now: Current time (seconds).
            timeout: Seconds until the request fails with ``ETIMEOUT`` (``None``: never).
            internal: Send on the current connection or fail; never queue.

        Returns:
            The pending entry; send ``pending.frame`` now unless ``pending.queued``.

        Raises:
            MeshConnectionError: The client is closed or was never connected, or (``internal``)
                no connection is assigned.
            TypeError: ``payload`` is not JSON-serializable.
        """
        if self.state in (SessionState.IDLE, SessionState.CLOSED):
            raise MeshConnectionError(f'Cannot send "{command}": the client is not connected')
        if internal:
            if self.state not in (SessionState.RESTORING, SessionState.READY):
                raise MeshConnectionError(f'Cannot send "{command}": no connection')
            queued = False
        else:
            queued = self.state is not SessionState.READY
        request_id = self._allocate_id()
        frame = encode_request(request_id, command, payload)
        deadline = None if timeout is None else now + timeout
        pending = Pending(request_id, command, payload, handle, deadline, timeout, queued, frame)
        self._pending[request_id] = pending
        if deadline is not None:
            heapq.heappush(self._deadline_heap, (deadline, request_id))
        return pending

    def cancel(self, request_id: int) -> Pending[H] | None:
        """Forget a request (e.g. its caller was cancelled); a later response is ignored."""
        return self._pending.pop(request_id, None)

    def _allocate_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    # ----------------------------------------------------------------------------------------
    # Time

    def next_deadline(self) -> float | None:
        """Return the earliest time (seconds) at which :meth:`tick` has something to do."""
        heap = self._deadline_heap
        while heap and heap[0][1] not in self._pending:
            heapq.heappop(heap)
        candidates = [heap[0][0]] if heap else []
        if self._watchdog.deadline is not None:
            candidates.append(self._watchdog.deadline)
        return min(candidates) if candidates else None

    def tick(self, now: float) -> list[Event]:
        """Expire requests and check the watchdog at time ``now``.

        Returns:
            :class:`Failed` (``ETIMEOUT``) for each expired request, oldest deadline first, and
            :class:`WatchdogExpired` once per connection when pings stopped.
        """
        events: list[Event] = []
        heap = self._deadline_heap
        while heap and heap[0][0] <= now:
            _, request_id = heapq.heappop(heap)
            pending = self._pending.pop(request_id, None)
            if pending is None:
                continue
            where = "queued while offline" if pending.queued else "without a response"
            error = MeshTimeoutError(
                f'Command "{pending.command}" timed out after {pending.timeout:g} s ({where})'
            )
            events.append(Failed(pending, error))
        deadline = self._watchdog.deadline
        if deadline is not None and deadline <= now:
            self._watchdog.deadline = None
            events.append(WatchdogExpired())
        return events

    def _arm_watchdog(self, now: float) -> None:
        if self.ping_timeout is None:
            return
        # §14: reconnect when no ping arrived for (max_missed_pings + 1) × ping_timeout.
        self._watchdog.last_ping = now
        self._watchdog.deadline = now + (self.max_missed_pings + 1) * self.ping_timeout

    # ----------------------------------------------------------------------------------------
    # Inbound frames

    def receive(self, data: bytes | str, now: float) -> list[Event]:
        """Process one inbound frame. Never raises.

        Liveness frames (``ping``, ``latency:request``) are answered through
        :meth:`data_to_send`; everything else becomes events.
        """
        frame = decode_server_frame(data, self.max_message_size, max_depth=self.max_json_depth)
        if isinstance(frame, Malformed):
            self.counters.malformed += 1
            return [Ignored(f"malformed frame: {frame.reason}")]
        if isinstance(frame, Push):
            return self._receive_push(frame, now)
        return self._receive_response(frame)

    def _receive_response(self, frame: Response | ErrorResponse) -> list[Event]:
        pending = None
        if type(frame.id) is int:
            pending = self._pending.get(frame.id)
        if pending is None or pending.queued:
            self.counters.stray_responses += 1
            return [Ignored(f"response to unknown request id {frame.id!r}")]
        del self._pending[pending.id]
        if isinstance(frame, ErrorResponse):
            # §4: a response is an error iff it has a top-level "error".
            return [Failed(pending, frame.error)]
        return [Resolved(pending, frame.payload)]

    def _receive_push(self, frame: Push, now: float) -> list[Event]:
        command, payload = frame.command, frame.payload
        if command == "ping":
            # §6: answer every ping with a pong carrying an id, as the JS clients do.
            self.counters.pings += 1
            self._outbox.append(encode_request(self._allocate_id(), "pong", {}))
            if self.state in (SessionState.RESTORING, SessionState.READY):
                self._arm_watchdog(now)
            return []
        if command == "latency:request":
            self._outbox.append(encode_request(self._allocate_id(), "latency:response", payload))
            return []
        if command == "latency":
            if isinstance(payload, int | float) and not isinstance(payload, bool):
                # §6: the wire carries integer milliseconds.
                self.latency = payload / 1000
                return [LatencyChanged(self.latency)]
            return [Ignored("latency push without a number")]
        if command == "mesh/assign-id":
            return self._receive_assign_id(payload, now)
        return [PushReceived(command, payload)]

    def _receive_assign_id(self, payload: Any, now: float) -> list[Event]:
        if self.state is not SessionState.CONNECTING:
            return [Ignored("mesh/assign-id on an assigned connection")]
        if not isinstance(payload, str) or not payload:
            return [Ignored("mesh/assign-id without a connection id")]
        self.connection_id = payload
        self.state = SessionState.RESTORING
        self._watchdog = _Watchdog()
        # §14: the backoff resets once mesh/assign-id arrives.
        self.reconnect_attempt = 0
        reconnected = self._assigned_before
        self._assigned_before = True
        self._arm_watchdog(now)
        return [Assigned(payload, reconnected)]
