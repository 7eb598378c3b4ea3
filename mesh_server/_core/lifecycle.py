"""Start and graceful close of one server instance, fencing and backend recovery (protocol.md §13).

:class:`Lifecycle` starts the backend, the feature managers, the instance monitor and the
transport in that order, and closes them in reverse within the shutdown budget
(:class:`~mesh_server.shutdown.ShutdownDeadline`). The instance monitor calls back into it to
fence the instance (close 4002, protocol.md §13.5) and after the backend recovers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any

from mesh_sdk.protocol.errors import UnavailableError
from mesh_server.backends.memory import MemoryBackend
from mesh_server.contract_info import contract_info_commands
from mesh_server.instance import InstanceMonitor
from mesh_server.logs import FIELD_INSTANCE_ID, redact_url
from mesh_server.session import CLOSE_GOING_AWAY, CLOSE_STATE_LOST
from mesh_server.shutdown import ShutdownDeadline
from mesh_server.transport.asgi import AsgiTransport
from mesh_server.transport.base import Transport, TransportHooks, effective_backlog
from mesh_server.transport.websockets import WebsocketsTransport

if TYPE_CHECKING:
    from mesh_server._core.base import Core
    from mesh_server._core.connections import Connections
    from mesh_server._core.gate import Gate

__all__ = ["Lifecycle", "startup_fields"]

_STARTUP_LIMITS = (
    "max_connections",
    "max_message_size",
    "max_inflight_requests",
    "max_outbound_bytes",
    "max_outbound_frames",
    "rate_limit",
    "rate_burst",
    "max_subscriptions",
    "backend_timeout",
)


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


def url_of(core: Core) -> str:
    """``ws://host:port`` of the core's listener (the real port once started)."""
    return f"ws://{core.options.host}:{port_of(core)}"


def port_of(core: Core) -> int:
    """The bound port (the real one when configured with ``port=0``) or the configured one."""
    if core.started and core.transport is not None:
        return core.transport.port
    return core.options.port


def startup_fields(core: Core) -> dict[str, Any]:
    """What the startup line names: listen address, transport, backend, contract, key limits.

    The limits include the effective listen backlog (the configured one capped by
    ``net.core.somaxconn`` on Linux).

    The backend is ``memory``, the Redis URL without its password, or the backend's class name;
    the contract is its name or ``none``.
    """
    options = core.options
    transport = core.transport
    transport_name = type(transport).__name__ if transport is not None else "none"
    transport_name = transport_name.removesuffix("Transport").lower() or transport_name
    backend = core.backend
    if isinstance(backend, MemoryBackend):
        backend_name = "memory"
    elif options.redis_url is not None and type(backend).__name__ == "RedisBackend":
        backend_name = redact_url(options.redis_url)
    else:
        backend_name = type(backend).__name__
    contract = core.contract
    limits = options.limits
    key_limits: dict[str, Any] = {name: getattr(limits, name) for name in _STARTUP_LIMITS}
    key_limits["backlog"] = effective_backlog(options.backlog)
    key_limits["ping_interval"] = options.ping_interval
    key_limits["shutdown_timeout"] = options.shutdown_timeout
    return {
        "listen": url_of(core),
        "transport": transport_name,
        "backend": backend_name,
        "contract": contract.name if contract is not None else "none",
        "limits": key_limits,
    }


class Lifecycle:
    """Start, close, fencing and recovery of one core.

    Args:
        core: The server core.
        connections: Its connection opener (the transport's ``on_connect`` hook).
        gate: Its upgrade and plain-HTTP decisions.
    """

    def __init__(self, core: Core, connections: Connections, gate: Gate) -> None:
        self._core = core
        self._connections = connections
        self._gate = gate

    # ------------------------------------------------------------------ options

    def configure(
        self,
        *,
        host: str | None,
        port: int | None,
        redis_url: str | None,
        backlog: int | None,
        health: bool | None,
        health_path: str | None,
        readiness_path: str | None,
        metrics_endpoint: bool | None,
        metrics_path: str | None,
        transport: str | None,
    ) -> None:
        """Override options before start (see ``MeshServer.configure``; ``None`` keeps one).

        Raises:
            RuntimeError: Already started, or ``transport`` given while the core has one.
            ValueError: An invalid backlog, path or transport name.
        """
        core, gate = self._core, self._gate
        options = core.options
        if core.started:
            raise RuntimeError("configure() must be called before start()")
        if transport is not None:
            if core.transport is not None:
                # A given transport, or the ASGI one that asgi_app() created: switching would
                # silently drop it (an ASGI app already handed out would never be served).
                raise RuntimeError(
                    f"configure(transport={transport!r}): the server already has its "
                    f"transport ({type(core.transport).__name__}: given, or asgi_app()'s)"
                )
            options.set_transport_name(transport)
        if host is not None:
            options.host = host
        if port is not None:
            options.port = port
        if redis_url is not None:
            options.redis_url = redis_url
            core.backend_given = None
        if backlog is not None:
            options.set_backlog(backlog)
        if health is not None:
            options.health = health
        if health_path is not None:
            options.health_path = health_path
        if readiness_path is not None:
            options.readiness_path = readiness_path
        if metrics_endpoint is not None:
            options.metrics_endpoint = metrics_endpoint
        if metrics_path is not None:
            options.metrics_path = metrics_path
        gate.configure()

    # ------------------------------------------------------------------ transports

    def builtin_transport(self) -> Transport:
        """Build the built-in transport the options name."""
        options = self._core.options
        if options.transport_name == "picows":
            # Imported here: picows is an optional dependency (extra mesh-py[fast]).
            from mesh_server.transport.picows import PicowsTransport

            return PicowsTransport(
                options.host,
                options.port,
                max_message_size=options.limits.max_message_size,
                backlog=options.backlog,
                open_timeout=options.open_timeout,
                close_timeout=options.close_timeout,
            )
        return WebsocketsTransport(
            options.host,
            options.port,
            max_message_size=options.limits.max_message_size,
            backlog=options.backlog,
            compression=options.compression,
            open_timeout=options.open_timeout,
            close_timeout=options.close_timeout,
        )

    def asgi_transport(self) -> AsgiTransport:
        """Return the core's ASGI transport, created on first use.

        Raises:
            RuntimeError: The core has another transport.
        """
        core = self._core
        options = core.options
        transport = core.transport
        if transport is None:
            transport = core.transport = AsgiTransport(
                max_message_size=options.limits.max_message_size,
                open_timeout=options.open_timeout,
                close_timeout=options.close_timeout,
                port=options.port,
            )
        if not isinstance(transport, AsgiTransport):
            raise RuntimeError(f"the server already has a {type(transport).__name__}")
        if options.compression:
            core.log.warning(
                "compression=True has no effect under ASGI: permessage-deflate is the ASGI "
                "server's option (uvicorn: --ws-per-message-deflate)"
            )
        return transport

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Start the backend, the feature managers, the instance monitor and the listener."""
        core = self._core
        if core.started:
            return
        options = core.options
        pipeline = core.pipeline
        if not options.allow_unimplemented:
            pipeline.check_implemented()
        backend = core.backend
        backend.on_recovered = self._on_backend_recovered
        pipeline.add_builtins(core.connection_manager.builtin_commands())
        pipeline.add_builtins(contract_info_commands(core.contract))
        for feature in core.features:
            pipeline.add_builtins(feature.builtin_commands())
            core.hub.add_routes(feature.message_routes())
        pipeline.bind_metrics()
        core.metrics.watch_backend(backend.stats)
        await backend.start(core.instance_id, core.hub.on_message)
        for feature in core.features:
            await feature.start()
        core.instance = InstanceMonitor(
            backend,
            heartbeat_interval=options.instance_heartbeat_interval,
            ttl=options.instance_ttl,
            sweep_interval=options.instance_sweep_interval,
            backend_grace=options.backend_grace,
            probe_interval=options.backend_probe_interval,
            fence=self._fence,
            log=core.log,
        )
        await core.instance.beat()
        await core.instance.start()
        if core.transport is None:
            core.transport = self.builtin_transport()
        gate = self._gate
        on_connect = self._connections.on_connect
        hooks = TransportHooks(gate.on_upgrade, on_connect)
        if gate.serves_http:
            hooks = TransportHooks(gate.on_upgrade, on_connect, gate.on_http)
        await core.transport.start(hooks)
        core.started = True
        self._log_started(core.transport)

    def _log_started(self, transport: Transport) -> None:
        core = self._core
        log = core.log
        # The details are structured fields (mesh_server.logs), shown by both log formats.
        fields = {FIELD_INSTANCE_ID: core.instance_id, **startup_fields(core)}
        if isinstance(transport, AsgiTransport):
            log.info("Mesh server serving as an ASGI application", extra=fields)
            return
        log.info("Mesh server listening on %s", url_of(core), extra=fields)
        allowed = core.options.allowed_origins
        reachable = _reachable_addresses(transport) if allowed is None else []
        if reachable:
            # §5.1: without an allow-list any web page can open a connection with the
            # visitor's cookies; harmless on loopback, worth a warning anywhere else.
            log.warning(
                "allowed_origins is not set: connections from any Origin are accepted on %s "
                "(pass allowed_origins=[...]; see docs/deployment.md)",
                ", ".join(reachable),
            )

    # ------------------------------------------------------------------ close (§5.3, §13)

    async def close(self) -> None:
        """Shut down gracefully within the shutdown budget (see ``MeshServer.close``)."""
        core = self._core
        if core.closing or not core.started:
            core.closing = True
            core.closed.set()
            return
        core.closing = True
        log = core.log
        budget = core.options.shutdown_timeout
        deadline = ShutdownDeadline(budget, log, core.instance_id)
        log.info(
            "Mesh server shutting down (%d connections, at most %.1f s)",
            len(core.hub.connections),
            budget,
            extra={FIELD_INSTANCE_ID: core.instance_id},
        )
        transport = core.transport
        for connection in list(core.hub.connections.values()):
            connection.close(CLOSE_GOING_AWAY, "server shutdown")
        reserve = min(budget / 4, core.limits.backend_timeout)
        await deadline.wait_tasks(core.cleanups, reserve)
        for feature in reversed(core.features):
            await deadline.step(feature.stop(), f"stopping {type(feature).__name__}")
        if core.instance is not None:
            await deadline.step(core.instance.stop(), "stopping the instance monitor")
        for task in list(core.background):
            task.cancel()
        await deadline.step(core.backend.close(), "closing the backend")
        if transport is not None:
            await deadline.step(transport.close(), "closing the listener")
        core.closed.set()
        log.info("Mesh server closed", extra={FIELD_INSTANCE_ID: core.instance_id})

    # ------------------------------------------------------------------ fencing (§13.5)

    async def _fence(self, reason: str) -> None:
        # §13.5: close every connection with 4002; their backend state may be gone.
        core = self._core
        count = len(core.hub.connections)
        level = logging.WARNING if count else logging.INFO
        core.log.log(level, "self-fencing (%s): closing %d connections", reason, count)
        for connection in list(core.hub.connections.values()):
            connection.close(CLOSE_STATE_LOST, "backend state lost")

    async def _on_backend_recovered(self) -> None:
        # §13.5 before §11.5: a store that came back empty lost this instance's registration.
        # Beating first fences (4002) every connection whose state is gone, so the resync below
        # never takes a lost store for deleted records, and new upgrades are accepted at once.
        core = self._core
        log = core.log
        if core.instance is not None:
            await core.instance.beat()
        live = [cid for cid, conn in core.hub.connections.items() if not conn.closed]
        if live:
            try:
                # None keeps stored metadata (a store that lost it was fenced just above).
                await core.backend.reregister_connections(dict.fromkeys(live))
            except UnavailableError:
                # Lost again: logged once by the backend; its next reconnect recovers again.
                log.debug("re-registering connections after recovery failed: unavailable")
            except Exception:
                log.exception("re-registering connections after recovery failed")
        for feature in core.features:
            try:
                await feature.on_backend_recovered()
            except UnavailableError:
                log.debug("feature recovery failed: backend unavailable")
            except Exception:
                log.exception("feature recovery failed")
