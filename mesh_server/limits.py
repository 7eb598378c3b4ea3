"""Configurable limits (protocol.md §15), with the protocol defaults.

Besides sizes, counts and rates, a limit may have the window it is counted over
(``malformed_window``, ``rate_abuse_window``), the backend deadline or the bad-input log
period. The liveness, presence-sweep and instance intervals (§6, §10.3, §13) are not here: they
are :class:`mesh_server.MeshServer` options.

Units: every duration of the server's public Python API is seconds as ``float`` — these limits,
the :class:`mesh_server.MeshServer` options (``ping_interval``, ``instance_ttl``, …), presence
TTLs, the backends' constructor options and ``mesh serve``'s options — as in asyncio, websockets
and redis-py. The wire keeps milliseconds (the ``expireAfter`` of
``mesh/publish-presence-state``, the ``retryAfterMs`` of ``ERATELIMIT``, protocol.md §10.3, §15).

Milliseconds remain only behind the public boundary, where they are converted once:

* :class:`mesh_server.session.ServerSession` is sans-I/O and runs on an integer-ms clock passed
  in by its caller; :class:`mesh_server.MeshServer` converts its intervals when it creates a
  session, the session converts the windows of these limits when it is created, and
  :attr:`mesh_server.Connection.latency` converts the round trip the session measures.
* The :class:`~mesh_server.backends.base.Backend` operations take TTLs in ms with ``_ms`` in
  the argument name (``heartbeat(ttl_ms)``, ``join_room(…, presence_ttl_ms)``), the unit of the
  wire's ``expireAfter`` and of Redis ``PX``; the instance monitor and the presence manager
  convert their seconds before calling them. The memory hub's injectable test clock reads ms,
  the unit of those deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh_sdk.protocol.codec import (
    DEFAULT_MAX_ID_DEPTH,
    DEFAULT_MAX_JSON_DEPTH,
    MAX_SUPPORTED_JSON_DEPTH,
)

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit of the server; each is a :class:`mesh_server.MeshServer` keyword option too.

    Attributes:
        max_message_size: Inbound frame limit in bytes → close 1009.
        max_outbound_frames: Frames queued for one connection → close 4001 (slow consumer).
        max_outbound_bytes: Bytes queued for one connection, transport buffer included → 4001.
        max_inflight_requests: Requests running per connection before reading pauses.
        max_malformed_frames: Malformed frames tolerated per ``malformed_window`` → close 1008.
        malformed_window: Window of the malformed-frame count, in seconds.
        rate_limit: Token-bucket rate in requests/s (``None``: off).
        rate_burst: Token-bucket capacity.
        rate_abuse_rejections: Rejections in ``rate_abuse_window`` that close with 1008.
        rate_abuse_window: Window of the abuse count, in seconds.
        max_subscriptions: Channels + records + presence + rooms per connection → ``ETOOLARGE``.
        max_name_length: Longest channel/room/record name → ``EVALIDATION``.
        max_history: History requests are clamped to this.
        max_record_size: Serialized record value limit → ``ETOOLARGE``.
        max_metadata_size: Client-set metadata limit → ``ETOOLARGE``.
        max_presence_state_size: Presence state limit → ``ETOOLARGE``.
        max_presence_state_bytes: Presence state bytes one connection may hold, summed over
            its rooms (``None``: off) → ``ETOOLARGE``, details ``quota`` =
            ``"max_presence_state_bytes"`` (see :mod:`mesh_server.quotas` for what counts).
        record_write_rate: ``mesh/publish-record-update`` requests per second per connection,
            token bucket (``None``: off) → ``ERATELIMIT``, details ``quota`` =
            ``"record_write_rate"``.
        record_write_burst: Capacity of that bucket, in writes.
        max_record_bytes_per_connection: Record storage one connection may write: over every
            distinct record it wrote, value bytes + record id bytes + 64 (``None``: off) →
            ``ETOOLARGE``, details ``quota`` = ``"max_record_bytes_per_connection"``.
        max_connections: Connections per instance (``None``: unlimited) → HTTP 503.
        backend_timeout: Deadline of one backend operation, in seconds → ``EUNAVAILABLE``.
        max_json_depth: Nesting levels allowed in a request's ``payload`` (and a non-string
            ``command``), checked once when the frame is decoded → ``ETOOLARGE``
            ``{"limit": max_json_depth}`` answered at once (1 to 128; containers count: ``[]`` is
            one level).
        max_id_depth: Nesting levels allowed in a request ``id`` (0 to 128); a deeper id is
            unusable, so the frame is malformed (ignored, counted toward 1008).
        bad_input_log_interval: Seconds between the summary lines that count bad client input
            (malformed frames, unknown commands, invalid payloads, limit hits); each occurrence
            is also logged at DEBUG.

    Raises:
        ValueError: A nesting limit is out of range, or a window, the backend timeout or the log
            interval is not positive.
    """

    max_message_size: int = 1024 * 1024
    max_outbound_frames: int = 1000
    max_outbound_bytes: int = 8 * 1024 * 1024
    max_inflight_requests: int = 100
    max_malformed_frames: int = 10
    malformed_window: float = 60.0
    rate_limit: float | None = None
    rate_burst: int = 20
    rate_abuse_rejections: int = 100
    rate_abuse_window: float = 10.0
    max_subscriptions: int = 1000
    max_name_length: int = 512
    max_history: int = 1000
    max_record_size: int = 1024 * 1024
    max_metadata_size: int = 64 * 1024
    max_presence_state_size: int = 64 * 1024
    # Per-connection quotas on what a client makes the backend store (mesh_server.quotas).
    max_presence_state_bytes: int | None = 1024 * 1024
    record_write_rate: float | None = None
    record_write_burst: int = 20
    max_record_bytes_per_connection: int | None = 16 * 1024 * 1024
    max_connections: int | None = None
    backend_timeout: float = 5.0
    # Hostile input (protocol.md §15): nesting, and how bad input is logged.
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH
    max_id_depth: int = DEFAULT_MAX_ID_DEPTH
    bad_input_log_interval: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_json_depth <= MAX_SUPPORTED_JSON_DEPTH:
            raise ValueError(f"max_json_depth must be within 1..{MAX_SUPPORTED_JSON_DEPTH}")
        if not 0 <= self.max_id_depth <= MAX_SUPPORTED_JSON_DEPTH:
            raise ValueError(f"max_id_depth must be within 0..{MAX_SUPPORTED_JSON_DEPTH}")
        for name in ("malformed_window", "rate_abuse_window", "backend_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if not self.bad_input_log_interval > 0:
            raise ValueError("bad_input_log_interval must be > 0 seconds")
