"""What the sans-I/O :class:`~mesh_sdk.session.ClientSession` hands its adapter.

:class:`Pending` is one request the session tracks, carrying the adapter's opaque *handle*; the
events (:data:`Event`) are what :meth:`~mesh_sdk.session.ClientSession.receive`,
:meth:`~mesh_sdk.session.ClientSession.tick` and the connection lifecycle methods return for the
adapter to act on. Every handle comes back exactly once, in a :class:`Resolved` or
:class:`Failed` event, unless the adapter cancels its request. Like the session, this module
imports no asyncio or websockets; times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mesh_sdk.protocol.errors import MeshError

__all__ = [
    "Assigned",
    "Event",
    "Failed",
    "Ignored",
    "LatencyChanged",
    "Pending",
    "PushReceived",
    "Resolved",
    "WatchdogExpired",
]

H = TypeVar("H")


@dataclass(slots=True)
class Pending(Generic[H]):
    """A request the session tracks until it is answered, expires or fails.

    Attributes:
        id: The request id (unique for the client's lifetime).
        command: The command name.
        payload: The JSON payload as sent.
        handle: The adapter's object for this request.
        deadline: Expiry time (session clock, seconds) or ``None`` for no expiry.
        timeout: The timeout it was issued with (seconds), for messages.
        queued: Waiting in the offline queue rather than sent.
        frame: The encoded request.
    """

    id: int
    command: str
    payload: Any
    handle: H
    deadline: float | None
    timeout: float | None
    queued: bool
    frame: bytes


# --------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Assigned:
    """``mesh/assign-id`` arrived (§5.2): the connection is usable; backoff was reset."""

    connection_id: str
    reconnected: bool


@dataclass(frozen=True, slots=True)
class Resolved(Generic[H]):
    """A success response (§3.5) to ``pending``."""

    pending: Pending[H]
    payload: Any


@dataclass(frozen=True, slots=True)
class Failed(Generic[H]):
    """``pending`` failed: an error response (§4), a timeout or a lost connection."""

    pending: Pending[H]
    error: MeshError


@dataclass(frozen=True, slots=True)
class PushReceived:
    """A push for the adapter to route (``mesh/*`` events and application pushes)."""

    command: str
    payload: Any


@dataclass(frozen=True, slots=True)
class LatencyChanged:
    """The server reported the last round trip (§6 ``latency`` push).

    Attributes:
        latency: The round trip in seconds (the wire's integer milliseconds / 1000).
    """

    latency: float


@dataclass(frozen=True, slots=True)
class WatchdogExpired:
    """Drop the socket: pings stopped, or ``mesh/assign-id`` did not arrive in time.

    §14: no ``ping`` for ``(max_missed_pings + 1) × ping_timeout``; or no assignment within
    ``assign_timeout`` of opening.
    """


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame with no effect: malformed, a response nobody waits for, a duplicate assign-id."""

    reason: str


Event = (
    Assigned
    | Resolved[Any]
    | Failed[Any]
    | PushReceived
    | LatencyChanged
    | WatchdogExpired
    | Ignored
)
