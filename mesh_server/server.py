"""The public server: :class:`MeshServer`, a small façade over a private core.

It holds the options and the feature managers (:attr:`~MeshServer.channels`,
:attr:`~MeshServer.rooms`, :attr:`~MeshServer.presence`, :attr:`~MeshServer.records`,
:attr:`~MeshServer.connections`) and delegates the rest to its core (:mod:`mesh_server._core`).
The top-level methods the README uses (``expose_channel``, ``add_to_room``, ``send``, ...) are
thin delegates to the managers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from mesh_server._core.base import Core
from mesh_server._core.connections import Connections
from mesh_server._core.gate import Gate
from mesh_server._core.lifecycle import Lifecycle, port_of, url_of
from mesh_server.backends.base import Backend, MergeStrategy
from mesh_server.connection import Connection
from mesh_server.connection_manager import (
    ConnectionManager,
    MetadataReadGuard,
    MetadataWriteGuard,
)
from mesh_server.features import ConnectionLike
from mesh_server.health import Readiness
from mesh_server.limits import Limits
from mesh_server.metrics import Metrics
from mesh_server.metrics_export import create_metrics
from mesh_server.middleware import Handler, Middleware
from mesh_server.options import LIMIT_FIELDS, AuthenticateHook, ServerOptions
from mesh_server.transport.asgi import AsgiApp
from mesh_server.transport.base import DEFAULT_BACKLOG, Transport

if TYPE_CHECKING:
    from mesh_sdk.protocol.contract import ContractIndex
    from mesh_server.channels import ChannelManager
    from mesh_server.presence import PresenceManager
    from mesh_server.records import RecordManager
    from mesh_server.rooms import RoomManager

__all__ = ["AuthenticateHook", "ConnectionHook", "MeshServer"]

ConnectionHook = Callable[[Connection], "Awaitable[None] | None"]
"""``on_connection`` / ``on_disconnection`` callback (sync or async)."""

F = TypeVar("F", bound=Callable[..., Any])


class MeshServer:
    """A Mesh WebSocket server (one instance; several share state through Redis).

    The keyword options that configure the instance (``host``, ``port``, ``redis_url``, the
    liveness and instance intervals, ``authenticate``, ``allowed_origins``, timeouts, the health
    and metrics endpoints, ...) are the fields of :class:`~mesh_server.options.ServerOptions`,
    documented there; ``server.options`` holds them validated.

    Args:
        backend: A ready-made (unstarted) backend instead of ``redis_url``.
        contract: Generated application contract index: commands must be defined in it and their
            requests and responses are validated (protocol.md §3.4); :meth:`start` refuses to
            start while one of its commands has no handler. A generated ``<Name>Server``
            facade binds its contract (:meth:`bind_contract`).
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
        unknown = set(limits) - LIMIT_FIELDS
        if unknown:
            raise TypeError(f"unknown MeshServer option(s): {', '.join(sorted(unknown))}")
        self.options = ServerOptions(
            host=host,
            port=port,
            redis_url=redis_url if redis_url is not None else os.environ.get("MESH_REDIS_URL"),
            namespace=namespace,
            limits=Limits(**limits),
            allow_unimplemented=allow_unimplemented,
            ping_interval=ping_interval,
            latency_interval=latency_interval,
            max_missed_pongs=max_missed_pongs,
            presence_sweep_interval=presence_sweep_interval,
            instance_heartbeat_interval=instance_heartbeat_interval,
            instance_ttl=instance_ttl,
            instance_sweep_interval=instance_sweep_interval,
            backend_grace=backend_grace,
            backend_probe_interval=backend_probe_interval,
            debug=debug,
            authenticate=authenticate,
            allowed_origins=frozenset(allowed_origins) if allowed_origins is not None else None,
            compression=compression,
            close_timeout=close_timeout,
            open_timeout=open_timeout,
            backlog=backlog,
            shutdown_timeout=shutdown_timeout,
            transport_name=transport if isinstance(transport, str) else "websockets",
            log=logger or logging.getLogger("mesh_server"),
            client_metadata_writes=client_metadata_writes,
            metadata_write_guard=metadata_write_guard,
            metadata_read_guard=metadata_read_guard,
            health=health,
            health_path=health_path,
            readiness_path=readiness_path,
            metrics_endpoint=metrics_endpoint,
            metrics_path=metrics_path,
        )
        """The validated options (:class:`~mesh_server.options.ServerOptions`)."""
        self._metrics = create_metrics(metrics, metrics_registry)
        core = self._core = Core(
            self.options,
            self,
            metrics=self._metrics,
            backend=backend,
            transport=None if isinstance(transport, str) else transport,
            contract=contract,
        )
        self._gate = Gate(core)
        self._lifecycle = Lifecycle(core, Connections(core), self._gate)

    # ------------------------------------------------------------------ managers

    @property
    def channels(self) -> ChannelManager:
        """Application channels and their history (protocol.md §9)."""
        return self._core.feature_set.channels

    @property
    def rooms(self) -> RoomManager:
        """Rooms and room metadata (protocol.md §10.1, §12.2)."""
        return self._core.feature_set.rooms

    @property
    def presence(self) -> PresenceManager:
        """Presence tracking (protocol.md §10.2–§10.5)."""
        return self._core.feature_set.presence

    @property
    def records(self) -> RecordManager:
        """Records (protocol.md §11)."""
        return self._core.feature_set.records

    @property
    def connections(self) -> ConnectionManager:
        """Connection metadata on any instance (protocol.md §12.1) and the local connections.

        ``server.connections.local()`` returns this instance's open connections by id and
        ``server.connections.get_local(connection_id)`` one of them.
        """
        return self._core.connection_manager

    # ------------------------------------------------------------------ properties

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        return port_of(self._core)

    @property
    def url(self) -> str:
        """``ws://host:port`` of the running server."""
        return url_of(self._core)

    @property
    def started(self) -> bool:
        """Whether :meth:`start` completed and :meth:`close` was not called."""
        return self._core.started and not self._core.closing

    @property
    def instance_id(self) -> str:
        """This instance's id (protocol.md §13)."""
        return self._core.instance_id

    @property
    def backend(self) -> Backend:
        """The coordination backend (created on first use, started by :meth:`start`)."""
        return self._core.backend

    @property
    def namespace(self) -> str:
        """Internal key/channel prefix (protocol.md §9.2)."""
        return self.options.namespace

    @property
    def limits(self) -> Limits:
        """The configured limits (protocol.md §15)."""
        return self.options.limits

    @property
    def shutdown_timeout(self) -> float:
        """Seconds :meth:`close` may take in all (settable before :meth:`close`)."""
        return self.options.shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("shutdown_timeout must be > 0 seconds")
        self.options.shutdown_timeout = seconds

    @property
    def contract(self) -> ContractIndex | None:
        """The application contract, if any."""
        return self._core.contract

    @property
    def metrics(self) -> Metrics:
        """What the server records (:mod:`mesh_server.metrics`; ``exposition()``: a scrape)."""
        return self._metrics

    @property
    def transport(self) -> Transport | None:
        """The transport adapter: the one given, or the default one once started."""
        return self._core.transport

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
        self._core.pipeline.expose(name, handler, middlewares)

    def command(self, name: str, middlewares: Sequence[Middleware] = ()) -> Callable[[F], F]:
        """Decorator form of :meth:`expose_command`."""

        def register(fn: F) -> F:
            self.expose_command(name, fn, middlewares)
            return fn

        return register

    def use_middleware(self, *fns: Middleware) -> None:
        """Add global middleware, run for every command (built-ins included) in order."""
        self._core.pipeline.use(fns)

    def on_connection(self, fn: ConnectionHook) -> ConnectionHook:
        """Register a hook run after a connection is registered, before ``mesh/assign-id``."""
        self._core.on_connection.append(fn)
        return fn

    def on_disconnection(self, fn: ConnectionHook) -> ConnectionHook:
        """Register a hook run after a connection's cleanup (protocol.md §5.3)."""
        self._core.on_disconnection.append(fn)
        return fn

    def bind_contract(self, contract: ContractIndex) -> None:
        """Validate commands, channel messages and record values against ``contract``.

        The same as ``MeshServer(contract=contract)``; generated server facades call it.

        Raises:
            ValueError: Bound to a different contract, or a registered command is not defined
                by ``contract``.
            RuntimeError: The server was already started.
        """
        if self._core.started:
            raise RuntimeError("bind_contract() must be called before start()")
        self._core.pipeline.bind(contract)

    def unimplemented_commands(self) -> list[str]:
        """Return the contract's commands that have no handler yet (sorted)."""
        return self._core.pipeline.unimplemented()

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
        self._lifecycle.configure(
            host=host,
            port=port,
            redis_url=redis_url,
            backlog=backlog,
            health=health,
            health_path=health_path,
            readiness_path=readiness_path,
            metrics_endpoint=metrics_endpoint,
            metrics_path=metrics_path,
            transport=transport,
        )

    def readiness(self) -> Readiness:
        """Whether this instance should get new connections (the ``/readyz`` answer).

        Not ready while shutting down, while fenced (protocol.md §13.5), while heartbeats fail, or
        while the backend reports a problem (:meth:`Backend.health_issues`, e.g. the Redis pub/sub
        reader is down).
        Synchronous and free of I/O.
        """
        return self._gate.readiness()

    async def start(self) -> None:
        """Start the backend, the feature managers, the instance monitor and the listener."""
        await self._lifecycle.start()

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
        return AsgiApp(self._lifecycle.asgi_transport(), self.start, self.close)

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
        await self._lifecycle.close()

    async def serve_forever(self) -> None:
        """Start if needed and serve until :meth:`close` is called or the task is cancelled."""
        await self.start()
        try:
            await self._core.closed.wait()
        except asyncio.CancelledError:
            await self.close()
            raise

    async def __aenter__(self) -> MeshServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ pushes (§13.2)

    async def send(self, conn_or_id: ConnectionLike | str, command: str, payload: Any) -> bool:
        """Push to one connection on any instance: ``connections.send``.

        Returns:
            ``False`` if the connection is not registered anywhere.
        """
        return await self.connections.send(conn_or_id, command, payload)

    async def broadcast(self, command: str, payload: Any) -> None:
        """Push to every connection on every instance: ``connections.broadcast``."""
        await self.connections.broadcast(command, payload)

    async def broadcast_room(self, room: str, command: str, payload: Any) -> None:
        """Push to every member of ``room`` on every instance: ``connections.broadcast``."""
        await self.connections.broadcast(command, payload, room=room)

    # ------------------------------------------------------------------ feature shortcuts

    def expose_channel(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Let clients subscribe to channels matching ``pattern``: ``channels.expose``."""
        self.channels.expose(pattern, guard)

    async def publish_to_channel(self, channel: str, message: Any, history: int = 0) -> None:
        """Publish on ``channel``, keeping ``history`` messages: ``channels.publish``."""
        await self.channels.publish(channel, message, history)

    async def add_to_room(self, room: str, conn_or_id: ConnectionLike | str) -> None:
        """Add a connection (on any instance) to ``room``: ``rooms.add``."""
        await self.rooms.add(room, conn_or_id)

    async def remove_from_room(self, room: str, conn_or_id: ConnectionLike | str) -> None:
        """Remove a connection from ``room``: ``rooms.remove``."""
        await self.rooms.remove(room, conn_or_id)

    async def get_room_members(self, room: str) -> list[str]:
        """Return the ids of all members of ``room`` (all instances): ``rooms.members``."""
        return await self.rooms.members(room)

    def track_presence(
        self,
        pattern: Any,
        ttl: float | Callable[..., Any] | Mapping[str, Any] | None = None,
        guard: Callable[..., Any] | None = None,
    ) -> None:
        """Track presence in rooms matching ``pattern``: ``presence.track`` (protocol.md §10.2).

        Also accepts ``track_presence(pattern, guard)`` and ``track_presence(pattern, {"ttl":
        ..., "guard": ...})``. ``ttl`` is in seconds.
        """
        if isinstance(ttl, Mapping):
            options = ttl
            ttl, guard = options.get("ttl"), options.get("guard", guard)
        elif callable(ttl):
            ttl, guard = None, ttl
        self.presence.track(pattern, ttl=ttl, guard=guard)

    def expose_record(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Let clients read records matching ``pattern``: ``records.expose``."""
        self.records.expose(pattern, guard)

    def expose_writable_record(self, pattern: Any, guard: Callable[..., Any] | None = None) -> None:
        """Let clients read and write records matching ``pattern``: ``records.expose_writable``.

        Raises:
            TypeError: ``guard`` accepts neither guard form (:mod:`mesh_server.exposure`).
        """
        self.records.expose_writable(pattern, guard)

    async def publish_record_update(
        self,
        record_id: str,
        value: Any,
        strategy: MergeStrategy = "replace",
        *,
        expected_version: int | None = None,
    ) -> None:
        """Write a record and push the update to its subscribers: ``records.publish_update``."""
        await self.records.publish_update(
            record_id, value, strategy, expected_version=expected_version
        )

    async def update_record(self, record_id: str, fn: Callable[[Any], Any]) -> tuple[Any, int]:
        """Atomically read, modify and write a record: ``records.update``.

        Returns:
            The committed value and its version.
        """
        written = await self.records.update(record_id, fn)
        return written.value, written.version

    async def get_record(self, record_id: str) -> tuple[Any, int]:
        """Return ``(value, version)`` of a record, ``(None, 0)`` when absent: ``records.get``."""
        return await self.records.get(record_id)

    async def delete_record(self, record_id: str) -> None:
        """Delete a record; subscribers get ``mesh/record-deleted``: ``records.delete``."""
        await self.records.delete(record_id)
