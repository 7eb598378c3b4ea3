"""Sans-I/O state of one server-side connection (protocol.md §3.2, §5.2, §6, §15).

:class:`ServerSession` decides *what* happens on a connection; the asyncio adapter
(:mod:`mesh_server.connection`) decides *how*. It imports no asyncio, websockets or redis, and the
caller passes the current time (integer ms, any monotonic origin) into every method, so every
timing rule is testable without sleeping.

Inputs and outputs:

* :meth:`ServerSession.start` → the ``mesh/assign-id`` frame (the first frame, §5.2) and arms the
  liveness timers (§6).
* :meth:`ServerSession.receive` classifies one inbound frame (§3.2) and returns one event: a
  :class:`~mesh_sdk.protocol.codec.Request` to dispatch, a :class:`Reply` to send (a request
  answered at once: rate limited, or nested too deeply), :data:`PONG` (feature hook: presence
  refresh), :class:`Close`, :class:`Discarded` (a malformed frame, counted) or ``None`` (nothing
  to do). Reply, Discarded and Close name the client's problem for the abuse log.
* :meth:`ServerSession.on_timer` runs due liveness work and returns frames to send and possibly a
  :class:`Close`; :attr:`ServerSession.next_deadline` says when to call it next.
* :meth:`request_started` / :meth:`request_finished` count requests in flight;
  :attr:`ServerSession.reading_paused` is the backpressure signal (§15).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

from mesh_sdk.protocol.codec import (
    Liveness,
    Rejected,
    Request,
    decode_client_frame,
    encode_error_response,
    encode_push,
)
from mesh_sdk.protocol.errors import RateLimitError
from mesh_server.limits import Limits

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_PING_TIMEOUT",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_STATE_LOST",
    "CLOSE_TOO_BIG",
    "PONG",
    "RESERVED_NAMES",
    "Close",
    "Discarded",
    "Pong",
    "Reply",
    "ServerSession",
    "SessionEvent",
    "is_reserved",
]

# Close codes (protocol.md §16).
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY_VIOLATION: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_PING_TIMEOUT: Final = 4000
CLOSE_SLOW_CONSUMER: Final = 4001
CLOSE_STATE_LOST: Final = 4002

RESERVED_NAMES: Final = frozenset(
    {"ping", "pong", "latency", "latency:request", "latency:response"}
)
"""Names no application command or push may use, besides every ``mesh/…`` name (§3.4)."""


def is_reserved(name: str) -> bool:
    """Return whether ``name`` is reserved by the protocol (protocol.md §3.4)."""
    return name.startswith("mesh/") or name in RESERVED_NAMES


_PING: Final = encode_push("ping", {})
_LATENCY_REQUEST: Final = encode_push("latency:request", {})


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` and clean up at once (protocol.md §16)."""

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """Send this encoded frame: an answer produced by the session itself.

    Attributes:
        frame: The encoded error response.
        problem: What the client did (``"rate_limited"``, ``"too_deep"``), for the abuse log.
    """

    frame: bytes
    problem: str


@dataclass(frozen=True, slots=True)
class Discarded:
    """A malformed frame was ignored and counted (protocol.md §3.2, §15); nothing to send."""

    reason: str


class Pong:
    """A ``pong`` arrived: liveness is updated; features refresh presence (protocol.md §10.3)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PONG"


PONG: Final = Pong()
"""The single :class:`Pong` event instance."""

SessionEvent = Request | Reply | Close | Pong | Discarded | None
"""What :meth:`ServerSession.receive` returns."""


class ServerSession:
    """Liveness, abuse limits and backpressure bookkeeping of one connection.

    Args:
        connection_id: The id sent in ``mesh/assign-id``.
        limits: The server's limits (protocol.md §15; their windows are seconds, converted here to
            the session's ms clock).
        ping_interval: Milliseconds between pings (§6); the session's clock is integer ms.
        latency_interval: Milliseconds between latency probes (§6).
        max_missed_pongs: Unanswered pings tolerated before close 4000 (§6).
    """

    __slots__ = (
        "_abuse_window",
        "_burst",
        "_latency_sent_at",
        "_malformed",
        "_malformed_window",
        "_max_depth",
        "_max_id_depth",
        "_max_inflight",
        "_max_size",
        "_next_latency",
        "_next_ping",
        "_rate",
        "_rejections",
        "_tokens",
        "_tokens_at",
        "awaiting_pong",
        "close_code",
        "closed",
        "connection_id",
        "inflight",
        "latency_interval",
        "limits",
        "max_missed_pongs",
        "missed_pongs",
        "ping_interval",
        "rtt",
        "started",
    )

    def __init__(
        self,
        connection_id: str,
        *,
        limits: Limits,
        ping_interval: int = 30_000,
        latency_interval: int = 5_000,
        max_missed_pongs: int = 1,
    ) -> None:
        if ping_interval <= 0 or latency_interval <= 0:
            raise ValueError("ping_interval and latency_interval must be positive")
        if max_missed_pongs < 0:
            raise ValueError("max_missed_pongs must be >= 0")
        self.connection_id = connection_id
        self.limits = limits
        self.ping_interval = ping_interval
        self.latency_interval = latency_interval
        self.max_missed_pongs = max_missed_pongs
        self._max_size = limits.max_message_size
        self._max_depth = limits.max_json_depth
        self._max_id_depth = limits.max_id_depth
        self.started = False
        self.closed = False
        self.close_code: int | None = None
        # Liveness (§6).
        self.awaiting_pong = False
        self.missed_pongs = 0
        self.rtt = 0
        self._latency_sent_at: int | None = None
        self._next_ping: int | None = None
        self._next_latency: int | None = None
        # Abuse handling (§15).
        # Sliding windows, created on the first bad frame or rejection (an empty deque is
        # ~0.4 KB per connection: issue 12, idle memory).
        self._malformed: deque[int] | None = None
        self._malformed_window = round(limits.malformed_window * 1000)
        self._rate = limits.rate_limit
        self._burst = float(limits.rate_burst)
        self._tokens = self._burst
        self._tokens_at: int | None = None
        self._rejections: deque[int] | None = None
        self._abuse_window = round(limits.rate_abuse_window * 1000)
        # Backpressure (§15: requests running per connection).
        self.inflight = 0
        self._max_inflight = limits.max_inflight_requests

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: int) -> bytes:
        """Arm the liveness timers and return the ``mesh/assign-id`` frame to send first (§5.2).

        Raises:
            RuntimeError: Called twice.
        """
        if self.started:
            raise RuntimeError("session already started")
        self.started = True
        # §6: both timers start after mesh/assign-id; the first ping one interval in.
        self._next_ping = now + self.ping_interval
        self._next_latency = now + self.latency_interval
        return encode_push("mesh/assign-id", self.connection_id)

    def close(self, code: int, reason: str = "") -> Close:
        """Mark the session closed (idempotent for the first code) and return the close action."""
        if not self.closed:
            self.closed = True
            self.close_code = code
            self._next_ping = self._next_latency = None
        return Close(code, reason)

    @property
    def next_deadline(self) -> int | None:
        """When :meth:`on_timer` must run next (ms), or ``None`` when no timer is armed."""
        ping, latency = self._next_ping, self._next_latency
        if ping is None or latency is None:  # both are armed by start() and cleared by close()
            return None
        return ping if ping < latency else latency

    # ------------------------------------------------------------------ inbound frames

    def receive(self, data: bytes | str, now: int) -> SessionEvent:
        """Classify one inbound frame and apply the limits (protocol.md §3.2, §15).

        Args:
            data: The frame as received (binary frames are decoded as UTF-8 JSON like text).
            now: Current time in ms.

        Returns:
            The event for the adapter; never raises for any input.
        """
        if self.closed:
            return None
        frame = decode_client_frame(
            data, self._max_size, max_depth=self._max_depth, max_id_depth=self._max_id_depth
        )
        if isinstance(frame, Request):
            if self._rate is not None:
                return self._rate_limit(frame, now)
            return frame
        if isinstance(frame, Liveness):
            return self._liveness(frame, now)
        if isinstance(frame, Rejected):
            return self._reject(frame, now)
        if frame.too_large:
            # §2: a larger frame is not processed; close 1009.
            return self.close(CLOSE_TOO_BIG, "frame too large")
        return self._count_malformed(frame.reason, now)

    def _liveness(self, frame: Liveness, now: int) -> SessionEvent:
        if frame.command == "pong":
            # §6: any pong clears "awaiting" and resets the missed count; never answered.
            self.awaiting_pong = False
            self.missed_pongs = 0
            return PONG
        # latency:response: only meaningful while a latency:request is outstanding (§6).
        sent = self._latency_sent_at
        if sent is not None:
            self.rtt = max(0, round(now - sent))
            self._latency_sent_at = None
        return None

    def _count_malformed(self, reason: str, now: int) -> SessionEvent:
        # §15: more than max_malformed_frames in any malformed_window → close 1008.
        window = self._malformed
        if window is None:
            window = self._malformed = deque()
        window.append(now)
        horizon = now - self._malformed_window
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) > self.limits.max_malformed_frames:
            return self.close(CLOSE_POLICY_VIOLATION, "malformed-frame limit")
        return Discarded(reason)

    def _reject(self, rejected: Rejected, now: int) -> SessionEvent:
        # A request over the nesting limit is still a request: rate limited first (§3.4 step 1).
        if self._rate is not None:
            event = self._rate_limit(rejected.request, now)
            if event is not rejected.request:
                return event
        return Reply(encode_error_response(rejected.request, rejected.error), "too_deep")

    def _rate_limit(self, request: Request, now: int) -> SessionEvent:
        # §15: token bucket of `rate` tokens/s and capacity `burst`; liveness frames exempt.
        rate = self._rate or 1.0
        last = self._tokens_at
        if last is not None and now > last:
            self._tokens = min(self._burst, self._tokens + (now - last) * rate / 1000.0)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return request
        retry_after = max(1, math.ceil((1.0 - self._tokens) * 1000.0 / rate))
        rejections = self._rejections
        if rejections is None:
            rejections = self._rejections = deque()
        rejections.append(now)
        horizon = now - self._abuse_window
        while rejections and rejections[0] <= horizon:
            rejections.popleft()
        if len(rejections) > self.limits.rate_abuse_rejections:
            return self.close(CLOSE_POLICY_VIOLATION, "rate-limit abuse")  # §15: MAY close 1008
        error = RateLimitError("Rate limit exceeded", details={"retryAfterMs": retry_after})
        return Reply(encode_error_response(request, error), "rate_limited")

    # ------------------------------------------------------------------ timers (§6)

    def on_timer(self, now: int) -> tuple[list[bytes], Close | None]:
        """Run the liveness work due at ``now``.

        Returns:
            Frames to send in order, and a :class:`Close` when the ping timeout fired (the
            frames are then empty).
        """
        frames: list[bytes] = []
        if self.closed or not self.started:
            return frames, None
        next_ping = self._next_ping
        if next_ping is not None and now >= next_ping:
            if self.awaiting_pong:
                self.missed_pongs += 1
                if self.missed_pongs > self.max_missed_pongs:
                    return [], self.close(CLOSE_PING_TIMEOUT)
            else:
                self.missed_pongs = 0
            self.awaiting_pong = True
            # §6: sent whatever other traffic flows (the JS watchdog counts only pings).
            frames.append(_PING)
            self._next_ping = _advance(next_ping, self.ping_interval, now)
        next_latency = self._next_latency
        if next_latency is not None and now >= next_latency:
            self._next_latency = _advance(next_latency, self.latency_interval, now)
            # §6: skipped while a pong is awaited.
            if not self.awaiting_pong:
                frames.append(encode_push("latency", self.rtt))
                frames.append(_LATENCY_REQUEST)
                self._latency_sent_at = now
        return frames, None

    # ------------------------------------------------------------------ backpressure (§15)

    def request_started(self) -> bool:
        """Count a dispatched request; returns whether reading must pause now."""
        self.inflight += 1
        return self.inflight >= self._max_inflight

    def request_finished(self) -> bool:
        """Count a finished request; returns whether reading may resume now."""
        self.inflight -= 1
        return self.inflight == self._max_inflight - 1

    @property
    def reading_paused(self) -> bool:
        """Whether the adapter must not read (too many requests in flight)."""
        return self.inflight >= self._max_inflight


def _advance(deadline: int, interval: int, now: int) -> int:
    """Next tick of a fixed-cadence timer; skips ticks missed while the loop was stalled."""
    deadline += interval
    if deadline <= now:
        deadline = now + interval
    return deadline
