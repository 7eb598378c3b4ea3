"""The public server: :class:`MeshServer`.

``MeshServer`` owns the transport, the backend, the command pipeline, the local connection hub
and the instance monitor, and implements :class:`mesh_server.features.ServerCore` for the feature
managers (channels, rooms, presence, records), whose public API it re-exposes
(:mod:`mesh_server.server_features`).

Example::

    server = MeshServer(port=8080)

    @server.command("echo")
    async def echo(ctx):
        return ctx.payload

    async with server:
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import ipaddress
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from mesh_sdk.protocol.codec import encode_push
from mesh_sdk.protocol.contract import to_jsonable
from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends import create_backend
from mesh_server.backends.base import Backend
from mesh_server.connection import Connection
from mesh_server.connection_manager import (
    ConnectionManager,
    MetadataReadGuard,
    MetadataWriteGuard,
)
from mesh_server.contract_info import contract_info_commands
from mesh_server.errors import MeshAuthError
from mesh_server.features import ConnectionLike, Feature, PongListener
from mesh_server.health import (
    BACKEND_UNAVAILABLE,
    FENCED,
    SHUTTING_DOWN,
    HealthEndpoints,
    Readiness,
)
from mesh_server.hub import Hub
from mesh_server.instance import InstanceMonitor
from mesh_server.limits import Limits
from mesh_server.logs import (
    FIELD_CLOSE_CODE,
    FIELD_CONNECTION_ID,
    FIELD_INSTANCE_ID,
    FIELD_PEER,
    startup_fields,
)
from mesh_server.metrics import Metrics, MetricsEndpoint, create_metrics
from mesh_server.middleware import Handler, Middleware
from mesh_server.pipeline import Pipeline, is_reserved
from mesh_server.server_features import FeatureAPI
from mesh_server.session import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_STATE_LOST,
    ServerSession,
)
from mesh_server.shutdown import ShutdownDeadline
from mesh_server.timer_wheel import TimerWheel
from mesh_server.transport.asgi import AsgiApp, AsgiTransport
from mesh_server.transport.base import (
    DEFAULT_BACKLOG,
    Accept,
    HttpResponse,
    Transport,
    TransportConnection,
    TransportHooks,
    UpgradeDecision,
    UpgradeRequest,
)
from mesh_server.transport.websockets import WebsocketsTransport

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex

__all__ = ["ConnectionHook", "MeshServer"]

ConnectionHook = Callable[[Connection], "Awaitable[None] | None"]
"""``on_connection`` / ``on_disconnection`` callback (sync or async)."""

AuthenticateHook = Callable[[UpgradeRequest], Any]
"""``authenticate(request)``: returns initial metadata (or ``None``), sync or async; raises
:class:`~mesh_server.MeshAuthError` to reject the upgrade (protocol.md §5.1)."""

F = TypeVar("F", bound=Callable[..., Any])

_LIMIT_FIELDS = frozenset(f.name for f in dataclasses.fields(Limits))
_CLEANUP_RETRY_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_TRANSPORTS = ("websockets", "picows")
"""Names of the built-in transports (``MeshServer(transport=...)``, ``mesh serve --transport``)."""


def _reachable_addresses(transport: Transport) -> list[str]:
    """Return the listening addresses of ``transport`` that other machines can reach."""
    # The listening adapters (websockets, picows) expose their sockets; another adapter (e.g.
    # ASGI) does not own a listening socket here.
    sockets: tuple[socket.socket, ...] = getattr(transport, "sockets", ())
    addresses = []
    for sock in sockets:
        address = str(sock.getsockname()[0])
        if not ipaddress.ip_address(address).is_loopback:
            addresses.append(address)
    return addresses


def _to_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _new_connection_id() -> str:
    # §5.2: "conn-" + at least 96 random bits, [A-Za-z0-9_-], never reused.
    return "conn-" + secrets.token_urlsafe(16)


async def _call_hook(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class MeshServer(FeatureAPI):
    """A Mesh WebSocket server (one instance; several share state through Redis).

    Args:
        host: Interface to bind.
        port: TCP port (``0``: any free port, see :attr:`port`).
        redis_url: ``redis://…`` to scale out; ``None`` (default) uses the environment variable
            ``MESH_REDIS_URL`` or else the embedded single-process memory backend.
        backend: A ready-made (unstarted) backend instead of ``redis_url``.
        contract: Generated application contract index: commands must be defined in it and their
            requests and responses are validated (protocol.md §3.4); :meth:`start` refuses to
            start while one of its commands has no handler. A generated ``<Name>Server``
            facade binds its contract (:meth:`bind_contract`).
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
        client_metadata_writes: Enable ``mesh/set-my-connection-metadata`` (protocol.md §12.1).
        metadata_write_guard: ``(connection, metadata) -> bool`` for client metadata writes.
        metadata_read_guard: ``(connection, target_id) -> bool`` for metadata reads.
        compression: Enable permessage-deflate (protocol.md §2; off by default).
        close_timeout: Seconds to wait for a closing handshake before dropping the socket.
        open_timeout: Seconds allowed for an opening handshake, ``authenticate`` included
            (``None``: no limit).
        backlog: Listen backlog: TCP connections the kernel queues before they are accepted
            (default 1024; Linux caps it at ``net.core.somaxconn``, and the startup log line
            names the effective value).
        health: Answer plain HTTP ``GET`` on the WebSocket port at ``health_path`` and
            ``readiness_path`` (:mod:`mesh_server.health`); ``False`` turns both off.
        health_path: Liveness endpoint (``200`` while the process serves).
        readiness_path: Readiness endpoint (``503`` with the reasons while not ready).
        shutdown_timeout: Seconds :meth:`close` may take in all (``mesh serve
            --shutdown-timeout``); past it, what is left is abandoned (see :meth:`close`).
        transport: ``"websockets"`` (the default) or ``"picows"`` (extra ``mesh-py[fast]``;
            its upgrade decisions are synchronous, so ``authenticate`` must not be a coroutine
            function), both on ``host``/``port``; or a custom :class:`Transport` instance,
            which brings its own address, backlog and timeouts.
        logger: Logger (default ``logging.getLogger("mesh_server")``).
        metrics: Record Prometheus metrics (:attr:`metrics`) when ``prometheus_client`` is
            installed (extra ``mesh-py[metrics]``); ``False``, or without it, metrics are a no-op.
        metrics_registry: The ``prometheus_client.CollectorRegistry`` to register into, e.g.
            ``prometheus_client.REGISTRY`` (the process-wide default, for one server per
            process); ``None`` gives this server a registry of its own, so several servers in
            one process never clash.
        metrics_endpoint: Answer plain HTTP ``GET`` on the WebSocket port at ``metrics_path``
            with the Prometheus exposition (while metrics are on); ``False`` turns it off.
        metrics_path: Path of the metrics endpoint.
        **limits: Any field of :class:`mesh_server.limits.Limits` (protocol.md §15), e.g.
            ``max_message_size=65536``, ``rate_limit=50``, ``max_outbound_frames=100``.

    Raises:
        TypeError: An unknown keyword option.
        ValueError: Inconsistent intervals.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        redis_url: str | None = None,
        backend: Backend | None = None,
        contract: ContractIndex | None = None,
        allow_unimplemented: bool = False,
        namespace: str = "mesh:",
        ping_interval: float = 30.0,
        latency_interval: float = 5.0,
        max_missed_pongs: int = 1,
        presence_sweep_interval: float = 1.0,
        instance_heartbeat_interval: float = 5.0,
        instance_ttl: float = 15.0,
        instance_sweep_interval: float = 5.0,
        backend_grace: float = 30.0,
        backend_probe_interval: float = 0.5,
        debug: bool = False,
        authenticate: AuthenticateHook | None = None,
        allowed_origins: Iterable[str] | None = None,
        client_metadata_writes: bool = False,
        metadata_write_guard: MetadataWriteGuard | None = None,
        metadata_read_guard: MetadataReadGuard | None = None,
        compression: bool = False,
        close_timeout: float = 10.0,
        open_timeout: float | None = 10.0,
        backlog: int = DEFAULT_BACKLOG,
        health: bool = True,
        health_path: str = "/healthz",
        readiness_path: str = "/readyz",
        shutdown_timeout: float = 10.0,
        transport: Transport | str | None = None,
        logger: logging.Logger | None = None,
        metrics: bool = True,
        metrics_registry: Any = None,
        metrics_endpoint: bool = True,
        metrics_path: str = "/metrics",
        **limits: Any,
    ) -> None:
        unknown = set(limits) - _LIMIT_FIELDS
        if unknown:
            raise TypeError(f"unknown MeshServer option(s): {', '.join(sorted(unknown))}")
        intervals = {
            "ping_interval": ping_interval,
            "latency_interval": latency_interval,
            "presence_sweep_interval": presence_sweep_interval,
            "instance_heartbeat_interval": instance_heartbeat_interval,
            "instance_ttl": instance_ttl,
            "instance_sweep_interval": instance_sweep_interval,
            "backend_grace": backend_grace,
            "backend_probe_interval": backend_probe_interval,
        }
        for name, seconds in intervals.items():
            if not seconds > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if max_missed_pongs < 0:
            raise ValueError("max_missed_pongs must be >= 0")
        if instance_ttl <= instance_heartbeat_interval:
            raise ValueError("instance_ttl must exceed instance_heartbeat_interval")
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if not shutdown_timeout > 0:
            raise ValueError("shutdown_timeout must be > 0 seconds")
        self.host = host
        self._port = port
        self._limits = Limits(**limits)
        self._namespace = namespace
        self.allow_unimplemented = allow_unimplemented
        self._ping_interval = ping_interval
        self.latency_interval = latency_interval
        self._max_missed_pongs = max_missed_pongs
        self.presence_sweep_interval = presence_sweep_interval
        self.instance_heartbeat_interval = instance_heartbeat_interval
        self.instance_ttl = instance_ttl
        self.instance_sweep_interval = instance_sweep_interval
        self.backend_grace = backend_grace
        self.backend_probe_interval = backend_probe_interval
        self.debug = debug
        self.authenticate = authenticate
        self.allowed_origins = frozenset(allowed_origins) if allowed_origins is not None else None
        self.compression = compression
        self.close_timeout = close_timeout
        self.open_timeout = open_timeout
        self.backlog = backlog
        self._health: HealthEndpoints | None = None
        self._configure_health(health, health_path, readiness_path)
        self.metrics: Metrics = create_metrics(metrics, metrics_registry)
        """What the server records (:mod:`mesh_server.metrics`); ``metrics.exposition()``
        renders a Prometheus scrape."""
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._configure_metrics_endpoint(metrics_endpoint, metrics_path)
        self.shutdown_timeout = shutdown_timeout
        self._log = logger or logging.getLogger("mesh_server")
        self.redis_url = redis_url if redis_url is not None else os.environ.get("MESH_REDIS_URL")
        self._backend = backend
        self._transport: Transport | None = None
        self.transport_name = "websockets"
        """The built-in transport started when no :class:`Transport` instance was given."""
        if isinstance(transport, str):
            self._set_transport_name(transport)
        else:
            self._transport = transport
        self.instance_id = uuid.uuid4().hex
        self._hub = Hub(namespace, self.instance_id, self._log)
        self.pipeline = Pipeline(
            self, contract=contract, debug=debug, log=self._log, metrics=self.metrics
        )
        self.connection_manager = ConnectionManager(
            self,
            client_metadata_writes=client_metadata_writes,
            metadata_write_guard=metadata_write_guard,
            metadata_read_guard=metadata_read_guard,
        )
        self._on_connection: list[ConnectionHook] = []
        self._on_disconnection: list[ConnectionHook] = []
        self._instance: InstanceMonitor | None = None
        self._started = False
        self._closing = False
        self._closed = asyncio.Event()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._conn_count = 0
        self._timer_wheel: TimerWheel | None = None
        self._features: list[Feature] = []
        self._init_features(presence_sweep_interval)
        # Only features that react to pongs are called: no task per pong when none does.
        self._pong_listeners = [f for f in self._features if isinstance(f, PongListener)]

    # ------------------------------------------------------------------ ServerCore

    @property
    def backend(self) -> Backend:
        """The coordination backend (created on first use, started by :meth:`start`)."""
        if self._backend is None:
            options: dict[str, Any] = {"instance_ttl": self.instance_ttl}
            if self.redis_url is not None:
                options["operation_timeout"] = self._limits.backend_timeout
            self._backend = create_backend(self.redis_url, namespace=self._namespace, **options)
        return self._backend

    @property
    def namespace(self) -> str:
        """Internal key/channel prefix (protocol.md §9.2)."""
        return self._namespace

    @property
    def limits(self) -> Limits:
        """The configured limits (protocol.md §15)."""
        return self._limits

    @property
    def contract(self) -> ContractIndex | None:
        """The application contract, if any."""
        return self.pipeline.contract

    def bind_contract(self, contract: ContractIndex) -> None:
        """Validate commands, channel messages and record values against ``contract``.

        The same as ``MeshServer(contract=contract)``; generated server facades call it.

        Raises:
            ValueError: Bound to a different contract, or a registered command is not defined
                by ``contract``.
            RuntimeError: The server was already started.
        """
        if self._started:
            raise RuntimeError("bind_contract() must be called before start()")
        self.pipeline.bind(contract)

    @property
    def log(self) -> logging.Logger:
        """The server's logger."""
        return self._log

    @property
    def ping_interval(self) -> float:
        """The liveness ping interval in seconds."""
        return self._ping_interval

    @property
    def max_missed_pongs(self) -> int:
        """Missed pongs tolerated before close 4000."""
        return self._max_missed_pongs

    def local_connection(self, connection_id: str) -> Connection | None:
        """Return the open local connection with this id, if any."""
        return self._hub.connections.get(connection_id)

    @property
    def connections(self) -> dict[str, Connection]:
        """Open local connections by id (a copy)."""
        return dict(self._hub.connections)

    def deliver(self, connection_ids: Iterable[str], frame: bytes) -> None:
        """Write one encoded frame to each open local connection among ``connection_ids``."""
        self._hub.deliver(connection_ids, frame)

    def now_ms(self) -> int:
        """Wall-clock time in integer ms (event timestamps)."""
        return int(time.time() * 1000)

    def index_join(self, room: str, connection_id: str) -> None:
        """Record a local connection's room membership (local room index, §13.2)."""
        self._hub.index_join(room, connection_id)

    def index_leave(self, room: str, connection_id: str) -> None:
        """Drop a local connection's room membership from the local room index."""
        self._hub.index_leave(room, connection_id)

    def index_clear(self, room: str) -> None:
        """Drop a room from the local room index."""
        self._hub.index_clear(room)

    def local_room_members(self, room: str) -> set[str]:
        """Return the local connection ids that are members of ``room``."""
        return self._hub.local_room_members(room)

    def resolve_connection(self, conn_or_id: ConnectionLike | str) -> str:
        """Return the id of a connection object or id."""
        if isinstance(conn_or_id, str):
            return conn_or_id
        return conn_or_id.id

    # ------------------------------------------------------------------ registration

    def expose_command(
        self, name: str, handler: Handler, middlewares: Sequence[Middleware] = ()
    ) -> None:
        """Register an application command.

        Args:
            name: Wire name (not reserved: no ``mesh/…``, ``ping``, ``pong``, ``latency…``).
            handler: ``(ctx) -> payload`` (sync or async); its return value is the response.
            middlewares: Command middleware, run after the global middleware (protocol.md §3.4).

        Raises:
            ValueError: Reserved name, or not defined by the server's contract.
        """
        self.pipeline.expose(name, handler, middlewares)

    def command(self, name: str, middlewares: Sequence[Middleware] = ()) -> Callable[[F], F]:
        """Decorator form of :meth:`expose_command`."""

        def register(fn: F) -> F:
            self.expose_command(name, fn, middlewares)
            return fn

        return register

    def use_middleware(self, *fns: Middleware) -> None:
        """Add global middleware, run for every command (built-ins included) in order."""
        self.pipeline.use(fns)

    def on_connection(self, fn: ConnectionHook) -> ConnectionHook:
        """Register a hook run after a connection is registered, before ``mesh/assign-id``."""
        self._on_connection.append(fn)
        return fn

    def on_disconnection(self, fn: ConnectionHook) -> ConnectionHook:
        """Register a hook run after a connection's cleanup (protocol.md §5.3)."""
        self._on_disconnection.append(fn)
        return fn

    # ------------------------------------------------------------------ lifecycle

    def configure(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        redis_url: str | None = None,
        backlog: int | None = None,
        health: bool | None = None,
        health_path: str | None = None,
        readiness_path: str | None = None,
        metrics_endpoint: bool | None = None,
        metrics_path: str | None = None,
        transport: str | None = None,
    ) -> None:
        """Override listening, Redis, health, metrics or transport options before :meth:`start`.

        ``mesh serve`` calls it with its command-line options.

        Each argument left at ``None`` keeps the constructor's value (same meanings).

        Raises:
            RuntimeError: The server was already started, or ``transport`` is given while the
                server already has a transport (a :class:`Transport` instance, or the ASGI
                transport of :meth:`asgi_app`).
            ValueError: An invalid backlog, health or metrics path, two equal paths, or an
                unknown transport name.
        """
        if self._started:
            raise RuntimeError("configure() must be called before start()")
        if transport is not None:
            if self._transport is not None:
                # A given transport, or the ASGI one that asgi_app() created: switching would
                # silently drop it (an ASGI app already handed out would never be served).
                raise RuntimeError(
                    f"configure(transport={transport!r}): the server already has its "
                    f"transport ({type(self._transport).__name__}: given, or asgi_app()'s)"
                )
            self._set_transport_name(transport)
        if host is not None:
            self.host = host
        if port is not None:
            self._port = port
        if redis_url is not None:
            self.redis_url = redis_url
            self._backend = None
        if backlog is not None:
            if backlog < 1:
                raise ValueError("backlog must be at least 1")
            self.backlog = backlog
        current = self._health
        self._configure_health(
            health if health is not None else current is not None,
            health_path or (current.health_path if current else "/healthz"),
            readiness_path or (current.readiness_path if current else "/readyz"),
        )
        endpoint = self._metrics_endpoint
        self._configure_metrics_endpoint(
            metrics_endpoint if metrics_endpoint is not None else endpoint is not None,
            metrics_path or (endpoint.path if endpoint else "/metrics"),
        )

    def _configure_metrics_endpoint(self, enabled: bool, path: str) -> None:
        endpoint = MetricsEndpoint(self.metrics, path) if enabled else None
        health = self._health
        if (
            endpoint is not None
            and health is not None
            and path in (health.health_path, health.readiness_path)
        ):
            raise ValueError(f"metrics_path {path!r} is a health endpoint's path")
        self._metrics_endpoint = endpoint

    def _on_http(self, request: UpgradeRequest) -> HttpResponse | None:
        # Plain HTTP on the WebSocket port: the health endpoints, then the metrics endpoint.
        health, endpoint = self._health, self._metrics_endpoint
        response = health.respond(request) if health is not None else None
        if response is None and endpoint is not None:
            response = endpoint.respond(request)
        return response

    def _configure_health(self, enabled: bool, health_path: str, readiness_path: str) -> None:
        self._health = (
            HealthEndpoints(self.readiness, health_path=health_path, readiness_path=readiness_path)
            if enabled
            else None
        )

    def readiness(self) -> Readiness:
        """Whether this instance should get new connections (the ``/readyz`` answer).

        Not ready while shutting down, while fenced (protocol.md §13.5), while heartbeats fail, or
        while the backend reports a problem (:meth:`Backend.health_issues`, e.g. the Redis pub/sub
        reader is down).
        Synchronous and free of I/O.
        """
        reasons: list[str] = []
        if self._closing:
            reasons.append(SHUTTING_DOWN)
        instance = self._instance
        if instance is not None and instance.fenced:
            reasons.append(FENCED)
        if instance is not None and instance.unavailable:
            reasons.append(BACKEND_UNAVAILABLE)
        reasons.extend(self.backend.health_issues())
        return Readiness(tuple(reasons))

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._started and self._transport is not None:
            return self._transport.port
        return self._port

    @property
    def timer_wheel(self) -> TimerWheel:
        """The liveness deadlines of this server's connections, on one loop timer."""
        if self._timer_wheel is None:
            self._timer_wheel = TimerWheel(asyncio.get_running_loop())
        return self._timer_wheel

    @property
    def transport(self) -> Transport | None:
        """The transport adapter: the one given, or the default one once started."""
        return self._transport

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running server."""
        return f"ws://{self.host}:{self.port}"

    @property
    def started(self) -> bool:
        """Whether :meth:`start` completed and :meth:`close` was not called."""
        return self._started and not self._closing

    async def start(self) -> None:
        """Start the backend, the feature managers, the instance monitor and the listener."""
        if self._started:
            return
        if not self.allow_unimplemented:
            self.pipeline.check_implemented()
        backend = self.backend
        backend.on_recovered = self._on_backend_recovered
        self.pipeline.add_builtins(self.connection_manager.builtin_commands())
        self.pipeline.add_builtins(contract_info_commands(self.contract))
        for feature in self._features:
            self.pipeline.add_builtins(feature.builtin_commands())
            self._hub.add_routes(feature.message_routes())
        self.pipeline.bind_metrics()
        self.metrics.watch_backend(backend.stats)
        await backend.start(self.instance_id, self._hub.on_message)
        for feature in self._features:
            await feature.start()
        self._instance = InstanceMonitor(
            backend,
            heartbeat_interval=self.instance_heartbeat_interval,
            ttl=self.instance_ttl,
            sweep_interval=self.instance_sweep_interval,
            backend_grace=self.backend_grace,
            probe_interval=self.backend_probe_interval,
            fence=self._fence,
            log=self._log,
        )
        await self._instance.beat()
        await self._instance.start()
        if self._transport is None:
            self._transport = self._builtin_transport()
        hooks = TransportHooks(self._on_upgrade, self._on_connect)
        if self._health is not None or self._metrics_endpoint is not None:
            hooks = TransportHooks(self._on_upgrade, self._on_connect, self._on_http)
        await self._transport.start(hooks)
        self._started = True
        # The details are structured fields (mesh_server.logs), shown by both log formats.
        fields = {FIELD_INSTANCE_ID: self.instance_id, **startup_fields(self)}
        if isinstance(self._transport, AsgiTransport):
            self._log.info("Mesh server serving as an ASGI application", extra=fields)
            return
        self._log.info(
            "Mesh server listening on %s",
            self.url,
            extra=fields,
        )
        reachable = _reachable_addresses(self._transport) if self.allowed_origins is None else []
        if reachable:
            # §5.1: without an allow-list any web page can open a connection with the
            # visitor's cookies; harmless on loopback, worth a warning anywhere else.
            self._log.warning(
                "allowed_origins is not set: connections from any Origin are accepted on %s "
                "(pass allowed_origins=[...]; see docs/deployment.md)",
                ", ".join(reachable),
            )

    def _set_transport_name(self, name: str) -> None:
        if name not in _TRANSPORTS:
            raise ValueError(
                f"unknown transport {name!r} (expected one of {', '.join(_TRANSPORTS)})"
            )
        if name == "picows" and inspect.iscoroutinefunction(self.authenticate):
            raise ValueError(
                "the picows transport decides upgrades synchronously: "
                "authenticate must not be a coroutine function"
            )
        if name == "picows" and self.compression:
            raise ValueError("the picows transport does not implement permessage-deflate")
        self.transport_name = name

    def _builtin_transport(self) -> Transport:
        if self.transport_name == "picows":
            # Imported here: picows is an optional dependency (extra mesh-py[fast]).
            from mesh_server.transport.picows import PicowsTransport

            return PicowsTransport(
                self.host,
                self._port,
                max_message_size=self._limits.max_message_size,
                backlog=self.backlog,
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
            )
        return WebsocketsTransport(
            self.host,
            self._port,
            max_message_size=self._limits.max_message_size,
            backlog=self.backlog,
            compression=self.compression,
            open_timeout=self.open_timeout,
            close_timeout=self.close_timeout,
        )

    def asgi_app(self) -> AsgiApp:
        """Serve through an ASGI server instead of listening: an ASGI 3 application.

        ``uvicorn app:asgi`` with ``asgi = server.asgi_app()`` runs it; its ``lifespan`` events
        start and close the server. Mounted in FastAPI or Starlette (``app.mount("/ws", …)``),
        which do not pass lifespan events to mounted apps, give the outer app
        :meth:`lifespan`. ``host``, ``port``, ``backlog`` and ``compression`` are then the ASGI
        server's business (see :mod:`mesh_server.transport.asgi`); every call returns an app on
        the same transport.

        Raises:
            RuntimeError: The server has another transport (given, or the default one once
                started).
        """
        transport = self._transport
        if transport is None:
            transport = self._transport = AsgiTransport(
                max_message_size=self._limits.max_message_size,
                open_timeout=self.open_timeout,
                close_timeout=self.close_timeout,
                port=self._port,
            )
        if not isinstance(transport, AsgiTransport):
            raise RuntimeError(f"the server already has a {type(transport).__name__}")
        if self.compression:
            self._log.warning(
                "compression=True has no effect under ASGI: permessage-deflate is the ASGI "
                "server's option (uvicorn: --ws-per-message-deflate)"
            )
        return AsgiApp(transport, self.start, self.close)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start the server on entry and close it on exit: a FastAPI/Starlette ``lifespan``.

        Example::

            mesh = MeshServer()
            app = FastAPI(lifespan=mesh.lifespan)
            app.mount("/ws", mesh.asgi_app())

        Args:
            app: The application whose lifespan this is (ignored; the frameworks pass it).
        """
        await self.start()
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        """Shut down gracefully within :attr:`shutdown_timeout` seconds (protocol.md §5.3, §13).

        In order: refuse new upgrades (503; ``/readyz`` answers 503 ``shutting_down``
        meanwhile); close every connection with 1001; wait for their cleanup (subscriptions, one
        presence ``leave`` each, memberships, metadata and routing entry, which other instances
        see at once); stop the feature managers and the instance monitor; deregister the instance
        (on Redis this also removes any connection state left over); release the listener.
        Connection cleanup may run until a reserve of a quarter of the timeout (at most
        ``backend_timeout``) is left for the steps after it. A step that overruns the deadline
        is abandoned with a warning and the next one runs, so ``close`` returns within the
        timeout. Calling it again, or before :meth:`start`, returns at once.
        """
        if self._closing or not self._started:
            self._closing = True
            self._closed.set()
            return
        self._closing = True
        budget = self.shutdown_timeout
        deadline = ShutdownDeadline(budget, self._log, self.instance_id)
        self._log.info(
            "Mesh server shutting down (%d connections, at most %.1f s)",
            len(self._hub.connections),
            budget,
            extra={FIELD_INSTANCE_ID: self.instance_id},
        )
        transport = self._transport
        for connection in list(self._hub.connections.values()):
            connection.close(CLOSE_GOING_AWAY, "server shutdown")
        reserve = min(budget / 4, self._limits.backend_timeout)
        await deadline.wait_tasks(self._cleanups, reserve)
        for feature in reversed(self._features):
            await deadline.step(feature.stop(), f"stopping {type(feature).__name__}")
        if self._instance is not None:
            await deadline.step(self._instance.stop(), "stopping the instance monitor")
        for task in list(self._background):
            task.cancel()
        await deadline.step(self.backend.close(), "closing the backend")
        if transport is not None:
            await deadline.step(transport.close(), "closing the listener")
        self._closed.set()
        self._log.info("Mesh server closed", extra={FIELD_INSTANCE_ID: self.instance_id})

    async def serve_forever(self) -> None:
        """Start if needed and serve until :meth:`close` is called or the task is cancelled."""
        await self.start()
        try:
            await self._closed.wait()
        except asyncio.CancelledError:
            await self.close()
            raise

    async def __aenter__(self) -> MeshServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ connections (§5)

    def _on_upgrade(self, request: UpgradeRequest) -> UpgradeDecision | Awaitable[UpgradeDecision]:
        # Decided synchronously unless the authenticate hook is async: the adapter then writes
        # the 101 from its read callback, with no task per handshake.
        instance = self._instance
        if self._closing or (instance is not None and (instance.fenced or instance.unavailable)):
            # §5.1: the backend cannot register connections now; clients retry soon.
            return HttpResponse.text(503, "Service Unavailable")
        max_connections = self._limits.max_connections
        if max_connections is not None and self._conn_count >= max_connections:
            return HttpResponse.text(503, "Service Unavailable")  # §15: connections per instance
        if self.allowed_origins is not None and request.origin not in self.allowed_origins:
            return HttpResponse.text(403, "Forbidden")  # §5.1: Origin allow-list
        if self.authenticate is None:
            return Accept()
        try:
            result = self.authenticate(request)
        except Exception as exc:
            return self._auth_failed(exc)
        if inspect.isawaitable(result):
            return self._authenticate_later(result)
        return Accept(result)

    async def _authenticate_later(self, pending: Awaitable[Any]) -> UpgradeDecision:
        try:
            return Accept(await pending)
        except Exception as exc:
            return self._auth_failed(exc)

    def _auth_failed(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, MeshAuthError):
            return HttpResponse.text(exc.status, exc.message)
        self._log.error("authenticate hook failed", exc_info=exc)  # §5.1: unexpected → 500
        return HttpResponse.text(500, "Internal Server Error")

    async def _on_connect(self, transport: TransportConnection) -> None:
        # Counted until its cleanup ends (or until a failed opening ends). The task returns once
        # the connection is started: an idle connection keeps no task (issue 12: idle memory).
        self._conn_count += 1
        opened = False
        try:
            opened = await self._open(transport)
        finally:
            if not opened:
                self._conn_count -= 1

    async def _open(self, transport: TransportConnection) -> bool:
        connection_id = _new_connection_id()
        session = ServerSession(
            connection_id,
            limits=self._limits,
            # The sans-I/O session runs on an integer-ms clock (mesh_server.limits).
            ping_interval=_to_ms(self._ping_interval),
            latency_interval=_to_ms(self.latency_interval),
            max_missed_pongs=self._max_missed_pongs,
        )
        connection = Connection(self, transport, connection_id, session)
        # §5.2 step 2: register (routing entry + metadata from §5.1), then hooks.
        try:
            await self.backend.register_connection(connection_id, transport.accepted)
        except UnavailableError:
            # The outage is logged once by the backend; a refused connection is no news. Later
            # upgrades are answered 503 until the monitor's probe reaches the backend again.
            self._log.debug("registering connection %s failed: backend unavailable", connection_id)
            if self._instance is not None:
                self._instance.report_unavailable()
            transport.start_close(CLOSE_INTERNAL_ERROR, "registration failed")
            await transport.wait_closed()
            return False
        except Exception:
            self._log.exception("registering connection %s failed", connection_id)
            transport.start_close(CLOSE_INTERNAL_ERROR, "registration failed")
            await transport.wait_closed()
            return False
        self._hub.add(connection)
        self.metrics.connection_opened()
        if self._log.isEnabledFor(logging.DEBUG):
            peer = transport.upgrade.peer
            self._log.debug(
                "connection %s opened from %s",
                connection_id,
                peer,
                extra={
                    FIELD_INSTANCE_ID: self.instance_id,
                    FIELD_CONNECTION_ID: connection_id,
                    FIELD_PEER: f"{peer[0]}:{peer[1]}" if peer else None,
                },
            )
        for hook in self._on_connection:
            try:
                await _call_hook(hook, connection)
            except Exception:
                self._log.exception("on_connection hook failed for %s", connection_id)
        # §5.2 steps 3–5: assign-id first, then client frames, then liveness timers.
        connection.start()
        return True

    def track_cleanup(self, task: asyncio.Task[None]) -> None:
        """Keep a cleanup task until it finishes (``close`` waits for them)."""
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def cleanup_connection(self, connection: Connection) -> None:
        """Run the §5.3 cleanup of a closing connection (called exactly once per connection)."""
        try:
            await self._cleanup(connection)
        finally:
            self._conn_count -= 1

    async def _cleanup(self, connection: Connection) -> None:
        connection_id = connection.id
        self._hub.connections.pop(connection_id, None)
        self._log.debug(
            "connection %s closed (code %s)",
            connection_id,
            connection.close_code,
            extra={
                FIELD_INSTANCE_ID: self.instance_id,
                FIELD_CONNECTION_ID: connection_id,
                FIELD_CLOSE_CODE: connection.close_code,
            },
        )
        await connection.wait_builtins(self._limits.backend_timeout)
        # (2) channel, record and presence subscriptions of this connection.
        for feature in self._features:
            try:
                await feature.on_disconnect(connection)
            except Exception:
                self._log.exception("feature cleanup failed for %s", connection_id)
        # (3)-(5) presence (one leave each), memberships, metadata, routing entry.
        if not await self._unregister(connection_id):
            self._spawn(self._retry_unregister(connection_id))
        self._hub.remove(connection_id)
        self.metrics.connection_closed(connection.close_code)
        for hook in self._on_disconnection:
            try:
                await _call_hook(hook, connection)
            except Exception:
                self._log.exception("on_disconnection hook failed for %s", connection_id)

    async def _unregister(self, connection_id: str) -> bool:
        backend = self.backend
        try:
            rooms = await backend.connection_rooms(connection_id)
            tracked = self._tracked_rooms(rooms)
            await backend.unregister_connection(connection_id, tracked)
        except Exception as exc:
            # During an outage every cleanup fails; the outage is logged once by the backend.
            level = logging.DEBUG if isinstance(exc, UnavailableError) else logging.WARNING
            self._log.log(level, "cleanup of %s failed, will retry: %s", connection_id, exc)
            return False
        return True

    async def _retry_unregister(self, connection_id: str) -> None:
        # §5.3: if the backend is unreachable the instance MUST retry (if it dies first, §13).
        attempt = 0
        while not self._closing:
            await asyncio.sleep(_CLEANUP_RETRY_S[min(attempt, len(_CLEANUP_RETRY_S) - 1)])
            attempt += 1
            if await self._unregister(connection_id):
                return

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def notify_pong(self, connection: Connection) -> None:
        """Forward a pong to the features that react to it (presence refresh, protocol.md §10.3)."""
        if self._pong_listeners:
            self._spawn(self._pong(connection))

    async def _pong(self, connection: Connection) -> None:
        for listener in self._pong_listeners:
            try:
                await listener.on_pong(connection)
            except Exception as exc:
                self._log.debug("pong hook failed for %s: %s", connection.id, exc)

    async def _fence(self, reason: str) -> None:
        # §13.5: close every connection with 4002; their backend state may be gone.
        count = len(self._hub.connections)
        level = logging.WARNING if count else logging.INFO
        self._log.log(level, "self-fencing (%s): closing %d connections", reason, count)
        for connection in list(self._hub.connections.values()):
            connection.close(CLOSE_STATE_LOST, "backend state lost")

    async def _on_backend_recovered(self) -> None:
        # §13.5 before §11.5: a store that came back empty lost this instance's registration.
        # Beating first fences (4002) every connection whose state is gone, so the resync below
        # never takes a lost store for deleted records, and new upgrades are accepted at once.
        if self._instance is not None:
            await self._instance.beat()
        live = [cid for cid, conn in self._hub.connections.items() if not conn.closed]
        if live:
            try:
                # None keeps stored metadata (a store that lost it was fenced just above).
                await self.backend.reregister_connections(dict.fromkeys(live))
            except UnavailableError:
                # Lost again: logged once by the backend; its next reconnect recovers again.
                self._log.debug("re-registering connections after recovery failed: unavailable")
            except Exception:
                self._log.exception("re-registering connections after recovery failed")
        for feature in self._features:
            try:
                await feature.on_backend_recovered()
            except UnavailableError:
                self._log.debug("feature recovery failed: backend unavailable")
            except Exception:
                self._log.exception("feature recovery failed")

    # ------------------------------------------------------------------ sending (§13.2)

    def _push(self, command: str, payload: Any) -> bytes:
        if not isinstance(command, str) or is_reserved(command):
            raise ValueError(f"{command!r} is reserved by the Mesh protocol (protocol.md §3.4)")
        return encode_push(command, to_jsonable(payload))

    async def send(self, conn_or_id: ConnectionLike | str, command: str, payload: Any) -> bool:
        """Push ``{"command","payload"}`` to one connection on any instance (O(1)).

        ``payload`` of this and every ``broadcast*`` method is a pydantic (generated) model,
        dumped by wire name, or any JSON-able value.

        Returns:
            ``False`` if the connection is not registered anywhere.
        """
        frame = self._push(command, payload)
        connection_id = self.resolve_connection(conn_or_id)
        local = self._hub.connections.get(connection_id)
        if local is not None:
            local.send(frame)
            return True
        return await self.backend.send_to_connection(connection_id, frame)

    async def broadcast(self, command: str, payload: Any) -> None:
        """Push to every connection on every instance (one backend message)."""
        await self.backend.broadcast(self._push(command, payload))

    async def broadcast_exclude(
        self,
        command: str,
        payload: Any,
        exclude: ConnectionLike | str | Iterable[ConnectionLike | str],
    ) -> None:
        """Push to every connection except ``exclude`` (connections or ids)."""
        frame = self._push(command, payload)
        await self.backend.broadcast(frame, exclude=self._ids(exclude))

    async def broadcast_room(self, room: str, command: str, payload: Any) -> None:
        """Push to every member of ``room`` on every instance (one backend message)."""
        await self.backend.broadcast(self._push(command, payload), room=room)

    async def broadcast_room_exclude(
        self,
        room: str,
        command: str,
        payload: Any,
        exclude: ConnectionLike | str | Iterable[ConnectionLike | str],
    ) -> None:
        """Push to every member of ``room`` except ``exclude``."""
        frame = self._push(command, payload)
        await self.backend.broadcast(frame, room=room, exclude=self._ids(exclude))

    def _ids(self, items: ConnectionLike | str | Iterable[ConnectionLike | str]) -> list[str]:
        if isinstance(items, str | ConnectionLike):
            return [self.resolve_connection(items)]
        return [self.resolve_connection(item) for item in items]
