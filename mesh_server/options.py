"""The configuration of one server: :class:`ServerOptions` (``server.options``).

:class:`~mesh_server.MeshServer` validates its keyword options into a :class:`ServerOptions` when
it is constructed; :meth:`~mesh_server.MeshServer.configure` (``mesh serve``'s command-line
options) changes some of them before :meth:`~mesh_server.MeshServer.start`. The constructor's
docstring describes every field. Durations are seconds (``float``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesh_server.limits import Limits
from mesh_server.transport.base import DEFAULT_BACKLOG, UpgradeRequest

if TYPE_CHECKING:
    from mesh_server.connection_manager import MetadataReadGuard, MetadataWriteGuard

__all__ = ["TRANSPORTS", "AuthenticateHook", "ServerOptions"]

AuthenticateHook = Callable[[UpgradeRequest], Any]
"""``authenticate(request)``: returns initial metadata (or ``None``), sync or async; raises
:class:`~mesh_server.MeshAuthError` to reject the upgrade (protocol.md §5.1)."""

TRANSPORTS = ("websockets", "picows")
"""Names of the built-in transports (``MeshServer(transport=...)``, ``mesh serve --transport``)."""

LIMIT_FIELDS = frozenset(f.name for f in dataclasses.fields(Limits))
"""The keyword options that are :class:`~mesh_server.limits.Limits` fields."""

_INTERVALS = (
    "ping_interval",
    "latency_interval",
    "presence_sweep_interval",
    "instance_heartbeat_interval",
    "instance_ttl",
    "instance_sweep_interval",
    "backend_grace",
    "backend_probe_interval",
    "shutdown_timeout",
)


@dataclasses.dataclass(slots=True, kw_only=True)
class ServerOptions:
    """Validated options of a :class:`~mesh_server.MeshServer` (its keyword arguments).

    Attributes:
        host: Interface to bind.
        port: TCP port (``0``: any free port; ``MeshServer.port`` names the bound one).
        redis_url: ``redis://…`` to scale out; ``None`` (default) uses the environment variable
            ``MESH_REDIS_URL`` or else the embedded single-process memory backend.
        allow_unimplemented: Start even though contract commands have no handler (they are
            answered ``ENOTFOUND``).
        namespace: Prefix of internal backend keys and channels (protocol.md §9.2).
        ping_interval: Seconds between pings (protocol.md §6).
        latency_interval: Seconds between latency probes.
        max_missed_pongs: Missed pongs tolerated before close 4000.
        presence_sweep_interval: Seconds between presence expiry sweeps (protocol.md §10.3).
        instance_heartbeat_interval: Seconds between instance heartbeats (protocol.md §13.3).
        instance_ttl: Heartbeat TTL in seconds (must exceed ``instance_heartbeat_interval``).
        instance_sweep_interval: Seconds between dead-instance sweeps (protocol.md §13.4).
        backend_grace: Seconds of backend unavailability before self-fencing (protocol.md §13.5).
        backend_probe_interval: Seconds between heartbeats while the backend is unreachable,
            so that its return is noticed promptly; upgrades are answered 503 meanwhile.
        debug: Send unexpected exceptions' text to clients (development only).
        authenticate: Upgrade hook (protocol.md §5.1).
        allowed_origins: ``Origin`` allow-list (others get 403); ``None`` allows any.
        compression: Enable permessage-deflate (protocol.md §2; off by default).
        close_timeout: Seconds to wait for a closing handshake before dropping the socket.
        open_timeout: Seconds allowed for an opening handshake, ``authenticate`` included
            (``None``: no limit).
        backlog: Listen backlog: TCP connections the kernel queues before they are accepted
            (default 1024; Linux caps it at ``net.core.somaxconn``, and the startup log line
            names the effective value).
        shutdown_timeout: Seconds ``MeshServer.close()`` may take in all (``mesh serve
            --shutdown-timeout``); past it, what is left is abandoned.
        client_metadata_writes: Enable ``mesh/set-my-connection-metadata`` (protocol.md §12.1).
        metadata_write_guard: ``(connection, metadata) -> bool`` for client metadata writes.
        metadata_read_guard: ``(connection, target_id) -> bool`` for metadata reads.
        health: Answer plain HTTP ``GET`` on the WebSocket port at ``health_path`` and
            ``readiness_path`` (:mod:`mesh_server.health`); ``False`` turns both off.
        health_path: Liveness endpoint (``200`` while the process serves).
        readiness_path: Readiness endpoint (``503`` with the reasons while not ready).
        metrics_endpoint: Answer plain HTTP ``GET`` on the WebSocket port at ``metrics_path``
            with the Prometheus exposition (while metrics are on); ``False`` turns it off.
        metrics_path: Path of the metrics endpoint.
        limits: The :class:`~mesh_server.limits.Limits` (``MeshServer(**limits)``, §15).
        transport_name: The built-in transport started when no :class:`Transport` instance was
            given: ``"websockets"`` or ``"picows"``.
        log: The server's logger (``MeshServer(logger=...)``).

    Raises:
        ValueError: Inconsistent intervals, a backlog below 1, or a transport that cannot serve
            these options.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    namespace: str = "mesh:"
    limits: Limits = dataclasses.field(default_factory=Limits)
    allow_unimplemented: bool = False
    ping_interval: float = 30.0
    latency_interval: float = 5.0
    max_missed_pongs: int = 1
    presence_sweep_interval: float = 1.0
    instance_heartbeat_interval: float = 5.0
    instance_ttl: float = 15.0
    instance_sweep_interval: float = 5.0
    backend_grace: float = 30.0
    backend_probe_interval: float = 0.5
    debug: bool = False
    authenticate: AuthenticateHook | None = None
    allowed_origins: frozenset[str] | None = None
    compression: bool = False
    close_timeout: float = 10.0
    open_timeout: float | None = 10.0
    backlog: int = DEFAULT_BACKLOG
    shutdown_timeout: float = 10.0
    transport_name: str = "websockets"
    log: logging.Logger = dataclasses.field(
        default_factory=lambda: logging.getLogger("mesh_server")
    )
    client_metadata_writes: bool = False
    metadata_write_guard: MetadataWriteGuard | None = None
    metadata_read_guard: MetadataReadGuard | None = None
    health: bool = True
    health_path: str = "/healthz"
    readiness_path: str = "/readyz"
    metrics_endpoint: bool = True
    metrics_path: str = "/metrics"

    def __post_init__(self) -> None:
        for name in _INTERVALS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if self.max_missed_pongs < 0:
            raise ValueError("max_missed_pongs must be >= 0")
        if self.instance_ttl <= self.instance_heartbeat_interval:
            raise ValueError("instance_ttl must exceed instance_heartbeat_interval")
        self.set_backlog(self.backlog)
        self.set_transport_name(self.transport_name)

    def set_backlog(self, backlog: int) -> None:
        """Change the listen backlog.

        Raises:
            ValueError: ``backlog`` is below 1.
        """
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        self.backlog = backlog

    def set_transport_name(self, name: str) -> None:
        """Choose the built-in transport by name.

        Raises:
            ValueError: An unknown name, or picows with an async ``authenticate`` hook or with
                compression.
        """
        if name not in TRANSPORTS:
            raise ValueError(
                f"unknown transport {name!r} (expected one of {', '.join(TRANSPORTS)})"
            )
        if name == "picows" and inspect.iscoroutinefunction(self.authenticate):
            raise ValueError(
                "the picows transport decides upgrades synchronously: "
                "authenticate must not be a coroutine function"
            )
        if name == "picows" and self.compression:
            raise ValueError("the picows transport does not implement permessage-deflate")
        self.transport_name = name
